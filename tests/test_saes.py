"""The shipped SAEs load through ``utils.models.load_sae`` and really are good SAEs (CPU, seeded, fast).

Every SAE folder in ``models/saes/`` is measured on held-out text (``training.train_sae.measure_sae``) and
must meet the thresholds below; tests for ``mlp4l-res1`` and the ``hook_z`` SAE are skipped while they have not been
trained yet. Each SAE must have been trained on the weights of its model that are shipped now (a retrained model makes
these tests fail until its SAEs are retrained). A residual-stream SAE must have a single-name latent; an attention SAE
on ``hook_z`` must sit on the name-mover layer and have a latent whose direct logit attribution separates the
indirect object from the subject on IOI prompts. The online SAE tests never touch the network.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from training import train_sae  # noqa: E402
from utils import models  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHIPPED_SAE = "mlp4l-res1"
Z_MODEL = "mlp4l"  # the model that must have a hook_z SAE (chapter 6, section 5)
NAMES = sorted({SHIPPED_SAE} | {n for n in models.available_saes() if "/" not in n})
THRESHOLDS = dict(explained_variance=0.8, l0=40, dead_frac=0.10, ce_recovered=0.85, name_frac=0.9, text_ce_change=0.05,
                  ioi_ld_recovered=0.5)

def _load(name: str):
    """``(model, sae, info)`` for a shipped SAE (the cached copies of ``utils.models``); skip if it is not there."""
    folder = models.SAES_DIR / name
    if not (folder / "cfg.json").exists():
        pytest.skip(f"models/saes/{name} has not been trained yet (python -m training.train_sae ...)")
    info = json.loads((folder / "train_info.json").read_text())
    if not (models.MODELS_DIR / info["model"] / "config.json").exists():
        pytest.skip(f"models/{info['model']} (the model of SAE {name}) is missing")
    return models.cached_model(info["model"], "cpu"), models.cached_sae(name, "cpu"), info


@pytest.fixture(scope="module", params=NAMES)
def measured(request):
    model, sae, info = _load(request.param)
    torch.manual_seed(0)
    tokens = train_sae.eval_tokens(model)
    return request.param, train_sae.measure_sae(model, sae, sae.cfg.metadata.hook_name, tokens)


def test_sae_explained_variance(measured):
    name, m = measured
    assert m["explained_variance"] >= THRESHOLDS["explained_variance"], (name, m)


def test_sae_is_sparse(measured):
    name, m = measured
    assert 0 < m["l0"] <= THRESHOLDS["l0"], (name, m)


def test_sae_few_dead_latents(measured):
    name, m = measured
    assert m["dead_frac"] <= THRESHOLDS["dead_frac"], (name, m)


def test_sae_recovers_ce_loss(measured):
    """CE loss recovered against zero ablation, on held-out text. The shipped mlp4l's name-mover layer does not help
    on ordinary text (zero-ablating its hook_z barely moves, or lowers, the mean loss), so for a hook_z SAE whose layer
    costs under 0.1 nats the text's ratio divides by almost nothing: there the SAE must keep the text loss as it is,
    recover the KL (SAE-Lens's kl_div_score) instead, and keep most of what its layer adds to the IOI logit
    difference."""
    name, m = measured
    if "ioi_latent" in m and m["ce_zero"] - m["ce_clean"] < 0.1:
        assert abs(m["ce_sae"] - m["ce_clean"]) <= THRESHOLDS["text_ce_change"], (name, m)
        assert m["kl_recovered"] >= THRESHOLDS["ce_recovered"], (name, m)
        assert m["ioi_ld_clean"] - m["ioi_ld_zero"] > 0.2, (name, m)  # the layer matters for IOI
        assert m["ioi_ld_recovered"] >= THRESHOLDS["ioi_ld_recovered"], (name, m)
        return
    assert m["ce_clean"] < m["ce_sae"] < m["ce_zero"], (name, m)
    assert m["ce_recovered"] >= THRESHOLDS["ce_recovered"], (name, m)
    assert m["kl_recovered"] >= THRESHOLDS["ce_recovered"], (name, m)


def test_residual_sae_has_a_single_name_latent(measured):
    name, m = measured
    if "ioi_latent" in m:
        pytest.skip(f"{name} reads hook_z (attention outputs): tested by its IOI latents instead")
    assert m["name_frac"] >= THRESHOLDS["name_frac"], (name, m)
    assert m["name_token"] in train_sae.NAMES, (name, m)


def test_hook_z_sae_has_a_latent_that_separates_io_from_s(measured):
    name, m = measured
    if "ioi_latent" not in m:
        pytest.skip(f"{name} does not read hook_z")
    assert m["ioi_separating_latents"] >= 1, (name, m)
    assert m["ioi_total_dla"] > 0, (name, m)


@pytest.mark.parametrize("name", NAMES)
def test_sae_was_trained_on_the_shipped_weights_of_its_model(name):
    """A retrained model must make this fail: retrain its SAEs (`make models`)."""
    _, _, info = _load(name)
    assert info.get("model_sha256") == train_sae.model_sha256(info["model"]), (
        f"{name} was trained on other weights of {info['model']} than the shipped ones: retrain it with the command "
        f"in models/saes/{name}/README.md")


def test_a_hook_z_sae_is_shipped_on_the_name_mover_layer():
    from utils.data import hook_z_sae_for

    name = hook_z_sae_for(Z_MODEL)
    if name is None:
        pytest.skip(f"no hook_z SAE of {Z_MODEL} has been trained yet (python -m training.train_sae --hook "
                    "name-movers)")
    model, sae, info = _load(name)
    layer, per_layer = train_sae.name_mover_layer(model)
    assert sae.cfg.metadata.hook_name == f"blocks.{layer}.attn.hook_z", (name, per_layer)
    assert info["layer_choice"]["layer"] == layer, info["layer_choice"]
    assert sae.cfg.reshape_activations == "hook_z" and sae.cfg.d_in == model.cfg.n_heads * model.cfg.d_head


@pytest.mark.parametrize("name", NAMES)
def test_load_sae_fits_its_model(name):
    model, sae, info = _load(name)
    hook = sae.cfg.metadata.hook_name
    assert hook == info["hook_name"] and hook in model.hook_dict
    assert sae.cfg.metadata.model_name == info["model"]
    assert sae.cfg.d_in == train_sae.hook_d_in(model, hook) and sae.cfg.d_sae == info["d_sae"]
    _, cache = model.run_with_cache("When Mary and John went to the store, John gave a drink to",
                                    names_filter=[hook])
    acts = cache[hook]  # [1, pos, d_model] (hook_z: [1, pos, n_heads, d_head])
    feats = sae.encode(acts)
    assert feats.shape == (*acts.shape[:2], sae.cfg.d_sae)
    assert ((feats != 0).sum(-1) <= info["k"]).all()
    assert sae.decode(feats).shape == acts.shape


def test_hook_short_names():
    assert train_sae.hook_short("blocks.1.hook_resid_post") == "res1"
    assert train_sae.hook_short("blocks.0.hook_resid_pre") == "respre0"
    assert train_sae.hook_short("blocks.3.hook_mlp_out") == "mlp3"
    assert train_sae.hook_short("blocks.2.attn.hook_z") == "z2"


def test_available_saes_lists_shipped_and_online(tmp_path, monkeypatch):
    fake = tmp_path / "toy-res0"
    fake.mkdir()
    (fake / "cfg.json").write_text("{}")
    (fake / "train_info.json").write_text(json.dumps({"model": "toy", "hook_name": "blocks.0.hook_resid_post",
                                                      "description": "a toy SAE; shipped, offline"}))
    (tmp_path / "not-an-sae").mkdir()
    monkeypatch.setattr(models, "SAES_DIR", tmp_path)
    saes = models.available_saes()
    assert saes["toy-res0"] == "a toy SAE; shipped, offline"
    assert "not-an-sae" not in saes
    assert "gpt2-small-res-jb/blocks.8.hook_resid_pre" in saes
    assert all(isinstance(d, str) and d for d in saes.values())


def test_available_saes_lists_the_real_folders():
    saes = models.available_saes()
    for name in NAMES:
        assert (name in saes) == (models.SAES_DIR / name / "cfg.json").exists()
    assert any(n.startswith("gpt2-small-res-jb/") for n in saes)


def test_online_sae_offline_fails_fast_naming_the_shipped_one(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.time()
    with pytest.raises(models.ModelUnavailableError, match=SHIPPED_SAE):
        models.load_sae("gpt2-small-res-jb/blocks.8.hook_resid_pre", device="cpu")
    assert time.time() - start < 5


def test_online_sae_delegates_to_from_pretrained(monkeypatch):
    import sae_lens

    calls = []

    class Fake:
        def eval(self):
            return self

    def fake_from_pretrained(release, sae_id, device="cpu", **kwargs):
        calls.append((release, sae_id, device, kwargs))
        return Fake()

    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(sae_lens.SAE, "from_pretrained", fake_from_pretrained)
    sae = models.load_sae("gpt2-small-res-jb/blocks.8.hook_resid_pre", device="cpu")
    assert isinstance(sae, Fake)
    assert calls == [("gpt2-small-res-jb", "blocks.8.hook_resid_pre", "cpu", {})]


def test_unknown_sae_lists_available():
    with pytest.raises(models.ModelUnavailableError, match="gpt2-small-res-jb/blocks.0.hook_resid_pre"):
        models.load_sae("no-such-sae", device="cpu")
    with pytest.raises(models.ModelUnavailableError, match="unknown SAE"):
        models.load_sae("gpt2-small-res-jb/blocks.99.hook_resid_pre", device="cpu")


def test_training_a_hook_z_sae_on_the_name_mover_layer_smoke_run(tmp_path, monkeypatch):
    """`python -m training.train_sae --hook name-movers` in miniature (two batches): it picks the layer, trains a
    hook_z SAE with SAE-Lens's runner, saves it loadable by name, writes its card, and drops a stale name-mover SAE
    of the same model."""
    import argparse

    if not (models.MODELS_DIR / Z_MODEL / "config.json").exists():
        pytest.skip(f"models/{Z_MODEL} is not shipped")
    stale = tmp_path / f"{Z_MODEL}-z9"
    stale.mkdir()
    (stale / "train_info.json").write_text(json.dumps({"model": Z_MODEL, "hook_name": "blocks.9.attn.hook_z",
                                                       "layer_choice": {"layer": 9}}))
    monkeypatch.setattr(train_sae, "SAES", tmp_path)
    monkeypatch.setattr(models, "SAES_DIR", tmp_path)
    monkeypatch.setattr(train_sae, "EVAL_ROWS", 4)
    monkeypatch.setattr(train_sae, "NORM_BATCHES", 2)
    args = argparse.Namespace(model=Z_MODEL, hook="name-movers", name=None, tokens=4096, seed=0, device="cpu",
                              threads=1, k=4, expansion=2, lr=4e-3, batch_tokens=2048, buffer_batches=16,
                              aux_coef=1.0, dead_window_tokens=100_000)
    train_sae.train(args)
    [folder] = [f for f in tmp_path.iterdir() if f.is_dir()]
    info = json.loads((folder / "train_info.json").read_text())
    layer = info["layer_choice"]["layer"]
    assert folder.name == f"{Z_MODEL}-z{layer}" and info["hook_name"] == f"blocks.{layer}.attn.hook_z"
    assert info["model_sha256"] == train_sae.model_sha256(Z_MODEL)
    sae = models.load_sae(folder.name, device="cpu")
    assert sae.cfg.reshape_activations == "hook_z" and sae.cfg.d_sae == 2 * sae.cfg.d_in
    card = (folder / "README.md").read_text()
    assert "ioi_separating_latents" in info["measured"] and "--hook name-movers" in card
    n_ctx = models.cached_model(Z_MODEL, "cpu").cfg.n_ctx  # measured on the 4 rows the card names (BOS left out)
    assert "4 rows" in card and info["measured"]["n_tokens"] == 4 * (n_ctx - 1), info["measured"]["n_tokens"]
