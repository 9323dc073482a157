"""Train one of the shipped models and write ``models/<name>/``.

The folder gets ``config.json`` (HookedTransformerConfig kwargs), ``model.safetensors`` (fp32, raw
unprocessed weights), the tokenizer files, ``train_info.json`` and a ``README.md`` model card with the
measured properties, written by this script.

Data: the generated corpus (``utils/corpus.py``) plus rows of uniformly random tokens from the whole
vocabulary (a sequence of 8-40 tokens tiled to fill the row). During a warm-up every row is random
(induction forms early and reliably): at least ``--warmup-tokens`` tokens, extended until the induction
score reaches ``--warmup-induction`` but at most ``--warmup-max-tokens``; afterwards ``--random-frac`` of
the rows are random. Defaults per config are in ``TRAIN_DEFAULTS``.

Usage::

    python -m training.train_model --config attn2l --seed 0 --device auto
    python -m training.train_model --config mlp4l --seed 0 --device auto
    python -m training.train_model --config attn2l --card-only   # re-measure, rewrite README.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub: fail fast instead of retrying

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tqdm import tqdm  # noqa: E402

warnings.filterwarnings("ignore", message=".*HookedTransformer.*deprecated.*", category=DeprecationWarning)
from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402

from training import evaluate  # noqa: E402
from training.tokenizer import build_tokenizer, check_tokenizer  # noqa: E402
from utils.corpus import generate_documents  # noqa: E402
from utils.data import induction_scores, prev_token_scores, repeated_tokens  # noqa: E402
from utils.models import SHIPPED as DESCRIPTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"

CONFIGS = {
    # The classic induction-head model: two attention-only layers. Two heads per layer: with four, all
    # layer-1 heads learned induction redundantly (ablating one barely mattered) and previous-token
    # attention smeared over several layer-0 heads (16M tokens on CPU).
    "attn2l": dict(n_layers=2, d_model=128, n_heads=2, d_head=64, attn_only=True),
    # A 4-layer model with MLPs for IOI (and induction).
    "mlp4l": dict(n_layers=4, d_model=128, n_heads=4, d_head=32, d_mlp=512, act_fn="gelu"),
}
# Training defaults per config (command-line flags override them).
TRAIN_DEFAULTS = {
    # 35% random rows after the warm-up: a previous-token head must stay sharp at late positions, which
    # only the random rows reward (text prefers a smeared head). With 15% it scored 0.49 on 100 random
    # tokens after 20M tokens (0.79 at early positions, 0.32 late); lr 2e-3 without weight decay formed
    # a weak induction head (0.24) that never sharpened. Still short of a 0.7 previous-token head on CPU
    # budgets (0.55 at 20M tokens; d_head 32 gave 0.57 with a weaker induction head; W_pos initialised with
    # sinusoids, so that "the previous position" is one linear map at every position, gave 0.39 at 9M tokens
    # vs 0.49 without; weight decay 0.1 gave 0.47 at 9M tokens; mlp4l's recipe on 2 layers (4 heads of d_head 32,
    # weight decay 0.1, 15% random rows) gave 0.45 at 20M tokens, and ablating its top induction head cost only
    # +0.32 nats), although mlp4l's own layer-0 head reaches 0.78: more tokens (GPU), or a deeper model.
    "attn2l": dict(tokens=20_000_000, warmup_tokens=3_000_000, warmup_max_tokens=3_000_000,
                   weight_decay=0.01, lr=1e-3, random_frac=0.35, warmup_mlp_off=False, ioi_tokens=0),
    # The MLP model formed no induction head in 7.4M all-random warm-up tokens (2 seeds, loss stuck near 5.5-6).
    # With the MLPs switched off during the warm-up (an attention-only model), induction appeared after 5.7M
    # tokens with seed 2 (not within 8M with seed 3); then the MLPs are ramped in over 1M tokens. The warm-up
    # lasts until the induction score reaches --warmup-induction (at least --warmup-tokens, at most
    # --warmup-max-tokens). IOI: 48% on held-out names x templates after 30M tokens (not learned; GPU budget).
    "mlp4l": dict(tokens=30_000_000, warmup_tokens=2_000_000, warmup_max_tokens=8_000_000,
                  weight_decay=0.1, lr=1e-3, random_frac=0.15, warmup_mlp_off=True, ioi_tokens=6_000_000),
}
COMMON = dict(n_ctx=128, d_vocab=2048, normalization_type="LN", positional_embedding_type="standard",
              default_prepend_bos=True)


def get_tokenizer():
    """Load ``models/tokenizer`` (building it first if missing) through AutoTokenizer."""
    from transformers import AutoTokenizer

    folder = MODELS / "tokenizer"
    if not (folder / "tokenizer.json").exists():
        return build_tokenizer(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    check_tokenizer(tok)
    return tok


class Batches:
    """Yields ``[batch, n_ctx]`` training rows: generated text, or random tokens tiled to fill the row.

    Every row starts with BOS (id 0). Text rows are consecutive windows of the token stream of generated
    documents (separated by ``<|endoftext|>``); random rows tile a random sequence of 8-40 ids drawn
    uniformly from ``[1, d_vocab)`` so that every embedding is trained.
    """

    def __init__(self, tokenizer, n_ctx: int, d_vocab: int, seed: int, documents=generate_documents,
                 random_after_text: bool = False, rows_start_documents: bool = False):
        self.tok, self.n_ctx, self.d_vocab, self.seed = tokenizer.backend_tokenizer, n_ctx, d_vocab, seed
        self.documents, self.random_after_text = documents, random_after_text
        self.rows_start_documents = rows_start_documents
        self.gen = torch.Generator().manual_seed(seed)
        self.stream: list[int] = []
        self.chunk = 0

    def _text(self, n: int) -> list[int]:
        while len(self.stream) < n:  # refill with a deterministic chunk of fresh documents
            docs = self.documents(2000, seed=self.seed * 100_003 + self.chunk)
            self.chunk += 1
            for enc in self.tok.encode_batch(docs):
                self.stream += enc.ids + [0]
        text, self.stream = self.stream[:n], self.stream[n:]
        return text

    def _text_row(self) -> torch.Tensor:
        row = [0] + self._text(self.n_ctx - 1)
        self._align()
        return torch.tensor(row)

    def _align(self) -> None:
        """With ``rows_start_documents``, drop the rest of the document a row cut, so the next one starts a text."""
        if self.rows_start_documents:
            cut = self.stream.index(0) + 1 if 0 in self.stream else len(self.stream)
            self.stream = self.stream[cut:]

    def _random_row(self) -> torch.Tensor:
        """BOS + random tokens; with ``random_after_text``, BOS + 8-48 tokens of text + EOS + random tokens, so
        that the model never learns that a row may start with noise (what it samples from BOS alone)."""
        prefix = [0]
        if self.random_after_text:
            prefix += self._text(int(torch.randint(8, 49, (1,), generator=self.gen))) + [0]
            self._align()
        n = self.n_ctx - len(prefix)
        length = int(torch.randint(8, 41, (1,), generator=self.gen))
        seq = torch.randint(1, self.d_vocab, (length,), generator=self.gen)
        return torch.cat([torch.tensor(prefix), seq.repeat(math.ceil(n / length))[:n]])

    def next(self, batch_size: int, random_frac: float) -> torch.Tensor:
        n_rand = round(batch_size * random_frac)
        rows = [self._random_row() for _ in range(n_rand)]
        rows += [self._text_row() for _ in range(batch_size - n_rand)]
        return torch.stack(rows)


def lr_at(step: int, total: int, lr: float, warmup: int = 100) -> float:
    """Linear warm-up then cosine decay to 10% of ``lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.95),
    )


