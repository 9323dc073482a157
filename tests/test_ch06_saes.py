"""Checkers for chapter 6 (sparse autoencoders), plus tests that the shipped model and SAEs tell the chapter's story.

Cases are built from the shipped ``mlp4l`` as a ``HookedSAETransformer``
(``utils.models.cached_model(..., sae_transformer=True)``), its two shipped SAEs (the residual-stream SAE and the
``hook_z`` SAE, found by name), held-out corpus text, IOI prompts, and small random SAEs made with SAE-Lens's own
classes (a TopK SAE whose decoder rows are not unit norm, so that ``rescale_acts_by_decoder_norm`` matters, and a
standard ReLU SAE). Every latent index is computed. The story tests
include the agreement of ``sae_metrics`` with ``sae_lens.evals`` on the same activations.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from sae_lens import LanguageModelSAERunnerConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

from tests.framework import Chapter
from tests.mutants.ch06_saes import MUTANTS
from training.corpus import IOI_TRAIN_TEMPLATES, TRAIN_NAMES
from utils.checking import Case, CheckFailure, Status
from utils.data import hook_z_sae_for, ioi_same_length
from utils.models import MODELS_DIR, SAES_DIR, cached_model, cached_sae

chapter = Chapter("ch06_saes", mutants=MUTANTS)

MODEL = "mlp4l"
RES_SAE = "mlp4l-res1"

# Logits, losses and metrics accumulate float32 rounding over d_model or d_vocab terms, in an order a learner may
# change: 1e-4 absolute (1e-3 relative) on CPU; other devices reorder reductions and may use TF32.
LOGIT_TOL = {"cpu": (1e-4, 1e-3), "cuda": (2e-3, 1e-2), "mps": (5e-3, 1e-2)}
# Means of many float32 terms (MSE, explained variance, KL, losses): a learner may sum in another order.
METRIC_TOL = {"cpu": (1e-4, 1e-4), "cuda": (1e-3, 1e-3), "mps": (5e-3, 1e-2)}


# ------------------------------------------------------------------------------------------------ shared inputs
def _model(device):
    if not (MODELS_DIR / MODEL / "config.json").exists():
        pytest.skip(f"models/{MODEL} is not shipped yet")
    return cached_model(MODEL, device, sae_transformer=True)


def _sae(device):
    if not (SAES_DIR / RES_SAE / "cfg.json").exists():
        pytest.skip(f"models/saes/{RES_SAE} is not shipped yet")
    return cached_sae(RES_SAE, device)


def _z_sae(device):
    name = hook_z_sae_for(MODEL)
    if name is None:
        pytest.skip(f"no hook_z SAE of {MODEL} is shipped yet")
    return cached_sae(name, device)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, device, seed=0, scale=1.0):
    return (torch.randn(*shape, generator=_gen(seed)) * scale).to(device)


@functools.cache
def _text(device, batch=16, seed=11):
    from training.evaluate import text_tokens

    return text_tokens(_model(device), batch=batch, seed=seed)


@functools.cache
def _ioi(device):
    return ioi_same_length(_model(device), IOI_TRAIN_TEMPLATES, TRAIN_NAMES, n_pairs=8, seed=0)


@functools.cache
def _resid(device, z=False):
    """Real activations at each SAE's hook (flat ``[4, 16, d_in]``; BOS left out)."""
    sae = _z_sae(device) if z else _sae(device)
    hook = sae.cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = _model(device).run_with_cache(_text(device)[:4, :17], names_filter=[hook])
    return cache[hook][:, 1:].flatten(2).detach()


@functools.cache
def _latents(device, z=False):
    """Every latent of the SAE on the held-out text, ``[batch, pos, d_sae]``."""
    sae = _z_sae(device) if z else _sae(device)
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    with torch.no_grad():
        _, cache = _model(device).run_with_cache_with_saes(_text(device), saes=[sae], names_filter=[name])
    return cache[name].detach()


@functools.cache
def _density(device, z=False):
    """Each latent's density on the held-out text (BOS left out)."""
    return (_latents(device, z)[:, 1:] != 0).float().mean((0, 1))


def _busy_latent(device, z=False, rank=0):
    """A latent active on many tokens but not dense (the ``rank``-th densest below 10%): computed, never fixed."""
    density = _density(device, z)
    candidates = (density < 0.1).nonzero()[:, 0]
    return int(candidates[density[candidates].argsort(descending=True)[rank]])


