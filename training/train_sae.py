"""Train a sparse autoencoder (SAE) on a shipped model with SAE-Lens's own training runner.

The SAE is a TopK SAE (``TopKTrainingSAEConfig``) trained by ``LanguageModelSAETrainingRunner`` on one
hook point's activations, offline: the model is passed as ``override_model`` and a pre-tokenized
``datasets.Dataset`` of generated text (``utils/corpus.py``) as ``override_dataset``; nothing is
logged to Weights & Biases. It is saved in SAE-Lens's inference format to ``models/saes/<name>/``
(``cfg.json`` + ``sae_weights.safetensors``, loadable with ``SAE.load_from_disk`` or
``utils.models.load_sae(name)``), next to ``train_info.json`` and a ``README.md`` card with the
properties this script measured on held-out text (``measure_sae``).

Attention-output SAEs read ``blocks.{L}.attn.hook_z`` with all heads concatenated (``d_in = n_heads * d_head``,
like ARENA's ``gpt2-small-hook-z-kk``): SAE-Lens's activation store flattens the head dimension for training, and
the saved SAE has ``reshape_activations="hook_z"``, so ``sae.encode`` takes ``[..., n_heads, d_head]`` and
``sae.decode`` gives it back in that shape (``HookedSAETransformer`` splices it in at ``hook_z`` as it is).
``--hook name-movers`` picks the layer itself: the layer whose heads' summed direct logit attribution toward
``IO - S`` at the last token of IOI prompts is largest (``name_mover_layer``); the card records that choice.

The model is the one ``utils.models.load_model(name)`` returns by default (LayerNorm folded, writing
weights centred, ...), so the activations learners cache in the chapters are exactly the ones the SAE
was trained on. (Processing changes the residual stream: ``center_writing_weights`` removes its mean
over ``d_model``. An SAE trained on the raw weights would see shifted inputs in the chapters.)

Usage::

    python -m training.train_sae --model mlp4l --hook blocks.1.hook_resid_post --seed 0
    python -m training.train_sae --model mlp4l --hook name-movers --seed 0     # hook_z of the name-mover layer
    python -m training.train_sae --model attn2l --hook blocks.0.hook_resid_post --tokens 1000000 --name attn2l-res0
    python -m training.train_sae --name mlp4l-res1 --card-only     # re-measure, rewrite README.md
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import time
import warnings
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub: fail fast instead of retrying
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402

warnings.filterwarnings("ignore", message=".*HookedTransformer.*deprecated.*", category=DeprecationWarning)
# SAE-Lens compares the number of dataset *rows* with the number of training *tokens* (a false alarm here:
# the dataset holds every training token), and copies token rows with torch.tensor(tensor).
warnings.filterwarnings("ignore", message="The training dataset contains fewer samples")
warnings.filterwarnings("ignore", message="To copy construct from a tensor")


class _QuietHookZView(logging.Filter):
    """SAE-Lens's activation store tries ``.view`` on the (non-contiguous) ``hook_z`` cache first and logs an error
    for every batch before it falls back to ``.reshape``, which works: drop those two lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Error during view operation", "Attempting to use reshape"))


logging.getLogger("sae_lens").addFilter(_QuietHookZView())

from utils.corpus import HELDOUT_NAMES, IOI_TRAIN_TEMPLATES, TRAIN_NAMES  # noqa: E402
from utils.data import text_rows  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAES = ROOT / "models" / "saes"

# Corpus seeds never used to train the shipped models (training/train_model.py uses seed * 100_003 + chunk
# with small chunk counts; utils.data.text_tokens uses 987_654 for the model cards).
TRAIN_TEXT_SEED = 424_242  # + --seed: the SAE's training text
EVAL_TEXT_SEED = 525_252  # held-out text for measure_sae / the card
EVAL_ROWS = 200  # rows of n_ctx tokens measured for the card and the tests
NORM_BATCHES = 50  # training batches used to estimate the activation scaling factor
NAMES = TRAIN_NAMES + HELDOUT_NAMES


def hook_short(hook_name: str) -> str:
    """A short tag for a hook name: ``blocks.1.hook_resid_post`` -> ``res1``, ``blocks.2.hook_mlp_out`` -> ``mlp2``."""
    m = re.fullmatch(r"blocks\.(\d+)\.(?:hook_)?([\w.]+)", hook_name)
    if not m:
        return re.sub(r"[^\w]+", "_", hook_name)
    layer, point = m.groups()
    tags = {"resid_post": "res", "resid_pre": "respre", "resid_mid": "resmid", "mlp_out": "mlp",
            "attn_out": "attn", "attn.hook_z": "z", "mlp.hook_post": "mlppost"}
    return f"{tags.get(point, point.replace('.', '_'))}{layer}"


