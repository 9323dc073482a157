"""The measurements the chapters (and tests) rely on: induction, previous-token heads, IOI.

All functions take a ``HookedTransformer`` and are deterministic (seeded). Shapes use ``batch``,
``pos``, ``n_layers`` and ``n_heads`` as in TransformerLens.

Example:
    >>> from utils.models import load_model
    >>> model = load_model("attn2l", device="cpu")
    >>> tokens = repeated_tokens(model, seq_len=50, batch=10)   # [10, 101]
    >>> induction_scores(model, tokens).shape                   # [n_layers, n_heads]
    torch.Size([2, 4])

Usage::

    python -m training.evaluate attn2l
"""

from __future__ import annotations

import argparse
import random

import torch

from training.corpus import (
    HELDOUT_NAMES,
    IOI_HELDOUT_TEMPLATES,
    generate_documents,
    ioi_prompt,
)

EVAL_TEXT_SEED = 987_654  # corpus seed never used in training


def repeated_tokens(model, seq_len: int = 50, batch: int = 10, seed: int = 0) -> torch.Tensor:
    """``[BOS] + r + r`` with ``r`` uniformly random non-special tokens.

    Returns:
        Long tensor of shape ``[batch, 1 + 2 * seq_len]`` on the model's device.
    """
    gen = torch.Generator().manual_seed(seed)
    r = torch.randint(1, model.cfg.d_vocab, (batch, seq_len), generator=gen)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id if model.tokenizer else 0)
    return torch.cat([bos, r, r], dim=1).to(model.cfg.device)


def random_tokens(model, seq_len: int = 100, batch: int = 10, seed: int = 0) -> torch.Tensor:
    """``[BOS] + r`` with ``r`` uniformly random non-special tokens (no repeats): ``[batch, 1 + seq_len]``."""
    return repeated_tokens(model, seq_len, batch, seed)[:, : 1 + seq_len]


def text_tokens(model, batch: int = 10, seed: int = EVAL_TEXT_SEED) -> torch.Tensor:
    """Rows of ordinary generated text (a seed not used in training): ``[batch, n_ctx]``, BOS first."""
    docs = generate_documents(batch * 4, seed=seed)
    stream = []
    for d in docs:
        stream += model.tokenizer.encode(d) + [model.tokenizer.eos_token_id]
    n = model.cfg.n_ctx - 1
    rows = [[model.tokenizer.bos_token_id] + stream[i * n : (i + 1) * n] for i in range(batch)]
    return torch.tensor(rows, device=model.cfg.device)


def _patterns(model, tokens: torch.Tensor) -> torch.Tensor:
    """Attention patterns of every head: ``[n_layers, batch, n_heads, q_pos, k_pos]``."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    return torch.stack([cache[n] for n in names])


def induction_scores(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean attention from each second-repeat token to the token after its earlier copy.

    Args:
        tokens: ``[batch, 1 + 2 * seq_len]`` from ``repeated_tokens``.

    Returns:
        ``[n_layers, n_heads]`` scores in [0, 1].
    """
    seq_len = (tokens.shape[1] - 1) // 2
    pat = _patterns(model, tokens)
    q = torch.arange(seq_len + 1, 2 * seq_len + 1, device=pat.device)
    return pat[:, :, :, q, q - seq_len + 1].mean(dim=(1, 3))