def _set_params(sae, seed, device, decoder_scale=True):
    g = _gen(seed)
    with torch.no_grad():
        for name, p in sorted(sae.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if name != "W_dec" else 1.0))
        if decoder_scale:  # decoder rows of very different norms: rescale_acts_by_decoder_norm matters
            sae.W_dec.mul_(torch.rand(sae.W_dec.shape[0], 1, generator=g) * 2 + 0.2)
    return sae.to(device).eval()


@functools.cache
def _random_topk_sae(device):
    cfg = TopKSAEConfig(d_in=16, d_sae=48, k=5, rescale_acts_by_decoder_norm=True)
    return _set_params(TopKSAE(cfg), 1, device)


@functools.cache
def _random_standard_sae(device):
    return _set_params(StandardSAE(StandardSAEConfig(d_in=16, d_sae=40)), 2, device, decoder_scale=False)


# ------------------------------------------------------------------------------------------------ anatomy
@chapter.exercise(dims="batch pos d_sae")
def sae_encode(device):
    yield Case((_sae(device), _resid(device)), label=f"{RES_SAE} on its hook, [4, 16, d_in]")
    yield Case((_random_topk_sae(device), _randn(3, 5, 16, device=device, seed=3, scale=2.0)),
               label="a random TopK SAE (k=5, 48 latents, rescale_acts_by_decoder_norm=True), x [3, 5, 16]")
    yield Case((_z_sae(device), _resid(device, z=True)), label="the hook_z SAE on its hook, heads flattened")
    yield Case((_random_standard_sae(device), _randn(6, 16, device=device, seed=4)),
               label="a random standard (ReLU) SAE, x [6, 16]")


@chapter.exercise(dims="batch pos d_in")
def sae_decode(device):
    sae = _sae(device)
    with torch.no_grad():
        yield Case((sae, sae.encode(_resid(device)).detach()), label=f"{RES_SAE}'s latents of real activations")
    rand = _random_topk_sae(device)
    acts = _randn(3, 5, 48, device=device, seed=5).relu() * (_randn(3, 5, 48, device=device, seed=6) > 1)
    yield Case((rand, acts), label="a random TopK SAE (rescale_acts_by_decoder_norm=True), sparse latents")
    yield Case((_random_standard_sae(device), _randn(6, 40, device=device, seed=7).relu()),
               label="a random standard SAE")


@chapter.exercise(tol=LOGIT_TOL)
def spliced_loss_and_latents(device):
    model = _model(device)
    yield Case((model, _sae(device), _text(device)[:2, :32]), label=f"{RES_SAE}, 2 rows of 32 tokens")
    yield Case((model, _z_sae(device), _ioi(device).tokens[:4]), label="the hook_z SAE, 4 IOI prompts")


# ------------------------------------------------------------------------------------------------ metrics
def _sparse_acts(n, d_sae, device, seed, dead=(3, 7)):
    acts = _randn(n, d_sae, device=device, seed=seed).relu() * (_randn(n, d_sae, device=device, seed=seed + 1) > 0.8)
    acts[:, list(dead)] = 0.0
    return acts


@functools.cache
def _real_recon(device):
    sae = _sae(device)
    x = _resid(device).reshape(-1, sae.cfg.d_in)
    with torch.no_grad():
        acts = sae.encode(x)
        return x, acts.detach(), sae.decode(acts).detach()


@chapter.exercise(tol=METRIC_TOL)
def reconstruction_metrics(device):
    x = _randn(200, 16, device=device, seed=8) + _randn(16, device=device, seed=9, scale=3.0)
    yield Case((x, _sparse_acts(200, 30, device, 10), x + _randn(200, 16, device=device, seed=12, scale=0.5)),
               label="random: 200 tokens, d_in=16, d_sae=30 (2 dead latents), x with a large mean")
    yield Case(_real_recon(device), label=f"{RES_SAE} on 64 real activations")


@chapter.exercise(dims="d_sae")
def latent_density(device):
    yield Case((_sparse_acts(100, 40, device, 13),), label="random sparse latents [100, 40], 2 dead")
    yield Case((_real_recon(device)[1],), label=f"{RES_SAE}'s latents of 64 real activations")


@chapter.exercise(tol=METRIC_TOL)
def sae_metrics(device):
    model = _model(device)
    yield Case((model, _sae(device), _text(device)[:4]), label=f"{RES_SAE}, 4 rows of held-out text")
    yield Case((model, _z_sae(device), _text(device)[4:8]), label="the hook_z SAE, 4 rows of held-out text")


