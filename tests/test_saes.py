"""The shipped SAEs load through ``utils.models.load_sae`` and really are good SAEs (CPU, seeded, fast).

Every SAE folder in ``models/saes/`` is measured on held-out text (``training.train_sae.measure_sae``) and
must meet the thresholds below; tests for ``mlp4l-res1`` are skipped while it has not been trained yet.
The online SAE tests never touch the network.
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
NAMES = sorted({SHIPPED_SAE} | {n for n in models.available_saes() if "/" not in n})
THRESHOLDS = dict(explained_variance=0.8, l0=40, dead_frac=0.10, ce_recovered=0.85, name_frac=0.9)

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
    name, m = measured
    assert m["ce_clean"] < m["ce_sae"] < m["ce_zero"], (name, m)
    assert m["ce_recovered"] >= THRESHOLDS["ce_recovered"], (name, m)


def test_sae_has_a_single_name_latent(measured):
    name, m = measured
    assert m["name_frac"] >= THRESHOLDS["name_frac"], (name, m)
    assert m["name_token"] in train_sae.NAMES, (name, m)


@pytest.mark.parametrize("name", NAMES)
def test_load_sae_fits_its_model(name):
    model, sae, info = _load(name)
    hook = sae.cfg.metadata.hook_name
    assert hook == info["hook_name"] and hook in model.hook_dict
    assert sae.cfg.metadata.model_name == info["model"]
    assert sae.cfg.d_in == model.cfg.d_model and sae.cfg.d_sae == info["d_sae"]
    _, cache = model.run_with_cache("When Mary and John went to the store, John gave a drink to",
                                    names_filter=[hook])
    acts = cache[hook]  # [1, pos, d_model]
    feats = sae.encode(acts)
    assert feats.shape == (*acts.shape[:2], sae.cfg.d_sae)
    assert ((feats != 0).sum(-1) <= info["k"]).all()
    assert sae.decode(feats).shape == acts.shape


def test_hook_short_names():
    assert train_sae.hook_short("blocks.1.hook_resid_post") == "res1"
    assert train_sae.hook_short("blocks.0.hook_resid_pre") == "respre0"
    assert train_sae.hook_short("blocks.3.hook_mlp_out") == "mlp3"


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