def is_hook_z(hook_name: str) -> bool:
    """Whether ``hook_name`` is an attention layer's ``hook_z`` (``[batch, pos, n_heads, d_head]``)."""
    return hook_name.endswith("attn.hook_z")


def hook_d_in(model, hook_name: str) -> int:
    """The SAE input size for ``hook_name``: ``n_heads * d_head`` for ``hook_z`` (heads concatenated), ``d_mlp`` for
    ``mlp.hook_post``/``hook_pre``, else ``d_model``."""
    if is_hook_z(hook_name):
        return model.cfg.n_heads * model.cfg.d_head
    if hook_name.endswith(("mlp.hook_post", "mlp.hook_pre")):
        return model.cfg.d_mlp
    return model.cfg.d_model


@contextlib.contextmanager
def flat_hook_z(sae):
    """SAE-Lens's ``hook_z`` SAEs reshape ``[..., n_heads, d_head]`` inputs themselves; inside this context the SAE
    takes and returns flat ``[..., n_heads * d_head]`` activations (as ``sae_lens.evals.run_evals`` does)."""
    if not getattr(sae, "hook_z_reshaping_mode", False):
        yield sae
        return
    sae.turn_off_forward_pass_hook_z_reshaping()
    try:
        yield sae
    finally:
        sae.turn_on_forward_pass_hook_z_reshaping()


IOI_PAIRS = 10  # name pairs per template and order for the IOI measurements (14 templates x 2 orders x 10)
IOI_SEED = 31_337


def ioi_batches(model, templates=IOI_TRAIN_TEMPLATES, names=TRAIN_NAMES, n_pairs: int = IOI_PAIRS,
                seed: int = IOI_SEED) -> list:
    """One ``utils.data.IOIDataset`` per template (its prompts share a token length), both orders; templates that open
    with a name are left out (there the name is another token than the answer)."""
    from utils.data import ioi_dataset, opens_with_name

    return [ioi_dataset(model, [t], names, n_pairs=n_pairs, seed=seed + i) for i, t in enumerate(templates)
            if not opens_with_name(t)]


def _io_minus_s(model, data) -> torch.Tensor:
    """``W_U[:, IO] - W_U[:, S]`` for each prompt of ``data``: ``[batch, d_model]``."""
    return (model.W_U[:, data.answer_tokens[:, 0]] - model.W_U[:, data.answer_tokens[:, 1]]).T


@torch.no_grad()
def name_mover_layer(model, batches=None) -> tuple[int, list[float]]:
    """The layer of the name-mover-like heads: the layer whose heads' summed direct logit attribution toward
    ``IO - S`` at the last token of IOI prompts (the heads' outputs ``z @ W_O``, divided by the final LayerNorm
    scale, dotted with ``W_U[:, IO] - W_U[:, S]``) is largest.

    Returns ``(layer, per-layer DLA)``, the DLA averaged over the prompts of ``batches`` (default
    ``ioi_batches(model)``: training names in the training frames).
    """
    batches = ioi_batches(model) if batches is None else batches
    totals = torch.zeros(model.cfg.n_layers)
    n = 0
    for data in batches:
        names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)] + ["ln_final.hook_scale"]
        _, cache = model.run_with_cache(data.tokens, names_filter=names)
        direction = _io_minus_s(model, data) / cache["ln_final.hook_scale"][:, -1]  # [batch, d_model]
        for layer in range(model.cfg.n_layers):
            out = torch.einsum("bhd,hdm->bm", cache["z", layer][:, -1], model.W_O[layer])
            totals[layer] += (out * direction).sum().item()
        n += len(data)
    per_layer = (totals / n).tolist()
    return int(torch.tensor(per_layer).argmax()), per_layer


@torch.no_grad()
def ioi_latent_dla(model, sae, hook_name: str, batches=None) -> torch.Tensor:
    """Each latent's direct logit attribution toward ``IO - S`` at the last token of each IOI prompt, for an SAE on
    ``blocks.{L}.attn.hook_z``: the latent's activation times its decoder direction mapped to the residual stream
    through ``W_O[L]``, divided by the final LayerNorm scale, dotted with ``W_U[:, IO] - W_U[:, S]``.

    Returns ``[n_prompts, d_sae]`` over the prompts of ``batches`` (default ``ioi_batches(model)``).
    """
    layer = int(hook_name.split(".")[1])
    batches = ioi_batches(model) if batches is None else batches
    d_sae = sae.cfg.d_sae
    dirs = torch.einsum("shd,hdm->sm", sae.W_dec.view(d_sae, model.cfg.n_heads, model.cfg.d_head),
                        model.W_O[layer])  # [d_sae, d_model]: each latent's output in the residual stream
    rows = []
    for data in batches:
        _, cache = model.run_with_cache(data.tokens, names_filter=[hook_name, "ln_final.hook_scale"])
        with flat_hook_z(sae):
            acts = sae.encode(cache[hook_name][:, -1].flatten(-2))  # [batch, d_sae]
        direction = _io_minus_s(model, data) / cache["ln_final.hook_scale"][:, -1]  # [batch, d_model]
        rows.append(acts * (direction @ dirs.T))
    return torch.cat(rows)