# ------------------------------------------------------------------------------------------------ reading latents
@chapter.exercise(dims="k index")
def get_k_largest_indices(device):
    x = _randn(5, 30, device=device, seed=14)
    x[2, 0], x[4, 29] = 10.0, 9.0  # the largest values sit in the buffer at the edges
    yield Case((x, 7, 3), label="random [5, 30], k=7, buffer=3 (larger values at the edges)")
    yield Case((_randn(4, 12, device=device, seed=15), 3), label="random [4, 12], k=3, buffer 0 (default)")
    with torch.no_grad():
        acts = _fetch_acts(device)
    yield Case((acts, 5, 5), label="a real latent's activations [16, 128], k=5, buffer=5")


def _fetch_acts(device):
    sae = _sae(device)
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = _model(device).run_with_cache_with_saes(_text(device), saes=[sae], names_filter=[name])
    return cache[name][..., _busy_latent(device)].detach()


@chapter.exercise(dims="k window")
def index_with_buffer(device):
    x = torch.arange(80, dtype=torch.float32, device=device).view(4, 20)
    yield Case((x, torch.tensor([[0, 5], [3, 10], [1, 4]], device=device), 3),
               label="x = arange(80).view(4, 20), indices [[0, 5], [3, 10], [1, 4]], buffer=3")
    yield Case((_text(device), torch.tensor([[2, 40], [7, 100], [0, 6]], device=device), 5),
               label="tokens [16, 128], 3 indices, buffer=5")


def _edge_latent(device, k, buffer):
    """The densest latent below 10% whose k largest activations, over every position, include one of the first or last
    ``buffer`` positions of a row (where no window fits): computed, never fixed."""
    acts = _latents(device)
    density = _density(device)
    for latent in density.argsort(descending=True).tolist():
        if density[latent] >= 0.1:
            continue
        cols = acts[..., latent].flatten().topk(k).indices % acts.shape[1]
        if ((cols < buffer) | (cols >= acts.shape[1] - buffer)).any():
            return latent
    raise AssertionError("no latent peaks near a row's edge")


@chapter.exercise()
def fetch_max_activating_examples(device):
    model = _model(device)
    edge = _edge_latent(device, 5, 6)
    yield Case((model, _sae(device), _text(device), edge), {"k": 5, "buffer": 6},
               label=f"{RES_SAE}, latent {edge} (among its largest activations, some sit in a row's first or last 6 "
                     "positions), k=5, buffer=6")
    yield Case((model, _sae(device), _text(device), _busy_latent(device)), {"k": 6, "buffer": 4},
               label=f"{RES_SAE}, latent {_busy_latent(device)}, 16 rows of text, k=6, buffer=4")
    yield Case((model, _z_sae(device), _text(device), _busy_latent(device, z=True)), {"k": 4, "buffer": 3},
               label=f"the hook_z SAE, latent {_busy_latent(device, z=True)}, k=4, buffer=3")


@chapter.exercise(dims="d_sae d_model", tol=LOGIT_TOL)
def latent_residual_directions(device):
    model = _model(device)
    yield Case((model, _z_sae(device)), label="the hook_z SAE")
    yield Case((model, _sae(device)), label=f"{RES_SAE} (residual stream)")


@chapter.exercise(tol=LOGIT_TOL)
def latent_top_logits(device):
    model = _model(device)
    yield Case((model, _sae(device), _busy_latent(device), 5), label=f"{RES_SAE}, latent {_busy_latent(device)}, k=5")
    z_latent = _busy_latent(device, z=True, rank=1)
    yield Case((model, _z_sae(device), z_latent, 6), label=f"the hook_z SAE, latent {z_latent}, k=6")


# ------------------------------------------------------------------------------------------------ causal
@chapter.exercise(dims="batch pos d_vocab", tol=LOGIT_TOL)
def ablate_sae_latent(device):
    model = _model(device)
    yield Case((model, _sae(device), _text(device)[:2, :24], _busy_latent(device)),
               label=f"{RES_SAE}, latent {_busy_latent(device)}, 2 rows of 24 tokens")
    yield Case((model, _z_sae(device), _ioi(device).tokens[:4], _busy_latent(device, z=True)),
               label=f"the hook_z SAE, latent {_busy_latent(device, z=True)}, 4 IOI prompts")


@chapter.exercise(dims="batch pos d_in")
def steering_hook(device):
    sae = _sae(device)
    latent = _busy_latent(device)
    yield Case((_randn(2, 5, sae.cfg.d_in, device=device, seed=16), None, sae, latent, 3.0),
               label=f"{RES_SAE}, latent {latent}, coefficient 3.0, activations [2, 5, d_in]")
    yield Case((_randn(3, 4, 16, device=device, seed=17), None, _random_topk_sae(device), 2, -1.5),
               label="a random SAE whose decoder rows are not unit norm, latent 2, coefficient -1.5")


