"""The measurements of the model cards: induction, previous-token heads, IOI, generation.

All functions take a ``HookedTransformer`` and are deterministic (seeded). Shapes use ``batch``,
``pos``, ``n_layers`` and ``n_heads`` as in TransformerLens. The head scores themselves (``induction_scores``,
``prev_token_scores``) and the data (``repeated_tokens``, ``text_tokens``, IOI prompts) have their one home in
``utils.data``, shared with the chapters' checkers and story tests.

Example:
    >>> from utils.models import load_model
    >>> model = load_model("attn2l", device="cpu")
    >>> measure(model)["induction_score"]            # the model card's numbers, as a dict

Usage::

    python -m training.evaluate attn2l
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from utils.corpus import (
    HELDOUT_NAMES,
    IOI_HELDOUT_TEMPLATES,
    IOI_NOVEL_TEMPLATES,
    IOI_TRAIN_TEMPLATES,
    TRAIN_NAMES,
    generate_documents,
)
from utils.data import (
    EVAL_TEXT_SEED,
    induction_scores,
    ioi_dataset,
    prev_token_scores,
    repeat_losses,
    repeated_tokens,
    text_tokens,
    zero_ablation_hook,
)


def random_tokens(model, seq_len: int = 100, batch: int = 10, seed: int = 0) -> torch.Tensor:
    """``[BOS] + r`` with ``r`` random non-special tokens (no repeats): ``[batch, 1 + seq_len]``."""
    return repeated_tokens(model, seq_len, batch, seed=seed)[:, : 1 + seq_len]


def _ioi_batches(model, names, templates, n_pairs: int, seed: int, fills: int = 5, need_positions: bool = False):
    """IOI datasets (``utils.data.ioi_dataset``) of each template with ``fills`` different sets of fillers, both
    orders, ``n_pairs`` name pairs per order in all."""
    per_fill = max(1, n_pairs // fills)
    return [ioi_dataset(model, [template], names, n_pairs=per_fill, seed=seed * 1000 + 10 * i + f,
                        need_positions=need_positions)
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
    batches = _ioi_batches(model, names, templates, n_pairs, seed, fills=1, need_positions=True)
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


# The IOI evaluation sets of the model card: (key, description, names, frames). "Held-out" frames are never
# generated whole in training (every word is); "novel" frames are written apart from the generator's parts.
IOI_SETS = [
    ("train_frames", "training names x training frames", TRAIN_NAMES, IOI_TRAIN_TEMPLATES),
    ("heldout_frames", "training names x held-out frames", TRAIN_NAMES, IOI_HELDOUT_TEMPLATES),
    ("heldout_names", "held-out names x held-out frames", HELDOUT_NAMES, IOI_HELDOUT_TEMPLATES),
    ("novel_frames", "training names x novel frames", TRAIN_NAMES, IOI_NOVEL_TEMPLATES),
    ("novel_names", "held-out names x novel frames", HELDOUT_NAMES, IOI_NOVEL_TEMPLATES),
]


def ioi_head_roles(model, names=TRAIN_NAMES, templates=IOI_HELDOUT_TEMPLATES, n_pairs: int = 10,
                   seed: int = 0) -> dict[str, torch.Tensor]:
    """What each head does on IOI prompts, each as ``[n_layers, n_heads]``, means over the prompts:

    - ``end_io`` / ``end_s1`` / ``end_s2``: attention from END to the IO, S1 and S2 tokens;
    - ``s2_s1`` / ``s2_after_s1``: attention from S2 to S1 (duplicate-token) and to the token after S1 (induction);
    - ``copy``: how often the head's OV circuit, applied to the residual stream at the IO token (scaled by the
      final LayerNorm's scale at END), gives IO the highest logit among all of ``names``;
    - ``dla``: the head's direct logit attribution at END toward IO - S;
    - ``patch_end``: the fraction of the clean-vs-swapped logit difference recovered by patching the head's
      output at END alone, from clean into names-swapped prompts.
    """
    batches = _ioi_batches(model, names, templates, n_pairs, seed, fills=1, need_positions=True)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    name_ids = torch.tensor([model.to_single_token(" " + n) for n in names], device=model.cfg.device)
    sums: dict[str, torch.Tensor] = {}
    clean_ld = corrupted_ld = 0.0
    recovered = torch.zeros(n_layers, n_heads)
    for data in batches:
        rows = torch.arange(len(data), device=data.tokens.device)
        pos = data.positions
        with torch.no_grad():
            _, cache = model.run_with_cache(data.tokens)
        io_dir = model.W_U[:, data.answer_tokens[:, 0]] - model.W_U[:, data.answer_tokens[:, 1]]  # [d_model, batch]
        scale = cache["ln_final.hook_scale"][rows, pos.end]  # [batch, 1]
        out = {k: torch.zeros(n_layers, n_heads) for k in ("end_io", "end_s1", "end_s2", "s2_s1", "s2_after_s1",
                                                              "copy", "dla")}
        for layer in range(n_layers):
            pattern = cache["pattern", layer]  # [batch, head, dest, src]
            for key, dest, src in [("end_io", pos.end, pos.io), ("end_s1", pos.end, pos.s1),
                                   ("end_s2", pos.end, pos.s2), ("s2_s1", pos.s2, pos.s1),
                                   ("s2_after_s1", pos.s2, pos.s1 + 1)]:
                out[key][layer] = pattern[rows, :, dest, src].mean(0).cpu()
            z_end = cache["z", layer][rows, pos.end]  # [batch, head, d_head]
            head_out = torch.einsum("bhd,hdm->bhm", z_end, model.W_O[layer]) / scale[:, :, None]
            out["dla"][layer] = torch.einsum("bhm,mb->bh", head_out, io_dir).mean(0).cpu()
            resid_io = cache["resid_pre", layer][rows, pos.io] / cache[f"blocks.{layer}.ln1.hook_scale"][rows, pos.io]
            ov = torch.einsum("bm,hmd,hdn->bhn", resid_io, model.W_V[layer], model.W_O[layer]) / scale[:, :, None]
            logits = ov @ model.W_U[:, name_ids]  # [batch, head, n_names]
            io_index = (name_ids[None, :] == data.answer_tokens[:, :1]).int().argmax(-1)  # [batch]
            out["copy"][layer] = (logits.argmax(-1) == io_index[:, None]).float().mean(0).cpu()
        for key, value in out.items():
            sums[key] = sums.get(key, 0) + value / len(batches)
        bad = data.swapped(model)
        clean = _logit_diff(model, data).mean().item()
        swapped = replace(bad, answer_tokens=data.answer_tokens)
        corrupt = _logit_diff(model, swapped).mean().item()
        clean_ld, corrupted_ld = clean_ld + clean / len(batches), corrupted_ld + corrupt / len(batches)
        for layer in range(n_layers):
            z = cache["z", layer]
            for head in range(n_heads):
                hook = (f"blocks.{layer}.attn.hook_z", _patch_head_at(head, z, pos.end))
                patched = _logit_diff(model, swapped, [hook]).mean().item()
                recovered[layer, head] += (patched - corrupt) / (clean - corrupt) / len(batches)
    sums["patch_end"] = recovered
    return sums


def _patch_head_at(head: int, source: torch.Tensor, positions: torch.Tensor):
    """A hook_z hook that copies one head's output at one position per prompt from ``source``."""
    def hook(z, hook):
        rows = torch.arange(z.shape[0], device=z.device)
        z[rows, positions, head] = source[rows, positions, head]
        return z
    return hook