@torch.no_grad()
def ioi_answer_metrics(model, sae, hook_name: str, batches=None) -> dict:
    """The SAE judged on the task of its layer: the logit difference ``IO - S`` at the last token of IOI prompts,
    clean (``ioi_ld_clean``), with the SAE spliced in at ``hook_name`` without error term (``ioi_ld_sae``) and with
    the hook zero-ablated (``ioi_ld_zero``); ``ioi_ld_recovered`` = (SAE - zero) / (clean - zero): the share of what
    the layer adds to the logit difference that the SAE keeps.
    """
    batches = ioi_batches(model) if batches is None else batches

    def splice(act, hook):
        with flat_hook_z(sae):
            return sae.decode(sae.encode(act.flatten(2))).view(act.shape)

    runs = {"clean": [], "sae": [(hook_name, splice)], "zero": [(hook_name, lambda act, hook: torch.zeros_like(act))]}
    out = {}
    for run, hooks in runs.items():
        diff = 0.0
        for data in batches:
            logits = model.run_with_hooks(data.tokens, fwd_hooks=hooks)[:, -1]
            diff += (logits.gather(-1, data.answer_tokens[:, :1]) - logits.gather(-1, data.answer_tokens[:, 1:])).sum()
        out[f"ioi_ld_{run}"] = diff.item() / sum(len(d) for d in batches)
    out["ioi_ld_recovered"] = (out["ioi_ld_sae"] - out["ioi_ld_zero"]) / (out["ioi_ld_clean"] - out["ioi_ld_zero"])
    return out


IOI_MIN_ACTIVE, IOI_MIN_FRAC_IO, IOI_MIN_DLA = 5, 0.75, 0.1  # what "separates IO from S" means (best_ioi_latent)


def best_ioi_latent(dla: torch.Tensor) -> dict:
    """Summarise ``ioi_latent_dla``'s output ``[n_prompts, d_sae]``.

    A latent *separates IO from S* when it is active at the last token on at least ``IOI_MIN_ACTIVE`` prompts, favours
    IO (DLA > 0) on at least ``IOI_MIN_FRAC_IO`` of them, and adds at least ``IOI_MIN_DLA`` logits of ``IO - S`` on
    average when active. Returns their number (``ioi_separating_latents``) and the one with the largest mean DLA over
    all prompts (``ioi_latent``; among all latents if none separates): its mean DLA when active, the prompts on which
    it is active and the fraction of those on which it favours IO; plus ``ioi_total_dla`` (all latents together,
    averaged over prompts) and ``ioi_prompts``.
    """
    active = (dla != 0).sum(0)
    mean_when_active = dla.sum(0) / active.clamp_min(1)
    frac_io = (dla > 0).sum(0) / active.clamp_min(1)
    separating = (active >= IOI_MIN_ACTIVE) & (frac_io >= IOI_MIN_FRAC_IO) & (mean_when_active >= IOI_MIN_DLA)
    score = dla.mean(0).masked_fill(~separating, -float("inf")) if separating.any() else dla.mean(0)
    latent = int(score.argmax())
    return dict(ioi_separating_latents=int(separating.sum()), ioi_latent=latent,
                ioi_latent_dla=mean_when_active[latent].item(), ioi_latent_active=int(active[latent]),
                ioi_latent_frac_io=frac_io[latent].item(), ioi_total_dla=dla.sum(1).mean().item(),
                ioi_prompts=int(dla.shape[0]))


def eval_tokens(model, n_rows: int | None = None, seed: int = EVAL_TEXT_SEED) -> torch.Tensor:
    """Held-out text for ``measure_sae``: ``[n_rows, n_ctx]`` on the model's device, BOS first (``n_rows``: default
    ``EVAL_ROWS``, read when called, so that the card's "N rows" is always the rows measured)."""
    n_rows = EVAL_ROWS if n_rows is None else n_rows
    return text_rows(model.tokenizer, n_rows, model.cfg.n_ctx, seed).to(model.cfg.device)


def name_token_ids(tokenizer) -> dict[int, str]:
    """Token ids that are exactly one corpus name (IOI train and held-out names), with or without a space."""
    ids = {}
    for name in NAMES:
        for text in (" " + name, name):
            enc = tokenizer.encode(text, add_special_tokens=False)
            if len(enc) == 1:
                ids[enc[0]] = name
    return ids