@functools.cache
def _single_token_table(device):
    """On the chapter's text: each latent's top-20 activations, its most common top token, the single-token latents
    (all top-20 activations on one token) and every latent's density (BOS left out)."""
    sae = _sae(device)
    model = _model(device)
    tokens = text_tokens_for_chapter(device)
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    with torch.no_grad():
        _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], names_filter=[name])
    flat = cache[name][:, 1:].reshape(-1, sae.cfg.d_sae)
    vals, pos = flat.topk(20, dim=0)
    tops = tokens[:, 1:].reshape(-1)[pos]
    mode = tops.mode(0).values
    single = ((tops == mode).all(0) & (vals[-1] > 0)).nonzero()[:, 0]
    return vals, mode, single, (flat != 0).float().mean(0)


def _single_token_latents(device, text):
    """The single-token latents of ``text``, densest first."""
    _, mode, single, density = _single_token_table(device)
    candidates = single[mode[single] == _model(device).to_single_token(text)]
    assert len(candidates), f"no latent of the residual SAE has all of its top activations on {text!r}"
    return candidates[density[candidates].argsort(descending=True)].tolist()


def _single_token_latent(device, text):
    """The chapter's choice: the densest latent of the residual SAE whose top-20 activations (on the chapter's text)
    all fall on the token ``text``; with its largest activation."""
    latent = _single_token_latents(device, text)[0]
    return latent, _single_token_table(device)[0][0, latent].item()


def _period_latent(device):
    return _single_token_latent(device, ".")


def text_tokens_for_chapter(device):
    """The chapter's text: 64 held-out rows, corpus seed 11."""
    return _text(device, batch=64, seed=11)


@chapter.exercise()
def generate_with_steering(device):
    model, sae = _model(device), _sae(device)
    latent, peak = _period_latent(device)
    yield Case((model, sae, "When Mary and John went to the store,", latent, peak), {"max_new_tokens": 8, "seed": 3},
               label=f"the '.' latent {latent}, coefficient {peak:.1f}, 8 tokens, seed 3")
    other = _busy_latent(device)
    yield Case((model, sae, "The old house near the river", other, 8.0), {"max_new_tokens": 6, "seed": 5},
               label=f"latent {other}, coefficient 8.0, 6 tokens, seed 5")


# ------------------------------------------------------------------------------------------------ IOI
@chapter.exercise(dims="batch d_sae", tol=LOGIT_TOL)
def latent_dla(device):
    model, ioi = _model(device), _ioi(device)
    yield Case((model, _z_sae(device), ioi.tokens[:16], ioi.answer_tokens[:16]), label="the hook_z SAE, 16 IOI prompts")
    yield Case((model, _sae(device), ioi.tokens[-8:], ioi.answer_tokens[-8:]), label=f"{RES_SAE}, 8 IOI prompts")


@chapter.exercise(dims="d_sae n_heads")
def decoder_norms_by_head(device):
    yield Case((_z_sae(device), _model(device).cfg.n_heads), label="the hook_z SAE")
    yield Case((_random_topk_sae(device), 4), label="a random SAE with d_in=16 as 4 heads of 4")


def _top_dla_latents(device, n):
    from solutions.ch06_saes import latent_dla as reference

    ioi = _ioi(device)
    with torch.no_grad():
        dla = reference(_model(device), _z_sae(device), ioi.tokens, ioi.answer_tokens)
    return dla.mean(0).topk(n).indices.tolist()


@chapter.exercise(tol=METRIC_TOL)
def ablate_latents_logit_diff(device):
    model, ioi = _model(device), _ioi(device)
    top = _top_dla_latents(device, 5)
    yield Case((model, _z_sae(device), ioi.tokens[:24], ioi.answer_tokens[:24], top),
               label=f"the hook_z SAE, its top-5 DLA latents {top}, 24 IOI prompts")
    latents = [_busy_latent(device), _busy_latent(device, rank=1)]
    yield Case((model, _sae(device), ioi.tokens[-8:], ioi.answer_tokens[-8:], latents),
               label=f"{RES_SAE}, latents {latents}, 8 IOI prompts")


@chapter.exercise(dims="d_sae", tol=LOGIT_TOL)
def latent_attribution(device):
    model, ioi = _model(device), _ioi(device)
    yield Case((model, _sae(device), ioi.tokens[:8], ioi.answer_tokens[:8]), label=f"{RES_SAE}, 8 IOI prompts")
    yield Case((model, _z_sae(device), ioi.tokens[8:14], ioi.answer_tokens[8:14]),
               label="the hook_z SAE, 6 other IOI prompts")