def prev_token_scores(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean attention from each position (after the first) to the previous one: ``[n_layers, n_heads]``."""
    pat = _patterns(model, tokens)
    q = torch.arange(1, tokens.shape[1], device=pat.device)
    return pat[:, :, :, q, q - 1].mean(dim=(1, 3))


def repeat_losses(model, tokens: torch.Tensor, fwd_hooks=()) -> tuple[float, float]:
    """Mean loss on the first and on the second repeat of ``[BOS] + r + r``.

    Both average over the same targets ``r[1:]`` (the first token of each copy is left out).

    Returns:
        ``(first_repeat_loss, second_repeat_loss)`` in nats.
    """
    seq_len = (tokens.shape[1] - 1) // 2
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks))
    logp = logits.log_softmax(-1)[:, :-1]
    loss = -logp.gather(-1, tokens[:, 1:, None])[..., 0]  # loss[:, p] predicts tokens[:, p + 1]
    first = loss[:, 1:seq_len].mean().item()  # targets at positions 2 .. seq_len
    second = loss[:, seq_len + 1 :].mean().item()  # targets at positions seq_len + 2 .. 2 * seq_len
    return first, second


def zero_ablation_hook(head: int):
    """A hook for ``blocks.{layer}.attn.hook_z`` (``[batch, pos, n_heads, d_head]``) zeroing one head."""

    def hook(z, hook):
        z[:, :, head] = 0.0
        return z

    return hook


def _last_logits(model, prompts: list[str]) -> torch.Tensor:
    """Logits at each prompt's last token, ``[len(prompts), d_vocab]``; prompts batched by length (no padding)."""
    toks = [model.to_tokens(p)[0] for p in prompts]
    out = torch.empty(len(prompts), model.cfg.d_vocab)
    for n in sorted({len(t) for t in toks}):
        idx = [i for i, t in enumerate(toks) if len(t) == n]
        with torch.no_grad():
            out[idx] = model(torch.stack([toks[i] for i in idx]))[:, -1].float().cpu()
    return out


def ioi_metrics(model, names=HELDOUT_NAMES, templates=IOI_HELDOUT_TEMPLATES, n_pairs: int = 60,
                seed: int = 0) -> dict:
    """IOI accuracy and mean logit difference ``logit(IO) - logit(S)`` at the last position.

    Uses ``n_pairs`` random (IO, S) pairs of ``names`` for every template and both orders (ABBA, BABA).
    Accuracy is the fraction of prompts with a positive logit difference.

    Returns:
        dict with ``ioi_acc``, ``ioi_logit_diff``, and the same per order (``ioi_acc_ABBA``, ...).
    """
    rng = random.Random(seed)
    out, diffs_all = {}, []
    for order in ("ABBA", "BABA"):
        diffs = []
        for template in templates:
            pairs = [rng.sample(list(names), 2) for _ in range(n_pairs)]
            prompts = [ioi_prompt(template, io, s, order, rng) for io, s in pairs]
            logits = _last_logits(model, prompts)
            io_ids = torch.tensor([model.to_single_token(" " + io) for io, _ in pairs])
            s_ids = torch.tensor([model.to_single_token(" " + s) for _, s in pairs])
            ar = torch.arange(len(pairs))
            diffs.append((logits[ar, io_ids] - logits[ar, s_ids]).cpu())
        d = torch.cat(diffs)
        out[f"ioi_acc_{order}"] = (d > 0).float().mean().item()
        out[f"ioi_logit_diff_{order}"] = d.mean().item()
        diffs_all.append(d)
    d = torch.cat(diffs_all)
    out["ioi_acc"], out["ioi_logit_diff"] = (d > 0).float().mean().item(), d.mean().item()
    return out


def ioi_patching(model, names=HELDOUT_NAMES, templates=IOI_HELDOUT_TEMPLATES, n_pairs: int = 20,
                 k: int = 3, seed: int = 0) -> dict:
    """Activation patching of head outputs from clean IOI prompts into corrupted ones (names swapped).

    The corrupted prompt swaps IO and S everywhere, so its answer is the clean S. The metric is the
    clean logit difference ``logit(IO) - logit(S)``; a patch's recovery is
    ``(patched - corrupted) / (clean - corrupted)``. Each head's output (``hook_z``, all positions) is
    patched alone; then the ``k`` best heads are patched together.

    Returns:
        dict with ``clean_ld``, ``corrupted_ld``, ``head_recovery`` (``[n_layers, n_heads]``),
        ``top_heads`` (list of ``(layer, head)``) and ``top_heads_recovery``.
    """
    rng = random.Random(seed)
    batches = []
    for order in ("ABBA", "BABA"):
        for template in templates:
            pairs = [rng.sample(list(names), 2) for _ in range(n_pairs)]
            fill_seed = rng.random()  # same places/objects for the whole batch: equal lengths
            clean = [ioi_prompt(template, io, s, order, random.Random(fill_seed)) for io, s in pairs]
            corrupt = [ioi_prompt(template, s, io, order, random.Random(fill_seed)) for io, s in pairs]
            io_ids = torch.tensor([model.to_single_token(" " + io) for io, _ in pairs])
            s_ids = torch.tensor([model.to_single_token(" " + s) for _, s in pairs])
            batches.append((model.to_tokens(clean), model.to_tokens(corrupt), io_ids, s_ids))
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]

    def logit_diff(hooks_for_batch) -> float:
        diffs = []
        for i, (clean, corrupt, io_ids, s_ids) in enumerate(batches):
            tokens = clean if hooks_for_batch is None else corrupt
            with torch.no_grad():
                logits = model.run_with_hooks(tokens, fwd_hooks=hooks_for_batch(i) if hooks_for_batch else [])
            last = logits[:, -1].cpu()
            ar = torch.arange(len(io_ids))
            diffs.append(last[ar, io_ids] - last[ar, s_ids])
        return torch.cat(diffs).mean().item()

    clean_z = []
    for clean, *_ in batches:
        with torch.no_grad():
            _, cache = model.run_with_cache(clean, names_filter=lambda n: n in z_names)
        clean_z.append({n: cache[n] for n in z_names})

    def patch(heads):
        def hooks(i):
            def make(head, source):
                def hook(z, hook):
                    z[:, :, head] = source[:, :, head]
                    return z
                return hook
            return [(f"blocks.{layer}.attn.hook_z", make(h, clean_z[i][f"blocks.{layer}.attn.hook_z"]))
                    for layer, h in heads]
        return hooks

    clean_ld, corrupted_ld = logit_diff(None), logit_diff(lambda i: [])
    denom = clean_ld - corrupted_ld
    rec = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            rec[layer, h] = (logit_diff(patch([(layer, h)])) - corrupted_ld) / denom
    top = [divmod(i, model.cfg.n_heads) for i in rec.flatten().topk(k).indices.tolist()]
    joint = (logit_diff(patch(top)) - corrupted_ld) / denom
    return dict(clean_ld=clean_ld, corrupted_ld=corrupted_ld, head_recovery=rec, top_heads=top,
                top_heads_recovery=joint)