def head_classes(roles: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Heads by the role the chapter-5 story gives them, from :func:`ioi_head_roles`, each with the numbers that
    put it there (``"1.0 (IO 0.50 / S 0.42, copies 98%)"``):

    - name-mover-like: at END attend more to IO than to S (S1 + S2), and their OV circuit copies names
      (``copy`` >= 0.5);
    - S-inhibition-like: their output at END matters (``patch_end`` >= 0.1) and they attend from END to S2
      (>= 0.3);
    - duplicate-token-like / induction-like: attend from S2 to S1 / to the token after S1 (>= 0.3).
    """
    def heads(mask, describe):
        return [f"{layer}.{head} ({describe(layer, head)})" for layer, head in mask.nonzero().tolist()]

    r = roles
    s = r["end_s1"] + r["end_s2"]
    return {
        "name_movers": heads((r["end_io"] > s) & (r["copy"] >= 0.5), lambda layer, h: (
            f"IO {r['end_io'][layer, h]:.2f} / S {s[layer, h]:.2f}, copies {r['copy'][layer, h]:.0%}")),
        "s_inhibition": heads((r["patch_end"] >= 0.1) & (r["end_s2"] >= 0.3), lambda layer, h: (
            f"S2 {r['end_s2'][layer, h]:.2f}, patching at END {r['patch_end'][layer, h]:.0%}, "
            f"direct IO - S {r['dla'][layer, h]:+.2f}")),
        "duplicate_token": heads(r["s2_s1"] >= 0.3, lambda layer, h: f"{r['s2_s1'][layer, h]:.2f}"),
        "induction": heads(r["s2_after_s1"] >= 0.3, lambda layer, h: f"{r['s2_after_s1'][layer, h]:.2f}"),
    }


def generation_quality(model, n: int = 40, max_new_tokens: int = 30, seed: int = 0) -> dict:
    """What ``model.generate()`` from BOS alone at temperature 1 gives (a learner's first try), through
    ``utils.models.generate`` (which ``load_model`` installs: TransformerLens would otherwise mask the lone BOS).

    A sample "reads like the corpus" when it has words, every word occurs in the training text, and no token
    repeats four times in a row. Returns ``gen_ok`` (that fraction) and three ``gen_examples``.
    """
    from utils.corpus import generate_documents_v2, words
    from utils.models import generate

    docs = generate_documents(300, seed=EVAL_TEXT_SEED) + generate_documents_v2(300, seed=EVAL_TEXT_SEED)
    vocab = words(" ".join(docs))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bos = torch.full((n, 1), model.tokenizer.bos_token_id, device=model.cfg.device)
        samples = generate(model, bos, max_new_tokens=max_new_tokens, temperature=1.0, stop_at_eos=True,
                           verbose=False)
    eos, texts, ok = model.tokenizer.eos_token_id, [], 0
    for row in samples[:, 1:].tolist():
        row = row[: row.index(eos)] if eos in row else row
        text = model.to_string(torch.tensor(row)) if row else ""
        repeats = any(row[i] == row[i + 1] == row[i + 2] == row[i + 3] for i in range(len(row) - 3))
        found = words(text)
        ok += bool(found) and found <= vocab and not repeats
        texts.append(text)
    return dict(gen_ok=ok / n, gen_examples=texts[:3])


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
    # the induction head's score with the best previous-token head (in an earlier layer) zero-ablated
    prev_layer_scores = prev_rand[:layer] if layer > 0 else prev_rand[:1]
    pl, ph = divmod(prev_layer_scores.argmax().item(), model.cfg.n_heads)
    with torch.no_grad():
        ablated_ind = induction_scores(model, rep, [(f"blocks.{pl}.attn.hook_z", zero_ablation_hook(ph))])
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
        feeding_prev_head=f"{pl}.{ph}",
        induction_with_prev_ablated=ablated_ind[layer, head].item(),
    )
    m.update(generation_quality(model))
    for key, _, names, frames in IOI_SETS:
        m.update({f"{key}_{k.removeprefix('ioi_')}": v for k, v in ioi_metrics(model, names, frames).items()})
    patching = ioi_patching(model, names=TRAIN_NAMES)
    m.update(ioi_patch_heads=", ".join(f"{layer}.{h}" for layer, h in patching["top_heads"]),
             ioi_patch_recovery=patching["top_heads_recovery"], ioi_patch_clean_ld=patching["clean_ld"])
    m.update({f"heads_{k}": v for k, v in head_classes(ioi_head_roles(model)).items()})
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
        ("top induction score with the best earlier previous-token head zero-ablated",
         f"{m['induction_with_prev_ablated']:.3f} (head {m['feeding_prev_head']} ablated; "
         f"{m['induction_with_prev_ablated'] / m['induction_score']:.0%} of the clean score)"),
        ("samples from BOS alone (temperature 1) that read like the corpus",
         f"{m['gen_ok']:.0%}; e.g. {m['gen_examples'][0]!r}"),
    ]
    for key, description, _, _ in IOI_SETS:
        if f"{key}_acc" in m:
            rows.append((f"IOI accuracy / mean logit diff, {description} (ABBA / BABA accuracy)",
                         f"{m[key + '_acc']:.1%} / {m[key + '_logit_diff']:.2f} ({m[key + '_acc_ABBA']:.1%} / "
                         f"{m[key + '_acc_BABA']:.1%})"))
    if "ioi_patch_recovery" in m:
        rows += [
            ("IOI (training names x held-out frames): patching the 3 best heads' outputs from clean into "
             "names-swapped prompts recovers", f"{m['ioi_patch_recovery']:.1%} of a clean logit diff of "
             f"{m['ioi_patch_clean_ld']:.2f} (heads {m['ioi_patch_heads']})"),
            ("name-mover-like heads (at END attend to IO more than to S; OV copies names)",
             ", ".join(m["heads_name_movers"]) or "none"),
            ("S-inhibition-like heads (at END attend to S2 >= 0.3; patching their output at END recovers >= 10%)",
             ", ".join(m["heads_s_inhibition"]) or "none"),
            ("duplicate-token-like heads (S2 attends to S1 >= 0.3)", ", ".join(m["heads_duplicate_token"]) or "none"),
            ("induction-like heads at S2 (S2 attends to the token after S1 >= 0.3)",
             ", ".join(m["heads_induction"]) or "none"),
        ]
    return "\n".join(["| property | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Measure a shipped model.")
    ap.add_argument("name", help="a model name under models/, e.g. attn2l")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from utils.models import load_model

    print(format_metrics(measure(load_model(args.name, device="cpu"))))