# ------------------------------------------------------------------------------------------------ training
def _config_fields(cfg):
    """The settings of the spec, as plain values (``None`` as the string ``"None"``)."""
    if not isinstance(cfg, LanguageModelSAERunnerConfig):
        raise CheckFailure(Status.WRONG_TYPE, f"returned {type(cfg).__name__}, expected a "
                           "LanguageModelSAERunnerConfig")
    sae = cfg.sae
    fields = {
        "sae architecture": type(sae).architecture(), "sae.d_in": sae.d_in, "sae.d_sae": sae.d_sae,
        "sae.k": getattr(sae, "k", -1), "sae.normalize_activations": str(sae.normalize_activations),
        "sae.aux_loss_coefficient": float(getattr(sae, "aux_loss_coefficient", -1.0)), "sae.device": str(sae.device),
        "logger.log_to_wandb": bool(cfg.logger.log_to_wandb),
    }
    for name in ("model_name", "hook_name", "is_dataset_tokenized", "streaming", "context_size", "training_tokens",
                 "train_batch_size_tokens", "n_batches_in_buffer", "store_batch_size_prompts", "lr",
                 "lr_warm_up_steps", "lr_decay_steps", "dead_feature_window", "n_batches_for_norm_estimate", "seed",
                 "device", "output_path", "checkpoint_path", "n_checkpoints", "verbose"):
        value = getattr(cfg, name)
        fields[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    # "5% (20%) of the steps" is rarely a whole number: rounding down, to the nearest or up are all right (read as
    # rounded down).
    steps = cfg.training_tokens // cfg.train_batch_size_tokens
    for name, share in (("lr_warm_up_steps", 0.05), ("lr_decay_steps", 0.2)):
        if isinstance(fields[name], int) and fields[name] == math.ceil(share * steps):
            fields[name] = math.floor(share * steps)
    return fields


@chapter.exercise(transform=_config_fields)
def sae_training_config(device):
    yield Case((MODEL, "blocks.1.hook_resid_post", 128), label="mlp4l, blocks.1.hook_resid_post, d_in=128, defaults")
    yield Case((MODEL, "blocks.2.attn.hook_z", 128),
               dict(expansion=2, k=4, training_tokens=100_000, batch_tokens=1024, context_size=64, lr=1e-3, seed=3),
               label="blocks.2.attn.hook_z, expansion=2, k=4, 100k tokens, batches of 1024, context 64, lr 1e-3, "
                     "seed 3")


test_exercise, test_mutant_rejected = chapter.tests()


@pytest.mark.parametrize("rounding", [round, math.ceil, lambda x: int(x)], ids=["round", "ceil", "int"])
def test_sae_training_config_accepts_every_rounding_of_the_warm_up(rounding, device):
    """"5% of the steps" is 5.85 steps by default: a learner may round it any standard way."""
    from solutions.ch06_saes import sae_training_config as reference

    def learner(*args, **kwargs):
        cfg = reference(*args, **kwargs)
        steps = cfg.training_tokens // cfg.train_batch_size_tokens
        cfg.lr_warm_up_steps, cfg.lr_decay_steps = rounding(0.05 * steps), rounding(0.2 * steps)
        return cfg

    assert chapter.exercises["sae_training_config"].check(learner, device) == 2


# ------------------------------------------------------------------------------------------------ the story
# What the chapter's prose says about the shipped model and SAEs; the notebook prints the same quantities.
@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.fixture
def cpu():
    return torch.device("cpu")


class _Store:
    """The one method of an ActivationsStore that ``sae_lens.evals`` calls: the same tokens every time."""

    def __init__(self, tokens):
        self.tokens = tokens

    def get_batch_tokens(self, batch_size=None):
        return self.tokens


@pytest.mark.parametrize("z", [False, True], ids=["residual", "hook_z"])
def test_story_sae_metrics_agree_with_sae_lens_evals(z, cpu):
    """Section 2: `sae_metrics` gives SAE-Lens's numbers on the same activations (special tokens left out)."""
    from sae_lens.evals import get_downstream_reconstruction_metrics, get_sparsity_and_variance_metrics
    from sae_lens.training.activation_scaler import ActivationScaler

    from solutions.ch06_saes import latent_density, sae_metrics
    from training.train_sae import flat_hook_z

    model, sae, tokens = _model(cpu), (_z_sae(cpu) if z else _sae(cpu)), _text(cpu)[:8]
    ours = sae_metrics(model, sae, tokens)
    ignore = list(model.tokenizer.all_special_ids)
    with flat_hook_z(sae):  # as sae_lens.evals.run_evals does for hook_z SAEs
        downstream = get_downstream_reconstruction_metrics(
            sae, model, _Store(tokens), ActivationScaler(), compute_kl=True, compute_ce_loss=True, n_batches=1,
            eval_batch_size_prompts=len(tokens), ignore_tokens=ignore)
        sparsity, per_latent = get_sparsity_and_variance_metrics(
            sae, model, _Store(tokens), ActivationScaler(), n_batches=1, compute_l2_norms=False,
            compute_sparsity_metrics=True, compute_variance_metrics=True, compute_featurewise_density_statistics=True,
            eval_batch_size_prompts=len(tokens), model_kwargs={}, ignore_tokens=ignore)
    pairs = {"ce_clean": "ce_loss_without_sae", "ce_sae": "ce_loss_with_sae", "ce_zero": "ce_loss_with_ablation",
             "ce_recovered": "ce_loss_score", "kl_sae": "kl_div_with_sae", "kl_zero": "kl_div_with_ablation"}
    for ours_key, theirs_key in pairs.items():
        assert ours[ours_key] == pytest.approx(downstream[theirs_key], rel=1e-4, abs=1e-5), ours_key
    for key in ("l0", "mse", "explained_variance"):
        assert ours[key] == pytest.approx(sparsity[key], rel=1e-4, abs=1e-5), key
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], names_filter=[name])
    keep = ~torch.isin(tokens, torch.tensor(ignore))
    density = latent_density(cache[name][keep])
    assert torch.allclose(density, torch.tensor(per_latent["feature_density"]), atol=1e-6)
    assert ours["dead_frac"] == pytest.approx((density == 0).float().mean().item())


