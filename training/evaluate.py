"""The measurements the chapters (and tests) rely on: induction, previous-token heads, IOI.

All functions take a ``HookedTransformer`` and are deterministic (seeded). Shapes use ``batch``,
``pos``, ``n_layers`` and ``n_heads`` as in TransformerLens.

Example:
    >>> from utils.models import load_model
    >>> model = load_model("attn2l", device="cpu")
    >>> tokens = repeated_tokens(model, seq_len=50, batch=10, seed=0)   # [10, 101] (utils.data)
    >>> induction_scores(model, tokens).shape                   # [n_layers, n_heads]
    torch.Size([2, 4])

Usage::

    python -m training.evaluate attn2l
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from training.corpus import HELDOUT_NAMES, IOI_HELDOUT_TEMPLATES, generate_documents
from utils.data import ioi_dataset, repeat_losses, repeated_tokens, zero_ablation_hook

EVAL_TEXT_SEED = 987_654  # corpus seed never used in training


def random_tokens(model, seq_len: int = 100, batch: int = 10, seed: int = 0) -> torch.Tensor:
    """``[BOS] + r`` with ``r`` random non-special tokens (no repeats): ``[batch, 1 + seq_len]``."""
    return repeated_tokens(model, seq_len, batch, seed=seed)[:, : 1 + seq_len]


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


def _ioi_batches(model, names, templates, n_pairs: int, seed: int, fills: int = 5):
    """IOI datasets (``utils.data.ioi_dataset``) of each template with ``fills`` different sets of fillers, both
    orders, ``n_pairs`` name pairs per order in all."""
    per_fill = max(1, n_pairs // fills)
    return [ioi_dataset(model, [template], names, n_pairs=per_fill, seed=seed * 1000 + 10 * i + f)
            for i, template in enumerate(templates) for f in range(fills)]


def _logit_diff(model, data, fwd_hooks=()) -> torch.Tensor:
    """``logit(IO) - logit(S)`` at the last position of each prompt of ``data``, ``[batch]`` (on the CPU)."""
    with torch.no_grad():
        logits = model.run_with_hooks(data.tokens, fwd_hooks=list(fwd_hooks))[:, -1]
    return (logits.gather(-1, data.answer_tokens[:, :1]) - logits.gather(-1, data.answer_tokens[:, 1:]))[:, 0].cpu()


def ioi_metrics(model, names=HELDOUT_NAMES, templates=IOI_HELDOUT_TEMPLATES, n_pairs: int = 60,
                seed: int = 0) -> dict:
    """IOI accuracy and mean logit difference ``logit(IO) - logit(S)`` at the last position.

    Uses ``n_pairs`` random (IO, S) pairs of ``names`` per template and order (ABBA, BABA), in five sets of
    fillers per template. Accuracy is the fraction of prompts with a positive logit difference.

    Returns:
        dict with ``ioi_acc``, ``ioi_logit_diff``, and the same per order (``ioi_acc_ABBA``, ...).
    """
    diffs, orders = [], []
    for data in _ioi_batches(model, names, templates, n_pairs, seed):
        diffs.append(_logit_diff(model, data))
        orders += data.orders
    d = torch.cat(diffs)
    out = {}
    for order in ("ABBA", "BABA"):
        mask = torch.tensor([o == order for o in orders])
        out[f"ioi_acc_{order}"] = (d[mask] > 0).float().mean().item()
        out[f"ioi_logit_diff_{order}"] = d[mask].mean().item()
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
    batches = _ioi_batches(model, names, templates, n_pairs, seed, fills=1)
    corrupted = [data.swapped(model) for data in batches]
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    clean_z = []
    for data in batches:
        with torch.no_grad():
            _, cache = model.run_with_cache(data.tokens, names_filter=lambda n: n in z_names)
        clean_z.append({n: cache[n] for n in z_names})

    def mean_ld(heads=None) -> float:
        """Mean clean-answer logit difference: on clean prompts (heads None), else corrupted with heads patched."""
        diffs = []
        for i, (data, bad) in enumerate(zip(batches, corrupted)):
            if heads is None:
                diffs.append(_logit_diff(model, data))
                continue
            hooks = [(f"blocks.{layer}.attn.hook_z", _patch_head(h, clean_z[i][f"blocks.{layer}.attn.hook_z"]))
                     for layer, h in heads]
            diffs.append(_logit_diff(model, replace(bad, answer_tokens=data.answer_tokens), hooks))
        return torch.cat(diffs).mean().item()

    clean_ld, corrupted_ld = mean_ld(None), mean_ld([])
    denom = clean_ld - corrupted_ld
    rec = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            rec[layer, h] = (mean_ld([(layer, h)]) - corrupted_ld) / denom
    top = [divmod(i, model.cfg.n_heads) for i in rec.flatten().topk(k).indices.tolist()]
    joint = (mean_ld(top) - corrupted_ld) / denom
    return dict(clean_ld=clean_ld, corrupted_ld=corrupted_ld, head_recovery=rec, top_heads=top,
                top_heads_recovery=joint)


def _patch_head(head: int, source: torch.Tensor):
    def hook(z, hook):
        z[:, :, head] = source[:, :, head]
        return z
    return hook


def measure(model, seed: int = 0) -> dict:
    """All measurements at once (``model`` is put in eval mode). Returns a flat dict of numbers."""
    model.eval()
    rep = repeated_tokens(model, 50, 20, seed=seed)
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