def optimizer_step(model, opt, tokens: torch.Tensor, lr: float) -> torch.Tensor:
    for g in opt.param_groups:
        g["lr"] = lr
    loss = model(tokens, return_type="loss")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def ioi_phase(model, tokenizer, args, device: str) -> dict:
    """The IOI phase: continue training on the v2 corpus (composed IOI frames, copying sentences, IOI sentences
    with words and made-up names), with a fresh optimiser and learning-rate schedule. Rows start at a document
    (so BOS is followed by the start of a text), and random tokens come only after a stretch of text.

    Returns the phase's record for ``train_info.json`` (tokens, wall time, settings, evaluation log).
    """
    from functools import partial

    from utils.corpus import TRAIN_NAMES, generate_documents_v2, word_names

    documents = partial(generate_documents_v2, ioi_frac=args.ioi_frac, copy_frac=args.copy_frac,
                        names_of_words=word_names(tokenizer), word_names_frac=args.word_names_frac,
                        pseudo_names_frac=args.pseudo_names_frac)
    data = Batches(tokenizer, model.cfg.n_ctx, model.cfg.d_vocab, args.seed + 1, documents, random_after_text=True,
                   rows_start_documents=True)
    opt = make_optimizer(model, args.ioi_lr, args.weight_decay)
    tokens_per_step = args.batch_size * model.cfg.n_ctx
    total_steps = args.ioi_tokens // tokens_per_step
    eval_every = max(1, args.ioi_eval_tokens // tokens_per_step)
    log, start = [], time.time()
    model.train()
    bar = tqdm(range(total_steps), desc="IOI phase", unit="step", mininterval=5)
    for step in bar:
        tokens = data.next(args.batch_size, args.ioi_random_frac).to(device)
        loss = optimizer_step(model, opt, tokens, lr_at(step, total_steps, args.ioi_lr))
        if (step + 1) % eval_every == 0 or step == total_steps - 1:
            model.eval()
            with torch.no_grad():
                frames = evaluate.ioi_metrics(model, names=TRAIN_NAMES, n_pairs=20)
                names = evaluate.ioi_metrics(model, n_pairs=20)
                ind = induction_scores(model, repeated_tokens(model, 50, 10, seed=1)).max().item()
            model.train()
            log.append(dict(step=step, tokens=(step + 1) * tokens_per_step, loss=round(loss.item(), 4),
                            heldout_frames=round(frames["ioi_acc"], 3),
                            heldout_frames_ld=round(frames["ioi_logit_diff"], 2),
                            heldout_names=round(names["ioi_acc"], 3), induction=round(ind, 3),
                            minutes=round((time.time() - start) / 60, 2)))
            bar.set_postfix(loss=f"{loss.item():.3f}", frames=f"{frames['ioi_acc']:.2f}",
                            names=f"{names['ioi_acc']:.2f}")
            tqdm.write(json.dumps(log[-1]))
    return dict(tokens=total_steps * tokens_per_step, steps=total_steps, lr=args.ioi_lr, ioi_frac=args.ioi_frac,
                copy_frac=args.copy_frac, word_names_frac=args.word_names_frac,
                pseudo_names_frac=args.pseudo_names_frac, random_frac=args.ioi_random_frac,
                wall_time_s=round(time.time() - start, 1),
                device=device if device != "cpu" else f"cpu, {args.threads} thread(s)", log=log)


def train(args) -> None:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False

    tokenizer = get_tokenizer()
    cfg_kwargs = {**COMMON, **CONFIGS[args.config], "d_vocab": len(tokenizer)}
    cfg = HookedTransformerConfig(**cfg_kwargs, seed=args.seed, device=device)
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    if args.resume_from:  # stage 1 was trained by an earlier run of this script: continue from its weights
        info = json.loads((Path(args.resume_from) / "train_info.json").read_text())
        info["ioi_phase"] = _ioi_phase_after(model, Path(args.resume_from), tokenizer, args, device)
        info["ioi_phase"]["resumed_from"] = str(args.resume_from)
        return _save(model, cfg_kwargs, tokenizer, info, args)
    model.train()
    opt = make_optimizer(model, args.lr, args.weight_decay)
    data = Batches(tokenizer, cfg.n_ctx, cfg.d_vocab, args.seed)
    tokens_per_step = args.batch_size * cfg.n_ctx
    total_steps = args.tokens // tokens_per_step
    log, start, tokens_seen, stopped_early = [], time.time(), 0, False
    in_warmup, warmup_done_at, ind = True, None, 0.0
    # --warmup-mlp-off: the MLPs' outputs are scaled by mlp_scale["value"] (0 during the warm-up, so the model
    # trains as an attention-only one, then ramped up to 1 over --mlp-ramp-tokens).
    mlp_scale = {"value": 0.0 if args.warmup_mlp_off and not cfg.attn_only else 1.0}
    if mlp_scale["value"] < 1.0:
        model.add_perma_hook(lambda name: name.endswith("hook_mlp_out"), lambda out, hook: out * mlp_scale["value"])

    bar = tqdm(range(total_steps), desc=f"train {args.config}", unit="step", mininterval=5)
    for step in bar:
        if in_warmup and tokens_seen >= args.warmup_tokens and (
            ind >= args.warmup_induction or tokens_seen >= args.warmup_max_tokens
        ):
            in_warmup, warmup_done_at = False, tokens_seen
            tqdm.write(f"warm-up done at {tokens_seen:,} tokens (induction {ind:.2f})")
        frac = 1.0 if in_warmup else args.random_frac
        if warmup_done_at is not None and mlp_scale["value"] < 1.0:
            mlp_scale["value"] = min(1.0, (tokens_seen - warmup_done_at) / max(1, args.mlp_ramp_tokens))
            if mlp_scale["value"] >= 1.0:
                model.reset_hooks(including_permanent=True)
        tokens = data.next(args.batch_size, frac).to(device)
        loss = optimizer_step(model, opt, tokens, lr_at(step, total_steps, args.lr))
        tokens_seen += tokens_per_step

        if step % args.eval_every == 0 or step == total_steps - 1:
            model.eval()
            with torch.no_grad():
                rep = repeated_tokens(model, seq_len=50, batch=10, seed=1)
                ind = induction_scores(model, rep).max().item()
                rand = evaluate.random_tokens(model, seq_len=100, batch=10, seed=2)
                prev = prev_token_scores(model, rand).max().item()
                extra = {"prev": round(prev, 3)}
                if args.warmup_mlp_off and not cfg.attn_only:
                    extra["mlp_scale"] = round(mlp_scale["value"], 3)
                if not cfg.attn_only and not in_warmup:
                    ioi = evaluate.ioi_metrics(model, n_pairs=10)
                    extra.update(ioi_acc=round(ioi["ioi_acc"], 3), ioi_ld=round(ioi["ioi_logit_diff"], 2))
            model.train()
            elapsed = time.time() - start
            log.append(dict(step=step, tokens=tokens_seen, loss=round(loss.item(), 4),
                            induction=round(ind, 3), **extra, minutes=round(elapsed / 60, 2)))
            bar.set_postfix(loss=f"{loss.item():.3f}", ind=f"{ind:.2f}", tok=f"{tokens_seen/1e6:.1f}M")
            tqdm.write(json.dumps(log[-1]))
        if args.stop_tokens and tokens_seen >= args.stop_tokens:
            stopped_early = True  # e.g. a replay of a run stopped at the wall-clock limit: same schedule and end
            break
        if args.max_minutes and time.time() - start > args.max_minutes * 60:
            stopped_early = True
            tqdm.write(f"stopping: wall-clock limit of {args.max_minutes} min reached")
            break
    wall = time.time() - start
    info = dict(
        config=args.config, seed=args.seed, tokens_seen=tokens_seen, steps=step + 1, scheduled_tokens=args.tokens,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        warmup_tokens=warmup_done_at or tokens_seen, random_frac=args.random_frac,
        warmup_min_tokens=args.warmup_tokens, warmup_max_tokens=args.warmup_max_tokens,
        warmup_induction=args.warmup_induction, warmup_mlp_off=args.warmup_mlp_off,
        mlp_ramp_tokens=args.mlp_ramp_tokens, eval_every=args.eval_every,
        wall_time_s=round(wall, 1), stopped_early=stopped_early,
        device=device if device != "cpu" else
        f"cpu ({args.threads} thread(s), {platform.processor() or platform.machine()})",
        torch=torch.__version__, log=log,
    )
    if args.ioi_tokens:
        if args.stage1_dir:  # keep the stage-1 weights: the IOI phase can be rerun from them with --resume-from
            _save(model, cfg_kwargs, tokenizer, info, args, Path(args.stage1_dir), card=False)
        info["ioi_phase"] = ioi_phase(model, tokenizer, args, device)
    _save(model, cfg_kwargs, tokenizer, info, args)


def _ioi_phase_after(model, folder: Path, tokenizer, args, device: str) -> dict:
    """Load the stage-1 weights saved in ``folder`` into ``model`` and run the IOI phase."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(folder / "model.safetensors"), strict=False)
    model.to(device)
    return ioi_phase(model, tokenizer, args, device)


def _save(model, cfg_kwargs: dict, tokenizer, info: dict, args, out: Path | None = None, card: bool = True) -> None:
    """Write the model folder (weights, config, tokenizer, train_info.json) and, with ``card``, its model card."""
    out = out or Path(args.models_dir) / args.name
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    # Buffers such as IGNORE / mask are rebuilt by the model; save parameters only.
    params = {n for n, _ in model.named_parameters()}
    save_file({k: v for k, v in state.items() if k in params}, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(cfg_kwargs, indent=2) + "\n")
    tokenizer.save_pretrained(out)
    (out / "train_info.json").write_text(json.dumps(info, indent=2) + "\n")
    if card:
        write_card(out.name, out.parent)


def write_card(name: str, models_dir: Path = MODELS) -> dict:
    """Measure the model in ``models/<name>`` and write its README.md model card. Returns the metrics.

    The model is measured as learners load it (``load_model``'s default weight processing: LayerNorm folded,
    unembedding centred), so that direct logit attributions on the card match the chapters'."""
    from utils.models import load_model_folder

    out = models_dir / name
    info = json.loads((out / "train_info.json").read_text())
    model = load_model_folder(out, "cpu")
    metrics = evaluate.measure(model)
    cfg = json.loads((out / "config.json").read_text())
    # the learning-rate schedule spans --tokens (runs before this field existed used their config's default)
    scheduled = info.get("scheduled_tokens", TRAIN_DEFAULTS[info["config"]]["tokens"])
    cfg_line = ", ".join(f"{k}={v}" for k, v in cfg.items())
    lines = [
        f"# {name}",
        "",
        DESCRIPTIONS.get(info["config"], info["config"]).split(";")[0] + ". Trained by `training/train_model.py`; "
        "this card is written by that script.",
        "",
        "## Data",
        "Generated English-like text (`utils/corpus.py`: people, places, objects; IOI sentences in "
        f"{'ABBA and BABA'} orders with held-out names and templates; documents with repeated spans) plus rows "
        "of uniformly random tokens from the whole vocabulary (a sequence of 8-40 tokens tiled to fill the "
        f"row): 100% of rows for the first {info['warmup_tokens']:,} tokens, then {info['random_frac']:.0%}."
        + (f" During that warm-up the MLP outputs were switched off (an attention-only model, in which induction "
           f"forms sooner); they were then ramped in over {info['mlp_ramp_tokens']:,} tokens."
           if info.get("warmup_mlp_off") and not cfg.get("attn_only") else ""),
        *_ioi_phase_data(info.get("ioi_phase")),
        "Tokenizer: byte-level BPE, 2048 tokens, `<|endoftext|>` = BOS/EOS/pad (`training/tokenizer.py`).",
        "",
        "## Config",
        f"`{cfg_line}`",
        "",
        "## Training",
        f"- tokens seen: {info['tokens_seen']:,} ({info['steps']} steps of {info['batch_size']} x {cfg['n_ctx']})",
        f"- optimizer: AdamW, lr {info['lr']} (warm-up, cosine to 10%), weight decay {info['weight_decay']}",
        f"- seed: {info['seed']}; wall time: {info['wall_time_s'] / 60:.1f} min on {info['device']}"
        + (" (stopped before the end of its learning-rate schedule)" if info["stopped_early"] else ""),
        *_ioi_phase_training(info.get("ioi_phase")),
        f"- torch {info['torch']}",
        "",
        "## Measured properties (`training/evaluate.py`, CPU, seeded)",
        "",
        evaluate.format_metrics(metrics),
        "",
        "## Reproduce",
        f"`python -m training.train_model --config {info['config']} --tokens {scheduled} "
        + (f"--stop-tokens {info['tokens_seen']} " if info["stopped_early"] else "") +
        f"--seed {info['seed']} --batch-size {info['batch_size']} --lr {info['lr']} "
        f"--weight-decay {info['weight_decay']} --random-frac {info['random_frac']} "
        f"--warmup-tokens {info.get('warmup_min_tokens', info['warmup_tokens'])} "
        f"--warmup-max-tokens {info.get('warmup_max_tokens', info['warmup_tokens'])} "
        + (f"--warmup-mlp-off --mlp-ramp-tokens {info['mlp_ramp_tokens']} " if info.get("warmup_mlp_off")
           else "--no-warmup-mlp-off ")
        # the warm-up ends at an evaluation, so the evaluation interval is part of the recipe
        + f"--eval-every {info.get('eval_every', 200)} " + _ioi_phase_flags(info.get("ioi_phase")) + "--device auto`",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return metrics


def _ioi_phase_data(phase: dict | None) -> list[str]:
    if not phase:
        return []
    return [
        "",
        f"**IOI phase** (after the run above, {phase['tokens']:,} tokens; `corpus.generate_documents_v2`): IOI "
        f"sentences ({phase['ioi_frac']:.0%} of sentences) composed from parts (openers, a clause naming both people, "
        "connectors, the subject's second mention, endings), so that no frame dominates; the held-out and novel "
        "frames are never generated whole and held-out names never appear in an IOI sentence. "
        f"{phase['word_names_frac']:.0%} of the "
        "IOI sentences use other single-token words (surnames, cities, days, animals, jobs) as the names"
        + (f" and {phase['pseudo_names_frac']:.0%} made-up names of several tokens" if phase.get("pseudo_names_frac")
           else "")
        + f"; {phase['copy_frac']:.0%} of sentences make the model copy a name without IOI structure (\"My friend is "
        "called P, and everyone likes P.\", with training and held-out names). Rows start at the start of a "
        f"document, and {phase['random_frac']:.0%} of rows end in random tokens after a stretch of text (never right "
        "after BOS: the model no longer learns that a row may start with noise).",
    ]


def _ioi_phase_training(phase: dict | None) -> list[str]:
    if not phase:
        return []
    return [f"- IOI phase: {phase['tokens']:,} tokens ({phase['steps']} steps), a fresh AdamW at lr {phase['lr']} "
            f"(warm-up, cosine to 10%); wall time {phase['wall_time_s'] / 60:.1f} min"
            + (f" ({phase['device']})" if phase.get("device") else "")
            + (f"; continued from the saved weights of the run above ({phase['resumed_from']})"
               if phase.get("resumed_from") else "")]


def _ioi_phase_flags(phase: dict | None) -> str:
    if not phase:
        return "--ioi-tokens 0 "
    return (f"--ioi-tokens {phase['tokens']} --ioi-lr {phase['lr']} --ioi-frac {phase['ioi_frac']} "
            f"--copy-frac {phase['copy_frac']} --word-names-frac {phase['word_names_frac']} "
            f"--pseudo-names-frac {phase.get('pseudo_names_frac', 0.0)} --ioi-random-frac {phase['random_frac']} ")


def main() -> None:
    ap = argparse.ArgumentParser(description="Train a shipped Circuit School model.")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="attn2l")
    ap.add_argument("--name", default=None, help="folder name under models/ (default: the config name)")
    ap.add_argument("--tokens", type=int, default=None, help="tokens to train on (default: per config)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: per config)")
    ap.add_argument("--weight-decay", type=float, default=None, help="default: per config")
    ap.add_argument("--warmup-tokens", type=int, default=None,
                    help="tokens during which every row is random tokens (default: per config)")
    ap.add_argument("--warmup-max-tokens", type=int, default=None,
                    help="extend the warm-up until induction >= --warmup-induction, at most this long")
    ap.add_argument("--warmup-induction", type=float, default=0.5)
    ap.add_argument("--random-frac", type=float, default=None,
                    help="fraction of random rows after the warm-up (default: per config)")
    ap.add_argument("--warmup-mlp-off", action=argparse.BooleanOptionalAction, default=None,
                    help="train with the MLP outputs switched off during the warm-up, then ramp them in "
                    "(default: per config)")
    ap.add_argument("--mlp-ramp-tokens", type=int, default=1_000_000)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (and save) after this long; 0 = none")
    ap.add_argument("--stop-tokens", type=int, default=0,
                    help="stop (and save) after this many tokens, keeping the schedule of --tokens; 0 = none")
    ap.add_argument("--ioi-tokens", type=int, default=None,
                    help="tokens of the IOI phase after the main run (0 = none; default: per config)")
    ap.add_argument("--ioi-lr", type=float, default=1e-3, help="peak learning rate of the IOI phase")
    ap.add_argument("--ioi-frac", type=float, default=0.4, help="IOI phase: share of sentences that are IOI")
    ap.add_argument("--copy-frac", type=float, default=0.15, help="IOI phase: share of copying sentences")
    ap.add_argument("--word-names-frac", type=float, default=0.2,
                    help="IOI phase: share of IOI sentences with words (surnames, cities, ...) as the names")
    ap.add_argument("--pseudo-names-frac", type=float, default=0.0,
                    help="IOI phase: share of IOI sentences with made-up names of several tokens")
    ap.add_argument("--ioi-random-frac", type=float, default=0.1,
                    help="IOI phase: share of rows with random tokens (after a stretch of text)")
    ap.add_argument("--ioi-eval-tokens", type=int, default=1_000_000, help="IOI phase: evaluate every so many tokens")
    ap.add_argument("--stage1-dir", default=None, help="also save the weights before the IOI phase here")
    ap.add_argument("--resume-from", default=None,
                    help="a model folder with stage-1 weights (from --stage1-dir): run only the IOI phase")
    ap.add_argument("--card-only", action="store_true", help="only re-measure and rewrite README.md")
    ap.add_argument("--models-dir", default=str(MODELS), help="where the model folder goes (default: models/)")
    args = ap.parse_args()
    args.name = args.name or args.config
    for key, value in TRAIN_DEFAULTS[args.config].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.warmup_max_tokens = max(args.warmup_max_tokens, args.warmup_tokens)
    if args.card_only:
        torch.set_num_threads(args.threads)
        write_card(args.name, Path(args.models_dir))
    else:
        train(args)


if __name__ == "__main__":
    main()