def test_story_error_term_leaves_the_logits_unchanged(cpu):
    """Section 1: with use_error_term=True the spliced model's logits are the clean logits."""
    model, tokens = _model(cpu), _text(cpu)[:8]
    for sae in (_sae(cpu), _z_sae(cpu)):
        spliced = model.run_with_saes(tokens, saes=[sae], use_error_term=True)
        assert (spliced - model(tokens)).abs().max() < 1e-3


def test_story_zero_ablation_baselines_of_the_two_saes(cpu):
    """Section 2: deleting the residual stream costs several nats on ordinary text; deleting the attention SAE's layer
    barely moves the mean loss there (so its CE loss recovered divides by almost nothing), while its KL shows the
    change, and the SAE's KL is far smaller (the chapter's 16 rows)."""
    from solutions.ch06_saes import sae_metrics

    model, tokens = _model(cpu), text_tokens_for_chapter(cpu)[:16]
    res, att = sae_metrics(model, _sae(cpu), tokens), sae_metrics(model, _z_sae(cpu), tokens)
    assert res["ce_zero"] - res["ce_clean"] > 2, res
    assert abs(att["ce_zero"] - att["ce_clean"]) < 0.1, att
    assert att["kl_zero"] > 0.05 and att["kl_sae"] < 0.15 * att["kl_zero"], att


def test_story_ablating_the_the_latent_hurts_where_it_fires_only(cpu):
    """Section 4: zero-ablating the densest ' the' latent (error term on) raises the loss on the token after the
    positions where it fires, and almost nowhere else."""
    from solutions.ch06_saes import ablate_sae_latent

    model, sae = _model(cpu), _sae(cpu)
    latent, _ = _single_token_latent(cpu, " the")
    tokens = text_tokens_for_chapter(cpu)[:16]
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], names_filter=[name])
    targets = tokens[:, 1:, None]
    clean = model(tokens).log_softmax(-1)[:, :-1].gather(-1, targets)[..., 0]
    ablated = ablate_sae_latent(model, sae, tokens, latent).log_softmax(-1)[:, :-1].gather(-1, targets)[..., 0]
    where = cache[name][:, :-1, latent] > 0
    increase, elsewhere = (clean - ablated)[where].mean().item(), (clean - ablated)[~where].mean().item()
    assert increase > max(0.1, 10 * abs(elsewhere)), (increase, elsewhere)