def measure(model, seed: int = 0) -> dict:
    """All measurements at once (``model`` is put in eval mode). Returns a flat dict of numbers."""
    model.eval()
    rep = repeated_tokens(model, seq_len=50, batch=20, seed=seed)
    ind = induction_scores(model, rep)
    layer, head = divmod(ind.argmax().item(), model.cfg.n_heads)
    prev_rand = prev_token_scores(model, random_tokens(model, seq_len=100, batch=20, seed=seed + 1))
    prev_text = prev_token_scores(model, text_tokens(model, batch=20))
    p_layer, p_head = divmod(prev_rand.argmax().item(), model.cfg.n_heads)
    first, second = repeat_losses(model, rep)
    _, ablated = repeat_losses(
        model, rep, [(f"blocks.{layer}.attn.hook_z", zero_ablation_hook(head))]
    )
    m = dict(
        induction_head=f"{layer}.{head}",
        induction_score=ind.max().item(),
        loss_first_repeat=first,
        loss_second_repeat=second,
        ablated_loss_second_repeat=ablated,
        ablation_increase=ablated - second,
        prev_token_head=f"{p_layer}.{p_head}",
        prev_token_random=prev_rand.max().item(),
        prev_token_text=prev_text[p_layer, p_head].item(),
        prev_token_text_best=prev_text.max().item(),
    )
    m.update(ioi_metrics(model))
    patching = ioi_patching(model)
    m["ioi_patch_heads"] = ", ".join(f"{layer}.{h}" for layer, h in patching["top_heads"])
    m["ioi_patch_recovery"] = patching["top_heads_recovery"]
    return m


def format_metrics(m: dict) -> str:
    """A markdown table of ``measure``'s output."""
    rows = [
        ("best induction head (layer.head)", m["induction_head"]),
        ("induction score on [BOS]+r+r, r = 50 random tokens, batch 20", f"{m['induction_score']:.3f}"),
        ("loss on first / second repeat (nats)", f"{m['loss_first_repeat']:.3f} / {m['loss_second_repeat']:.3f}"),
        ("second-repeat loss with the top induction head zero-ablated",
         f"{m['ablated_loss_second_repeat']:.3f} (+{m['ablation_increase']:.3f})"),
        ("best previous-token head on random tokens", f"{m['prev_token_head']}: {m['prev_token_random']:.3f}"),
        ("same head's previous-token score on ordinary text", f"{m['prev_token_text']:.3f}"),
        ("best previous-token score on ordinary text", f"{m['prev_token_text_best']:.3f}"),
        ("IOI accuracy, held-out names x held-out templates (ABBA / BABA)",
         f"{m['ioi_acc']:.1%} ({m['ioi_acc_ABBA']:.1%} / {m['ioi_acc_BABA']:.1%})"),
        ("IOI mean logit diff (ABBA / BABA)",
         f"{m['ioi_logit_diff']:.2f} ({m['ioi_logit_diff_ABBA']:.2f} / {m['ioi_logit_diff_BABA']:.2f})"),
        ("IOI: clean-to-corrupted (names swapped) patching of the 3 best heads' outputs recovers",
         f"{m['ioi_patch_recovery']:.1%} (heads {m['ioi_patch_heads']})"),
    ]
    return "\n".join(["| property | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Measure a shipped model.")
    ap.add_argument("name", help="a model name under models/, e.g. attn2l")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from utils.models import load_model

    print(format_metrics(measure(load_model(args.name, device="cpu"))))