@torch.no_grad()
def measure_sae(model, sae, hook_name: str, tokens: torch.Tensor, top: int = 20) -> dict:
    """Measure an SAE spliced into ``model`` at ``hook_name`` on ``tokens``.

    Statistics over activations skip position 0 of every row (the BOS a row starts with, whose residual
    stream is an outlier that the SAE also reconstructs); the CE losses splice the SAE in at every
    position (SAE-Lens's ``evals.get_recons_loss``).

    Args:
        model: the ``HookedTransformer`` the SAE was trained on (same weight processing).
        sae: an SAE-Lens ``SAE`` on ``hook_name`` (``d_in`` as ``hook_d_in``).
        hook_name: the hook point the SAE reads and replaces, e.g. ``"blocks.1.hook_resid_post"``.
        tokens: ``[batch, pos]`` token ids, e.g. ``eval_tokens(model)``.
        top: how many top activations define a latent's "top tokens".

    Returns:
        A dict of floats/ints: ``explained_variance`` (1 - sum of squared errors / total variance about
        the mean, SAE-Lens's definition), ``l0`` (mean number of active latents per token),
        ``dead_frac`` (latents never active on these tokens), ``ce_clean`` / ``ce_sae`` / ``ce_zero``
        (next-token loss, nats: clean, SAE spliced in, hook zero-ablated), ``ce_recovered`` =
        (ce_zero - ce_sae) / (ce_zero - ce_clean), and the best single-name latent: ``name_latent`` (id),
        ``name_token`` (the name), ``name_frac`` (fraction of its top-``top`` activations on that name
        token; ties go to the latent with the larger top activation), plus ``n_name_latents`` (latents
        with ``name_frac`` >= 0.9) and ``n_tokens``. For a ``hook_z`` SAE also the latent with the largest direct
        logit attribution toward ``IO - S`` on IOI prompts (``best_ioi_latent``): ``ioi_latent``,
        ``ioi_separating_latents`` and more (see ``best_ioi_latent``), and the SAE judged on IOI answers
        (``ioi_answer_metrics``: ``ioi_ld_clean`` / ``_sae`` / ``_zero``, ``ioi_ld_recovered``).

    Example:
        >>> m = measure_sae(model, sae, "blocks.0.hook_resid_post", eval_tokens(model))   # doctest: +SKIP
        >>> m["explained_variance"], m["l0"], m["ce_recovered"]                            # doctest: +SKIP
        (0.93, 16.0, 0.97)
    """
    from sae_lens.evals import get_recons_loss
    from sae_lens.training.activation_scaler import ActivationScaler

    model.eval()
    sae.eval()
    _, cache = model.run_with_cache(tokens, names_filter=[hook_name])
    x = cache[hook_name][:, 1:].to(sae.device).flatten(2)  # [batch, pos - 1, d_in] (hook_z: heads concatenated)
    with flat_hook_z(sae):
        feats = sae.encode(x)  # [batch, pos - 1, d_sae]
        recon = sae.decode(feats)
        # evals.get_recons_loss flattens hook_z's heads itself (as run_evals does, with the SAE's reshaping off)
        ce = get_recons_loss(sae, model, ActivationScaler(), tokens, compute_kl=True, compute_ce_loss=True,
                             hook_name=hook_name)
    xf = x.reshape(-1, x.shape[-1]).double()
    err = (xf - recon.reshape(xf.shape).double()).pow(2).sum()
    var = (xf - xf.mean(0)).pow(2).sum()
    active = feats.reshape(-1, feats.shape[-1]) != 0  # [n_tokens, d_sae]

    ce_clean, ce_sae, ce_zero = (ce[k].mean().item() for k in
                                 ("ce_loss_without_sae", "ce_loss_with_sae", "ce_loss_with_ablation"))

    # Best single-name latent: the fraction of a latent's top activations that fall on one name token.
    flat = feats.reshape(-1, feats.shape[-1])
    toks = tokens[:, 1:].reshape(-1).to(flat.device)
    vals, idx = flat.topk(top, dim=0)  # [top, d_sae]
    names = name_token_ids(model.tokenizer)
    best = (0.0, 0.0, -1, None)  # (fraction, top activation, latent, name)
    n_name_latents = 0
    for latent in range(flat.shape[1]):
        hits = [int(t) for t, v in zip(toks[idx[:, latent]].tolist(), vals[:, latent].tolist()) if v > 0]
        if not hits:
            continue
        tok_id, count = Counter(hits).most_common(1)[0]
        if tok_id not in names:
            continue
        frac = count / top
        n_name_latents += frac >= 0.9
        key = (frac, vals[0, latent].item())
        if key > best[:2]:
            best = (frac, vals[0, latent].item(), latent, names[tok_id])
    ioi = {}
    if is_hook_z(hook_name):
        batches = ioi_batches(model)
        ioi = best_ioi_latent(ioi_latent_dla(model, sae, hook_name, batches)) | ioi_answer_metrics(
            model, sae, hook_name, batches)
    return dict(
        explained_variance=(1 - err / var).item(),
        l0=active.sum(-1).float().mean().item(),
        dead_frac=(~active.any(0)).float().mean().item(),
        ce_clean=ce_clean,
        ce_sae=ce_sae,
        ce_zero=ce_zero,
        ce_recovered=(ce_zero - ce_sae) / (ce_zero - ce_clean),
        kl_sae=ce["kl_div_with_sae"].mean().item(),
        kl_zero=ce["kl_div_with_ablation"].mean().item(),
        kl_recovered=1 - ce["kl_div_with_sae"].mean().item() / ce["kl_div_with_ablation"].mean().item(),
        name_latent=best[2],
        name_token=best[3],
        name_frac=best[0],
        n_name_latents=int(n_name_latents),
        n_tokens=int(active.shape[0]),
        **ioi,
    )


