"""Train a sparse autoencoder (SAE) on a shipped model with SAE-Lens's own training runner.

The SAE is a TopK SAE (``TopKTrainingSAEConfig``) trained by ``LanguageModelSAETrainingRunner`` on one
hook point's activations, offline: the model is passed as ``override_model`` and a pre-tokenized
``datasets.Dataset`` of generated text (``training/corpus.py``) as ``override_dataset``; nothing is
logged to Weights & Biases. It is saved in SAE-Lens's inference format to ``models/saes/<name>/``
(``cfg.json`` + ``sae_weights.safetensors``, loadable with ``SAE.load_from_disk`` or
``utils.models.load_sae(name)``), next to ``train_info.json`` and a ``README.md`` card with the
properties this script measured on held-out text (``measure_sae``).

The model is the one ``utils.models.load_model(name)`` returns by default (LayerNorm folded, writing
weights centred, ...), so the activations learners cache in the chapters are exactly the ones the SAE
was trained on. (Processing changes the residual stream: ``center_writing_weights`` removes its mean
over ``d_model``. An SAE trained on the raw weights would see shifted inputs in the chapters.)

Usage::

    python -m training.train_sae --model mlp4l --hook blocks.1.hook_resid_post --seed 0
    python -m training.train_sae --model attn2l --hook blocks.0.hook_resid_post --tokens 1000000 --name attn2l-res0
    python -m training.train_sae --name mlp4l-res1 --card-only     # re-measure, rewrite README.md
"""

from __future__ import annotations

import argparse
import json
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

from training.corpus import HELDOUT_NAMES, TRAIN_NAMES, generate_documents  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAES = ROOT / "models" / "saes"

# Corpus seeds never used to train the shipped models (training/train_model.py uses seed * 100_003 + chunk
# with small chunk counts; training/evaluate.py uses 987_654).
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


def text_rows(tokenizer, n_rows: int, n_ctx: int, seed: int) -> torch.Tensor:
    """``[n_rows, n_ctx]`` token ids of generated documents, BOS first in every row.

    Documents (``generate_documents(..., seed)``) are tokenized, joined with ``<|endoftext|>`` and cut
    into consecutive windows of ``n_ctx - 1`` tokens, each prefixed with BOS: the layout the shipped
    models were trained on.
    """
    tok = getattr(tokenizer, "backend_tokenizer", tokenizer)
    bos = tokenizer.bos_token_id
    eos = tokenizer.eos_token_id
    n = n_ctx - 1
    stream: list[int] = []
    chunk = 0
    while len(stream) < n_rows * n:
        docs = generate_documents(2000, seed=seed * 1_000 + chunk)
        chunk += 1
        for enc in tok.encode_batch(docs):
            stream += enc.ids + [eos]
    rows = torch.tensor(stream[: n_rows * n]).view(n_rows, n)
    return torch.cat([torch.full((n_rows, 1), bos), rows], dim=1)