def test_story_steering_with_the_period_latent_gives_capitalised_words(cpu):
    """Section 4: "At two and four times its largest activation, almost every sampled token starts a capitalised word
    ... At one times its largest activation the share is no higher than without steering, and most samples end early"
    (the chapter's prompts, seeds and lengths)."""
    from solutions.ch06_saes import generate_with_steering

    model, sae = _model(cpu), _sae(cpu)
    latent, peak = _period_latent(cpu)
    prompts = ["In the morning, the weather was", "The old house near the river", "After the lunch, they"]
    vocab = model.to_str_tokens(torch.arange(model.cfg.d_vocab))
    capitalised = torch.tensor([len(t) > 1 and t[0] == " " and t[1].isupper() for t in vocab])

    def samples(coeff):
        new = [model.to_tokens(generate_with_steering(model, sae, p, latent, coeff, 12, seed)[len(p):],
                               prepend_bos=False)[0].cpu() for p in prompts for seed in range(2)]
        return capitalised[torch.cat(new)].float().mean().item(), sum(len(t) < 12 for t in new) / len(new)

    runs = {multiple: samples(multiple * peak) for multiple in (0, 1, 2, 4)}
    assert runs[2][0] >= 0.75 and runs[4][0] >= 0.75, runs
    assert runs[1][0] <= runs[0][0] and runs[1][1] > 0.5, runs


def test_story_the_period_latent_is_dense(cpu):
    """Section 2: "section 3's `.` latent is one of this SAE's dense latents" (above 10% on the chapter's text)."""
    latent, _ = _period_latent(cpu)
    assert _single_token_table(cpu)[3][latent] > 0.1, _single_token_table(cpu)[3][latent]


def test_story_feature_splitting_the_period_latents_differ(cpu):
    """Section 3: several latents share the token '.'; the three densest promote different tokens."""
    from solutions.ch06_saes import latent_top_logits

    model, sae = _model(cpu), _sae(cpu)
    latents = _single_token_latents(cpu, ".")
    assert len(latents) >= 3, latents
    promoted = [tuple(latent_top_logits(model, sae, latent, 4)[1].tolist()) for latent in latents[:3]]
    assert len(set(promoted)) == 3, promoted


def test_story_documents_start_with_bos_and_end_with_eos_the_same_token(cpu):
    """Section 0: "`<|endoftext|>` is both this model's BOS and its EOS: each document of the stream starts with BOS
    and ends with EOS"."""
    tokenizer = _model(cpu).tokenizer
    assert tokenizer.bos_token_id == tokenizer.eos_token_id and tokenizer.encode("Hi there")[0] == \
        tokenizer.bos_token_id


def test_story_sae_lens_redraws_its_progress_bar_every_100_steps():
    """Section 6: "The progress bar is SAE-Lens's: it redraws every 100 steps"; the chapter's run is not a multiple of
    100 steps, so the bar stops short of the end."""
    import inspect

    from sae_lens.training.sae_trainer import SAETrainer

    from solutions.ch06_saes import sae_training_config

    assert inspect.signature(SAETrainer._update_pbar).parameters["update_interval"].default == 100
    cfg = sae_training_config(MODEL, "blocks.1.hook_resid_post", 128)
    assert (cfg.training_tokens // cfg.train_batch_size_tokens) % 100 != 0


def test_story_the_hook_z_sae_reads_the_layer_with_the_most_direct_ioi_attribution(cpu):
    """Section 5: the hook_z SAE sits on the layer whose heads' summed direct IO - S attribution is largest, on the
    chapter's IOI prompts too."""
    model, sae, ioi = _model(cpu), _z_sae(cpu), _ioi(cpu)
    _, cache = model.run_with_cache(ioi.tokens)
    dirs = (model.W_U[:, ioi.answer_tokens[:, 0]] - model.W_U[:, ioi.answer_tokens[:, 1]]).T
    dirs = dirs / cache["ln_final.hook_scale"][:, -1]
    per_layer = torch.stack([torch.einsum("bhd,hdm,bm->", cache["z", layer][:, -1], model.W_O[layer], dirs)
                             for layer in range(model.cfg.n_layers)])
    assert int(per_layer.argmax()) == int(sae.cfg.metadata.hook_name.split(".")[1]), per_layer


def test_story_top_dla_latents_matter_more_than_random_ones(cpu):
    """Section 5: ablating the top-20 DLA latents lowers the logit difference far more than ablating 20 random latents
    active at the last token (the chapter's seeded draw)."""
    from solutions.ch06_saes import ablate_latents_logit_diff, latent_dla

    model, sae, ioi = _model(cpu), _z_sae(cpu), _ioi(cpu)
    dla = latent_dla(model, sae, ioi.tokens, ioi.answer_tokens)
    top = dla.mean(0).topk(20).indices
    active = (dla != 0).any(0).nonzero()[:, 0]
    others = active[~torch.isin(active, top)]
    random = others[torch.randperm(len(others), generator=_gen(0))[:20]].tolist()
    logits = model(ioi.tokens)[:, -1]
    clean = (logits.gather(-1, ioi.answer_tokens[:, :1]) - logits.gather(-1, ioi.answer_tokens[:, 1:])).mean().item()
    ld_top = ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, top.tolist())
    ld_random = ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, random)
    assert clean - ld_top > max(3 * (clean - ld_random), 0.1), (clean, ld_top, ld_random)