def format_metrics(m: dict) -> str:
    """A markdown table of ``measure_sae``'s output."""
    rows = [
        ("held-out tokens measured (BOS at position 0 skipped)", f"{m['n_tokens']:,}"),
        ("explained variance", f"{m['explained_variance']:.3f}"),
        ("mean L0 (active latents per token)", f"{m['l0']:.1f}"),
        ("dead latents (never active on these tokens)", f"{m['dead_frac']:.1%}"),
        ("CE loss clean / SAE spliced in / hook zero-ablated (nats)",
         f"{m['ce_clean']:.3f} / {m['ce_sae']:.3f} / {m['ce_zero']:.3f}"),
        ("CE loss recovered, (zero - SAE) / (zero - clean)", f"{m['ce_recovered']:.1%}"),
        ("KL(clean || SAE spliced in) / KL(clean || hook zero-ablated), per token",
         f"{m['kl_sae']:.4f} / {m['kl_zero']:.4f}"),
        ("KL recovered, 1 - KL(SAE) / KL(zero) (SAE-Lens's kl_div_score)", f"{m['kl_recovered']:.1%}"),
        ("best single-name latent: id, name, fraction of its top-20 activations on that name",
         f"{m['name_latent']}, {m['name_token']!r}, {m['name_frac']:.0%}"),
        ("latents whose top-20 activations are >= 90% one name", f"{m['n_name_latents']}"),
    ]
    if "ioi_latent" in m:
        rows += [
            (f"IOI ({m['ioi_prompts']} prompts, training names and frames): logit difference IO - S at the last "
             "token, clean / SAE spliced in / hook zero-ablated",
             f"{m['ioi_ld_clean']:.2f} / {m['ioi_ld_sae']:.2f} / {m['ioi_ld_zero']:.2f}"),
            ("IOI: logit difference recovered, (SAE - zero) / (clean - zero)", f"{m['ioi_ld_recovered']:.1%}"),
            ("IOI: mean direct logit attribution toward IO - S of all latents together, at the last token",
             f"{m['ioi_total_dla']:.2f}"),
            (f"IOI: latents that separate IO from S (active at the last token on >= {IOI_MIN_ACTIVE} prompts, "
             f"favouring IO on >= {IOI_MIN_FRAC_IO:.0%} of them, by >= {IOI_MIN_DLA} logits on average)",
             f"{m['ioi_separating_latents']}"),
            ("IOI: of those, the one with the largest mean DLA over all prompts: id, mean DLA when active, prompts on "
             "which it is active, share of them on which it favours IO",
             f"{m['ioi_latent']}, {m['ioi_latent_dla']:.2f}, {m['ioi_latent_active']}, {m['ioi_latent_frac_io']:.0%}"),
        ]
    return "\n".join(["| property | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def build_runner_config(args, d_in: int, device: str):
    """The ``LanguageModelSAERunnerConfig`` for a TopK SAE on ``args.hook`` (``d_in``: ``hook_d_in``)."""
    from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig, TopKTrainingSAEConfig

    steps = args.tokens // args.batch_tokens
    return LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(
            d_in=d_in,
            d_sae=args.expansion * d_in,
            k=args.k,
            # hook_z: the activation store flattens the heads for training; the saved SAE reshapes
            # [..., n_heads, d_head] inputs itself, so HookedSAETransformer can splice it in at hook_z.
            reshape_activations="hook_z" if is_hook_z(args.hook) else "none",
            # AuxK (Gao et al. 2024): latents dead for dead_feature_window steps learn to reconstruct the
            # residual error of the live ones. SAE-Lens's default window (1000 steps = 4M tokens) is longer
            # than this whole run, so without a shorter window the aux loss never switches on.
            aux_loss_coefficient=args.aux_coef,
            # Train on activations rescaled to mean norm sqrt(d_in) (one factor, estimated from the first
            # batches); SAE-Lens folds the factor into the weights at the end, so the saved SAE takes raw
            # activations (its cfg says normalize_activations="none"). Makes --lr work across hooks/models.
            normalize_activations="expected_average_only_in",
            dtype="float32",
            device=device,
        ),
        model_name=args.model,
        hook_name=args.hook,
        dataset_path=f"utils.corpus.generate_documents(seed={TRAIN_TEXT_SEED}+{args.seed})",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=args.n_ctx,
        prepend_bos=True,  # every row already starts with BOS; SAE-Lens adds nothing to pre-tokenized rows
        # Processing of the model the SAE was trained on: load_model's defaults, i.e. those of
        # HookedTransformer.from_pretrained. Empty = "load it the default way" (SAE-Lens warns otherwise).
        model_from_pretrained_kwargs={},
        training_tokens=args.tokens,
        train_batch_size_tokens=args.batch_tokens,
        store_batch_size_prompts=32,
        # The activation mixing buffer holds n_batches_in_buffer * context_size tokens (SAE-Lens 6), which
        # must be >= train_batch_size_tokens ("Buffer size must be greater than or equal to batch size").
        n_batches_in_buffer=args.buffer_batches,
        lr=args.lr,
        lr_scheduler_name="constant",  # linear warm-up over 5% of steps, constant, linear decay to 0 over 20%
        lr_warm_up_steps=max(1, steps // 20),
        lr_decay_steps=steps // 5,
        dead_feature_window=max(1, args.dead_window_tokens // args.batch_tokens),
        n_batches_for_norm_estimate=NORM_BATCHES,  # SAE-Lens's default (1000 batches) would be 4M tokens
        feature_sampling_window=max(1, steps),
        device=device,
        seed=args.seed,
        dtype="float32",
        logger=LoggingConfig(log_to_wandb=False),
        checkpoint_path=None,
        n_checkpoints=0,
        output_path=None,  # saved below, into models/saes/<name>/
        verbose=False,
    )


def train(args) -> None:
    from datasets import Dataset
    from sae_lens import LanguageModelSAETrainingRunner

    from utils.models import load_model

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # SAE init and the activation buffer's shuffles use torch's global RNG
    model = load_model(args.model, device=device)  # default processing: what load_model(name) gives learners
    args.n_ctx = model.cfg.n_ctx
    layer_choice = None
    if args.hook == "name-movers":
        layer, per_layer = name_mover_layer(model)
        args.hook = f"blocks.{layer}.attn.hook_z"
        layer_choice = dict(layer=layer, dla_by_layer=[round(x, 4) for x in per_layer])
        print(f"name-mover layer: {layer} (summed head DLA toward IO - S by layer: "
              f"{', '.join(f'{x:.2f}' for x in per_layer)}) -> {args.hook}")
    args.name = args.name or f"{args.model}-{hook_short(args.hook)}"
    d_in = hook_d_in(model, args.hook)
    if args.hook not in model.hook_dict:
        raise SystemExit(f"{args.hook!r} is not a hook point of {args.model}")

    # Enough rows for every training token, the norm estimate and the activation buffer (no second epoch).
    needed = args.tokens + NORM_BATCHES * args.batch_tokens + args.buffer_batches * args.n_ctx
    n_rows = math.ceil(needed / args.n_ctx * 1.05) + 64
    t0 = time.time()
    rows = text_rows(model.tokenizer, n_rows, args.n_ctx, TRAIN_TEXT_SEED + args.seed)
    dataset = Dataset.from_dict({"input_ids": rows.tolist()})
    print(f"dataset: {n_rows:,} rows x {args.n_ctx} tokens ({time.time() - t0:.0f} s)")

    cfg = build_runner_config(args, d_in, device)
    start = time.time()
    runner = LanguageModelSAETrainingRunner(cfg, override_model=model, override_dataset=dataset)
    sae = runner.run()
    wall = time.time() - start

    out = SAES / args.name
    if out.exists():
        shutil.rmtree(out)
    # SAE-Lens's own final save: cfg.json + sae_weights.safetensors (inference format, decoder norms folded),
    # runner_cfg.json (the full runner config).
    runner.save_final_sae(sae, str(out))
    for f in out.iterdir():
        f.chmod(0o644)
    info = dict(
        model=args.model, hook_name=args.hook, architecture="topk", k=args.k, d_in=d_in,
        d_sae=args.expansion * d_in, seed=args.seed, tokens=args.tokens, layer_choice=layer_choice,
        batch_tokens=args.batch_tokens, lr=args.lr, aux_loss_coefficient=args.aux_coef,
        dead_window_tokens=args.dead_window_tokens, buffer_batches=args.buffer_batches,
        train_text_seed=TRAIN_TEXT_SEED + args.seed, eval_text_seed=EVAL_TEXT_SEED,
        model_processing="utils.models.load_model defaults (fold_ln, center_writing_weights, center_unembed, "
                         "fold_value_biases)",
        wall_time_s=round(wall, 1), tokens_per_s=round(args.tokens / wall),
        device=device if device != "cpu" else
        f"cpu ({args.threads} thread(s), {platform.processor() or platform.machine()})",
        torch=torch.__version__, sae_lens=_version("sae-lens"),
        model_sha256=model_sha256(args.model),
        description=f"TopK SAE (k={args.k}, {args.expansion * d_in} latents) on {args.model}'s {args.hook}"
                    + (f" (all {model.cfg.n_heads} heads concatenated, the name-mover layer)" if layer_choice else
                       f" ({model.cfg.n_heads} heads concatenated)" if is_hook_z(args.hook) else "")
                    + "; shipped, offline",
    )
    (out / "train_info.json").write_text(json.dumps(info, indent=2) + "\n")
    if layer_choice:  # an earlier name-mover SAE of this model on another layer is stale now: one hook_z SAE per model
        for other in sorted(SAES.iterdir()):
            try:
                other_info = json.loads((other / "train_info.json").read_text())
            except (OSError, ValueError):
                continue
            if other != out and other_info.get("model") == args.model and other_info.get("layer_choice"):
                print(f"removing {other} (a name-mover SAE of {args.model} on {other_info['hook_name']})")
                shutil.rmtree(other)
    write_card(args.name, model)


def model_sha256(model_name: str) -> str:
    """The sha256 of ``models/<model_name>/model.safetensors``: which weights an SAE was trained on."""
    return hashlib.sha256((ROOT / "models" / model_name / "model.safetensors").read_bytes()).hexdigest()


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def write_card(name: str, model=None) -> dict:
    """Measure the SAE in ``models/saes/<name>`` on held-out text and write its README.md. Returns the metrics."""
    from utils.models import load_model, load_sae

    out = SAES / name
    info = json.loads((out / "train_info.json").read_text())
    if model is None:
        model = load_model(info["model"], device="cpu")
    sae = load_sae(name, device=str(model.cfg.device))
    torch.manual_seed(0)
    metrics = measure_sae(model, sae, info["hook_name"], eval_tokens(model))
    info["measured"] = metrics
    if info.get("layer_choice"):  # re-measured with the current prompts; a different layer means: retrain
        layer, per_layer = name_mover_layer(model)
        info["layer_choice"] = dict(layer=layer, dla_by_layer=[round(x, 4) for x in per_layer])
        if info["hook_name"] != f"blocks.{layer}.attn.hook_z":
            print(f"WARNING: the name-mover layer is now {layer}, not {info['hook_name']}'s: retrain this SAE "
                  f"(python -m training.train_sae --model {info['model']} --hook name-movers)")
    (out / "train_info.json").write_text(json.dumps(info, indent=2) + "\n")
    files = ", ".join(f"`{f.name}`" for f in sorted(out.iterdir()) if f.name != "README.md")
    hook_z = is_hook_z(info["hook_name"])
    choice = info.get("layer_choice")
    default_name = name == f"{info['model']}-{hook_short(info['hook_name'])}"
    hook_arg = "name-movers" if choice and default_name else info["hook_name"]
    lines = [
        f"# {name}",
        "",
        f"A TopK sparse autoencoder on `{info['hook_name']}` of the shipped model `{info['model']}`. Trained by "
        "`training/train_sae.py` with SAE-Lens's `LanguageModelSAETrainingRunner`; this card is written by that "
        "script.",
        "",
        "## Use",
        "```python",
        "from utils.models import load_model, load_sae",
        f"model = load_model({info['model']!r})   # default weight processing, as in training",
        f"sae = load_sae({name!r})   # an sae_lens.SAE",
        "hook = sae.cfg.metadata.hook_name" + f"   # {info['hook_name']!r}",
        "_, cache = model.run_with_cache(tokens)",
        "feats = sae.encode(cache[hook])" + f"   # [batch, pos, {info['d_sae']}], {info['k']} active per token",
        "```",
        f"Files (SAE-Lens format, `SAE.load_from_disk`): {files}.",
        "",
        "## SAE",
        f"- architecture: {info['architecture']} (k = {info['k']}), d_in {info['d_in']}, d_sae {info['d_sae']} "
        f"({info['d_sae'] // info['d_in']}x), fp32",
        f"- trained on `{info['model']}` as `load_model({info['model']!r})` returns it: {info['model_processing']}; "
        f"`models/{info['model']}/model.safetensors` sha256 {info.get('model_sha256', 'not recorded')[:16]}…",
        *([f"- input: `hook_z` of all {model.cfg.n_heads} heads concatenated, d_in = n_heads x d_head = "
           f"{model.cfg.n_heads} x {model.cfg.d_head}; `reshape_activations='hook_z'`: `sae.encode` takes "
           "`[batch, pos, n_heads, d_head]` and `sae.decode` returns that shape, so `HookedSAETransformer` splices it "
           "in at `hook_z` as it is"] if hook_z else []),
        "",
        *(["## Layer",
           f"Chosen by `--hook name-movers`: the layer whose heads' summed direct logit attribution toward IO - S at "
           f"the last token of IOI prompts (training names in the training frames that do not open with a name) is "
           f"largest: layer **{choice['layer']}**.",
           "",
           "| layer | " + " | ".join(str(i) for i in range(len(choice["dla_by_layer"]))) + " |",
           "|---|" + "---|" * len(choice["dla_by_layer"]),
           "| summed head DLA toward IO - S (logits) | " + " | ".join(f"{x:.2f}" for x in choice["dla_by_layer"])
           + " |",
           ""] if choice else []),
        "## Training",
        f"- data: {info['tokens']:,} tokens of generated text (`utils/corpus.py`, corpus seed "
        f"{info['train_text_seed']}, never used to train the model), rows of {model.cfg.n_ctx} tokens, BOS first",
        f"- batch {info['batch_tokens']} tokens, Adam lr {info['lr']} (5% warm-up, constant, linear decay to 0 "
        "over the last 20%), "
        f"AuxK coefficient {info['aux_loss_coefficient']} for latents silent for {info['dead_window_tokens']:,} tokens",
        f"- seed {info['seed']}; wall time {info['wall_time_s'] / 60:.1f} min ({info['tokens_per_s']:,} tokens/s) "
        f"on {info['device']}",
        f"- torch {info['torch']}, sae-lens {info['sae_lens']}",
        "",
        f"## Measured properties (held-out text, corpus seed {info['eval_text_seed']}, "
        f"{EVAL_ROWS} rows, {model.cfg.device})",
        "",
        format_metrics(metrics),
        "",
        *([f"Zero-ablating `{info['hook_name']}` changes the loss on ordinary text by only "
           f"{metrics['ce_zero'] - metrics['ce_clean']:+.3f} nats (its heads work on IOI-like sentences), so the "
           "text's CE loss recovered divides by almost nothing; the KL rows and the IOI rows judge the SAE instead.",
           ""] if hook_z and metrics["ce_zero"] - metrics["ce_clean"] < 0.1 else []),
        "## Reproduce",
        f"`python -m training.train_sae --model {info['model']} --hook {hook_arg} --seed {info['seed']} "
        f"--tokens {info['tokens']} --k {info['k']} --expansion {info['d_sae'] // info['d_in']} --lr {info['lr']} "
        f"--aux-coef {info['aux_loss_coefficient']} --dead-window-tokens {info['dead_window_tokens']} "
        f"--batch-tokens {info['batch_tokens']} --buffer-batches {info['buffer_batches']}"
        + ("" if default_name else f" --name {name}") + " --device auto`",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description="Train a TopK SAE on a shipped model with SAE-Lens.")
    ap.add_argument("--model", default="mlp4l", help="a shipped model under models/")
    ap.add_argument("--hook", default="blocks.1.hook_resid_post",
                    help="hook point to train on, or 'name-movers': blocks.{L}.attn.hook_z of the layer whose heads "
                         "write the most IO - S logit difference on IOI prompts (name_mover_layer)")
    ap.add_argument("--name", default=None, help="folder under models/saes/ (default: <model>-<hook short>, e.g. "
                    "mlp4l-res1, mlp4l-z2)")
    ap.add_argument("--tokens", type=int, default=2_000_000, help="training tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--k", type=int, default=16, help="active latents per token")
    ap.add_argument("--expansion", type=int, default=8, help="d_sae = expansion * d_model")
    ap.add_argument("--lr", type=float, default=4e-3,
                    help="Adam learning rate (1e-3 left 11-25%% of latents dead on attn2l; 4e-3: ~2%%)")
    ap.add_argument("--batch-tokens", type=int, default=4096, help="training batch, in tokens")
    ap.add_argument("--buffer-batches", type=int, default=256,
                    help="n_batches_in_buffer: the shuffling buffer holds this x n_ctx tokens (>= --batch-tokens)")
    ap.add_argument("--aux-coef", type=float, default=1.0, help="AuxK loss coefficient (dead-latent revival)")
    ap.add_argument("--dead-window-tokens", type=int, default=100_000,
                    help="a latent silent for this many training tokens counts as dead (feeds AuxK)")
    ap.add_argument("--card-only", action="store_true", help="only re-measure and rewrite README.md")
    args = ap.parse_args()
    if args.card_only:
        if not args.name:
            raise SystemExit("--card-only needs --name (a folder under models/saes/)")
        torch.set_num_threads(args.threads)
        write_card(args.name)
    else:
        train(args)


if __name__ == "__main__":
    main()