def eval_tokens(model, n_rows: int = EVAL_ROWS, seed: int = EVAL_TEXT_SEED) -> torch.Tensor:
    """Held-out text for ``measure_sae``: ``[n_rows, n_ctx]`` on the model's device, BOS first."""
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
        sae: an SAE-Lens ``SAE`` with ``d_in == model.cfg.d_model``.
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
        with ``name_frac`` >= 0.9) and ``n_tokens``.

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
    x = cache[hook_name][:, 1:].to(sae.device)  # [batch, pos - 1, d_model]
    feats = sae.encode(x)  # [batch, pos - 1, d_sae]
    recon = sae.decode(feats)
    xf = x.reshape(-1, x.shape[-1]).double()
    err = (xf - recon.reshape(xf.shape).double()).pow(2).sum()
    var = (xf - xf.mean(0)).pow(2).sum()
    active = feats.reshape(-1, feats.shape[-1]) != 0  # [n_tokens, d_sae]

    ce = get_recons_loss(sae, model, ActivationScaler(), tokens, compute_kl=False, compute_ce_loss=True,
                         hook_name=hook_name)
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
    return dict(
        explained_variance=(1 - err / var).item(),
        l0=active.sum(-1).float().mean().item(),
        dead_frac=(~active.any(0)).float().mean().item(),
        ce_clean=ce_clean,
        ce_sae=ce_sae,
        ce_zero=ce_zero,
        ce_recovered=(ce_zero - ce_sae) / (ce_zero - ce_clean),
        name_latent=best[2],
        name_token=best[3],
        name_frac=best[0],
        n_name_latents=int(n_name_latents),
        n_tokens=int(active.shape[0]),
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
        ("best single-name latent: id, name, fraction of its top-20 activations on that name",
         f"{m['name_latent']}, {m['name_token']!r}, {m['name_frac']:.0%}"),
        ("latents whose top-20 activations are >= 90% one name", f"{m['n_name_latents']}"),
    ]
    return "\n".join(["| property | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def build_runner_config(args, d_model: int, device: str):
    """The ``LanguageModelSAERunnerConfig`` for a TopK SAE on ``args.hook``."""
    from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig, TopKTrainingSAEConfig

    steps = args.tokens // args.batch_tokens
    return LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(
            d_in=d_model,
            d_sae=args.expansion * d_model,
            k=args.k,
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
        dataset_path=f"training.corpus.generate_documents(seed={TRAIN_TEXT_SEED}+{args.seed})",
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
    if args.hook not in model.hook_dict:
        raise SystemExit(f"{args.hook!r} is not a hook point of {args.model}")

    # Enough rows for every training token, the norm estimate and the activation buffer (no second epoch).
    needed = args.tokens + NORM_BATCHES * args.batch_tokens + args.buffer_batches * args.n_ctx
    n_rows = math.ceil(needed / args.n_ctx * 1.05) + 64
    t0 = time.time()
    rows = text_rows(model.tokenizer, n_rows, args.n_ctx, TRAIN_TEXT_SEED + args.seed)
    dataset = Dataset.from_dict({"input_ids": rows.tolist()})
    print(f"dataset: {n_rows:,} rows x {args.n_ctx} tokens ({time.time() - t0:.0f} s)")

    cfg = build_runner_config(args, model.cfg.d_model, device)
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
        model=args.model, hook_name=args.hook, architecture="topk", k=args.k, d_in=model.cfg.d_model,
        d_sae=args.expansion * model.cfg.d_model, seed=args.seed, tokens=args.tokens,
        batch_tokens=args.batch_tokens, lr=args.lr, aux_loss_coefficient=args.aux_coef,
        dead_window_tokens=args.dead_window_tokens, buffer_batches=args.buffer_batches,
        train_text_seed=TRAIN_TEXT_SEED + args.seed, eval_text_seed=EVAL_TEXT_SEED,
        model_processing="utils.models.load_model defaults (fold_ln, center_writing_weights, center_unembed, "
                         "fold_value_biases)",
        wall_time_s=round(wall, 1), tokens_per_s=round(args.tokens / wall),
        device=device if device != "cpu" else
        f"cpu ({args.threads} thread(s), {platform.processor() or platform.machine()})",
        torch=torch.__version__, sae_lens=_version("sae-lens"),
        description=f"TopK SAE (k={args.k}, {args.expansion * model.cfg.d_model} latents) on {args.model}'s "
                    f"{args.hook}; shipped, offline",
    )
    (out / "train_info.json").write_text(json.dumps(info, indent=2) + "\n")
    write_card(args.name, model)


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
    (out / "train_info.json").write_text(json.dumps(info, indent=2) + "\n")
    files = ", ".join(f"`{f.name}`" for f in sorted(out.iterdir()) if f.name != "README.md")
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
        f"- trained on `{info['model']}` as `load_model({info['model']!r})` returns it: {info['model_processing']}",
        "",
        "## Training",
        f"- data: {info['tokens']:,} tokens of generated text (`training/corpus.py`, corpus seed "
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
        "## Reproduce",
        f"`python -m training.train_sae --model {info['model']} --hook {info['hook_name']} --seed {info['seed']} "
        f"--tokens {info['tokens']} --k {info['k']} --expansion {info['d_sae'] // info['d_in']} --lr {info['lr']} "
        f"--aux-coef {info['aux_loss_coefficient']} --dead-window-tokens {info['dead_window_tokens']} "
        f"--batch-tokens {info['batch_tokens']} --buffer-batches {info['buffer_batches']} --name {name} "
        "--device auto`",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description="Train a TopK SAE on a shipped model with SAE-Lens.")
    ap.add_argument("--model", default="mlp4l", help="a shipped model under models/")
    ap.add_argument("--hook", default="blocks.1.hook_resid_post", help="hook point to train on")
    ap.add_argument("--name", default=None, help="folder under models/saes/ (default: <model>-<hook short>)")
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
    args.name = args.name or f"{args.model}-{hook_short(args.hook)}"
    if args.card_only:
        torch.set_num_threads(args.threads)
        write_card(args.name)
    else:
        train(args)


if __name__ == "__main__":
    main()