def _clean_ld(model, ioi):
    logits = model(ioi.tokens)[:, -1]
    return (logits.gather(-1, ioi.answer_tokens[:, :1]) - logits.gather(-1, ioi.answer_tokens[:, 1:])).mean().item()


def test_story_the_hook_z_layer_carries_a_small_share_of_ioi(cpu):
    """Section 5: "they carry a small part of the answer, because this layer does": the top-20 DLA latents' ablation
    removes under 10% of the logit difference, the layer's heads write under 20% of it directly; and "where do they
    live": spread over the heads (each top latent's largest head holds under half of its decoder norm on average)."""
    from solutions.ch06_saes import ablate_latents_logit_diff, decoder_norms_by_head, latent_dla

    model, sae, ioi = _model(cpu), _z_sae(cpu), _ioi(cpu)
    clean = _clean_ld(model, ioi)
    dla = latent_dla(model, sae, ioi.tokens, ioi.answer_tokens)
    top = dla.mean(0).topk(20).indices.tolist()
    assert clean - ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, top) < 0.1 * clean
    layer = int(sae.cfg.metadata.hook_name.split(".")[1])
    _, cache = model.run_with_cache(ioi.tokens)
    dirs = (model.W_U[:, ioi.answer_tokens[:, 0]] - model.W_U[:, ioi.answer_tokens[:, 1]]).T
    direct = torch.einsum("bhd,hdm,bm->", cache["z", layer][:, -1], model.W_O[layer],
                          dirs / cache["ln_final.hook_scale"][:, -1]).item() / len(ioi)
    assert direct < 0.2 * clean, (direct, clean)
    share = decoder_norms_by_head(sae, model.cfg.n_heads)[top].max(-1).values.mean().item()
    assert share < 0.5, share


def test_story_residual_latents_by_attribution_carry_much_of_ioi(cpu):
    """Section 5, latent attribution: "a few latents carry a large share of it, and random latents active at the same
    place carry almost none": ablating the top 20 residual latents by attribution removes over 25% of the logit
    difference, 20 random latents active at END under 5% (the chapter's seeded draw); "the attribution ranks the top
    latents nearly as their exact ablations do, but each of its values is smaller than the exact drop"."""
    from solutions.ch06_saes import ablate_latents_logit_diff, latent_attribution

    model, sae, ioi = _model(cpu), _sae(cpu), _ioi(cpu)
    clean = _clean_ld(model, ioi)
    attribution = latent_attribution(model, sae, ioi.tokens, ioi.answer_tokens)
    top = attribution.topk(20).indices.tolist()
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(ioi.tokens, saes=[sae], names_filter=[name])
    active = (cache[name][:, -1] != 0).any(0).nonzero()[:, 0]
    others = active[~torch.isin(active, torch.tensor(top))]
    random = others[torch.randperm(len(others), generator=_gen(0))[:20]].tolist()
    drop_top = clean - ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, top)
    drop_random = clean - ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, random)
    assert drop_top > 0.25 * clean and abs(drop_random) < 0.05 * clean, (clean, drop_top, drop_random)
    exact = torch.tensor([clean - ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, [latent])
                          for latent in top[:10]])
    estimate = attribution[top[:10]]
    assert torch.corrcoef(torch.stack([exact, estimate]))[0, 1] > 0.8 and (estimate < exact).float().mean() >= 0.8, (
        exact, estimate)


def test_story_attribution_misses_a_strongly_active_latent_that_matters_most(cpu):
    """Section 5: among the three latents most active at END, "one of these latents matters more than any of the
    attribution's top picks, and the attribution ranks it near the bottom" (exact drop above every top-10 pick's,
    attribution negative, ranked in the bottom tenth)."""
    from solutions.ch06_saes import ablate_latents_logit_diff, latent_attribution

    model, sae, ioi = _model(cpu), _sae(cpu), _ioi(cpu)
    clean = _clean_ld(model, ioi)
    attribution = latent_attribution(model, sae, ioi.tokens, ioi.answer_tokens)
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(ioi.tokens, saes=[sae], names_filter=[name])

    def drop(latent):
        return clean - ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, [latent])

    best_pick = max(drop(latent) for latent in attribution.topk(10).indices.tolist())
    missed = [latent for latent in cache[name][:, -1].mean(0).topk(3).indices.tolist()
              if drop(latent) > best_pick and attribution[latent] < 0
              and (attribution > attribution[latent]).sum() > 0.9 * sae.cfg.d_sae]
    assert missed, (best_pick, attribution)
