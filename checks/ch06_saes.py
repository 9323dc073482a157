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

import torch
from sae_lens import LanguageModelSAERunnerConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

from checks.helpers import LOGITS, LOSS, chapter_model, seeded, shipped_sae
from checks.mutants.ch06_saes import MUTANTS
from utils.corpus import IOI_TRAIN_TEMPLATES, TRAIN_NAMES
from utils.chapters import spec
from utils.checkers import Chapter
from utils.checking import Case, CheckFailure, Status
from utils.data import hook_z_sae_for, ioi_same_length

chapter = Chapter("ch06_saes", mutants=MUTANTS)

MODEL = spec(chapter.name).model
RES_SAE = f"{MODEL}-res1"



# ------------------------------------------------------------------------------------------------ shared inputs
def _model(device):
    return chapter_model(chapter, device, sae_transformer=True)


def _sae(device):
    return shipped_sae(RES_SAE, device)


def _z_sae(device):
    return shipped_sae(hook_z_sae_for(MODEL), device, what=f"a hook_z SAE of {MODEL}")


def _randn(*shape, device, seed=0, scale=1.0):
    return (torch.randn(*shape, generator=seeded(seed)) * scale).to(device)


@functools.cache
def _text(device, batch=16, seed=11):
    from utils.data import text_tokens

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
    g = seeded(seed)
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


@chapter.exercise(tol=LOGITS)
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


@chapter.exercise(tol=LOSS)
def reconstruction_metrics(device):
    x = _randn(200, 16, device=device, seed=8) + _randn(16, device=device, seed=9, scale=3.0)
    yield Case((x, _sparse_acts(200, 30, device, 10), x + _randn(200, 16, device=device, seed=12, scale=0.5)),
               label="random: 200 tokens, d_in=16, d_sae=30 (2 dead latents), x with a large mean")
    yield Case(_real_recon(device), label=f"{RES_SAE} on 64 real activations")


@chapter.exercise(dims="d_sae")
def latent_density(device):
    yield Case((_sparse_acts(100, 40, device, 13),), label="random sparse latents [100, 40], 2 dead")
    yield Case((_real_recon(device)[1],), label=f"{RES_SAE}'s latents of 64 real activations")


@chapter.exercise(tol=LOSS)
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


@chapter.exercise(dims="d_sae d_model", tol=LOGITS)
def latent_residual_directions(device):
    model = _model(device)
    yield Case((model, _z_sae(device)), label="the hook_z SAE")
    yield Case((model, _sae(device)), label=f"{RES_SAE} (residual stream)")


@chapter.exercise(tol=LOGITS)
def latent_top_logits(device):
    model = _model(device)
    yield Case((model, _sae(device), _busy_latent(device), 5), label=f"{RES_SAE}, latent {_busy_latent(device)}, k=5")
    z_latent = _busy_latent(device, z=True, rank=1)
    yield Case((model, _z_sae(device), z_latent, 6), label=f"the hook_z SAE, latent {z_latent}, k=6")


# ------------------------------------------------------------------------------------------------ causal
@chapter.exercise(dims="batch pos d_vocab", tol=LOGITS)
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
@chapter.exercise(dims="batch d_sae", tol=LOGITS)
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


@chapter.exercise(tol=LOSS)
def ablate_latents_logit_diff(device):
    model, ioi = _model(device), _ioi(device)
    top = _top_dla_latents(device, 5)
    yield Case((model, _z_sae(device), ioi.tokens[:24], ioi.answer_tokens[:24], top),
               label=f"the hook_z SAE, its top-5 DLA latents {top}, 24 IOI prompts")
    latents = [_busy_latent(device), _busy_latent(device, rank=1)]
    yield Case((model, _sae(device), ioi.tokens[-8:], ioi.answer_tokens[-8:], latents),
               label=f"{RES_SAE}, latents {latents}, 8 IOI prompts")


@chapter.exercise(dims="d_sae", tol=LOGITS)
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
               dict(expansion=2, k=4, training_tokens=100_000, batch_tokens=512, context_size=64, lr=1e-3, seed=3,
                    device="cuda"),
               label="blocks.2.attn.hook_z, expansion=2, k=4, 100k tokens, batches of 512, context 64, lr 1e-3, "
                     "seed 3, device='cuda' (a configuration only: nothing runs on it)")


class _Store:
    """The one method of an ActivationsStore that ``sae_lens.evals`` calls: the same tokens every time."""

    def __init__(self, tokens):
        self.tokens = tokens

    def get_batch_tokens(self, batch_size=None):
        return self.tokens


def _clean_ld(model, ioi):
    logits = model(ioi.tokens)[:, -1]
    return (logits.gather(-1, ioi.answer_tokens[:, :1]) - logits.gather(-1, ioi.answer_tokens[:, 1:])).mean().item()
