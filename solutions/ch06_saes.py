"""Reference solutions for chapter ch06_saes.

Generated from chapters/src/06_saes.py by `make build`: do not edit; edit the source and rebuild.
"""


import html
from functools import partial

import einops
import torch
from jaxtyping import Float, Int
from sae_lens import (
    SAE,
    HookedSAETransformer,
    LanguageModelSAERunnerConfig,
    LoggingConfig,
    TopKTrainingSAEConfig,
)
from torch import Tensor
from transformer_lens.hook_points import HookPoint


def sae_encode(sae: SAE, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_sae"]:
    """The SAE's latents for activations `x` (flat: `[..., d_in]`), computed from its weights."""
    hidden_pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    if sae.cfg.architecture() != "topk":
        return hidden_pre.relu()
    if sae.cfg.rescale_acts_by_decoder_norm:
        hidden_pre = hidden_pre * sae.W_dec.norm(dim=-1)
    top = hidden_pre.topk(sae.cfg.k, dim=-1)
    return torch.zeros_like(hidden_pre).scatter(-1, top.indices, top.values.relu())


def sae_decode(sae: SAE, feature_acts: Float[Tensor, "*batch d_sae"]) -> Float[Tensor, "*batch d_in"]:
    """The SAE's reconstruction `[..., d_in]` (flat) from its latents, computed from its weights."""
    if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
        feature_acts = feature_acts / sae.W_dec.norm(dim=-1)
    return feature_acts @ sae.W_dec + sae.b_dec


def spliced_loss_and_latents(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"]
) -> tuple[Float[Tensor, "batch pos_minus_1"], Float[Tensor, "batch pos d_sae"]]:
    """Per-token loss with `sae` spliced in, and the SAE's latents (`hook_sae_acts_post`) from the same run."""
    loss, cache = model.run_with_cache_with_saes(tokens, saes=[sae], return_type="loss", loss_per_token=True)
    return loss, cache[f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"]


def reconstruction_metrics(
    x: Float[Tensor, "n_tokens d_in"], feature_acts: Float[Tensor, "n_tokens d_sae"],
    x_hat: Float[Tensor, "n_tokens d_in"]
) -> dict[str, float]:
    """`{"l0", "mse", "explained_variance", "dead_frac"}` (Python floats) of one set of activations."""
    active = feature_acts != 0
    mse = (x - x_hat).pow(2).sum(-1).mean()
    total_variance = (x - x.mean(0)).pow(2).sum(-1).mean()
    return {
        "l0": active.sum(-1).float().mean().item(),
        "mse": mse.item(),
        "explained_variance": (1 - mse / total_variance).item(),
        "dead_frac": (~active.any(0)).float().mean().item(),
    }


def latent_density(feature_acts: Float[Tensor, "n_tokens d_sae"]) -> Float[Tensor, "d_sae"]:
    """The fraction of tokens on which each latent is active (non-zero)."""
    return (feature_acts != 0).float().mean(0)


def sae_metrics(model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"]) -> dict[str, float]:
    """`reconstruction_metrics` plus `ce_clean`, `ce_sae`, `ce_zero`, `ce_recovered`, `kl_sae`, `kl_zero`, with
    special-token positions left out (Python floats)."""
    hook = sae.cfg.metadata.hook_name
    keep = ~torch.isin(tokens, torch.tensor(model.tokenizer.all_special_ids, device=tokens.device))
    clean_logits, clean_loss = model(tokens, return_type="both", loss_per_token=True)
    (sae_logits, sae_loss), cache = model.run_with_cache_with_saes(
        tokens, saes=[sae], exclude_special_tokens=True, return_type="both", loss_per_token=True)
    zero_logits, zero_loss = model.run_with_hooks(
        tokens, return_type="both", loss_per_token=True, fwd_hooks=[(hook, lambda act, hook: torch.zeros_like(act))])
    metrics = reconstruction_metrics(cache[f"{hook}.hook_sae_input"][keep], cache[f"{hook}.hook_sae_acts_post"][keep],
                                     cache[f"{hook}.hook_sae_recons"][keep])
    ce_clean, ce_sae, ce_zero = (loss[keep[:, :-1]].mean().item() for loss in (clean_loss, sae_loss, zero_loss))
    clean_log_probs = clean_logits.log_softmax(-1)

    def kl_from_clean(logits):
        kl = (clean_log_probs.exp() * (clean_log_probs - logits.log_softmax(-1))).sum(-1)
        return kl[keep].mean().item()

    return metrics | {
        "ce_clean": ce_clean, "ce_sae": ce_sae, "ce_zero": ce_zero,
        "ce_recovered": (ce_zero - ce_sae) / (ce_zero - ce_clean),
        "kl_sae": kl_from_clean(sae_logits), "kl_zero": kl_from_clean(zero_logits),
    }


def get_k_largest_indices(x: Float[Tensor, "batch seq"], k: int, buffer: int = 0) -> Int[Tensor, "k 2"]:
    """`(batch, seq)` indices of the `k` largest entries of `x` (largest first), positions
    `buffer .. seq - buffer - 1` only."""
    inner = x[:, buffer: x.shape[1] - buffer]
    flat = inner.flatten().topk(k).indices
    rows, cols = flat // inner.shape[1], flat % inner.shape[1] + buffer
    return torch.stack([rows, cols], dim=1)


def index_with_buffer(
    x: Float[Tensor, "batch seq"], indices: Int[Tensor, "k 2"], buffer: int
) -> Float[Tensor, "k window"]:
    """`x[b, s - buffer : s + buffer + 1]` for each `(b, s)` in `indices`: `[k, 2 * buffer + 1]`."""
    rows, cols = indices.unbind(-1)
    offsets = torch.arange(-buffer, buffer + 1, device=x.device)
    return x[rows[:, None], cols[:, None] + offsets]


def fetch_max_activating_examples(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch seq"], latent: int, k: int = 10,
    buffer: int = 5
) -> tuple[Float[Tensor, "k"], Int[Tensor, "k window"], Float[Tensor, "k window"]]:
    """The `k` largest activations of `latent` on `tokens` (positions at least `buffer` from each end), the
    token windows around them and the latent's activations in those windows."""
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], names_filter=[name])
    acts = cache[name][..., latent]  # [batch, seq]
    indices = get_k_largest_indices(acts, k, buffer)
    return (acts[indices[:, 0], indices[:, 1]], index_with_buffer(tokens, indices, buffer),
            index_with_buffer(acts, indices, buffer))


def latent_residual_directions(model: HookedSAETransformer, sae: SAE) -> Float[Tensor, "d_sae d_model"]:
    """Each latent's decoder direction in the residual stream: `W_dec` for a residual-stream SAE, `W_dec` (split
    into heads) times `W_O` of the SAE's layer for a `hook_z` SAE."""
    hook_name = sae.cfg.metadata.hook_name
    if not hook_name.endswith("hook_z"):
        return sae.W_dec
    layer = int(hook_name.split(".")[1])
    W_dec = sae.W_dec.view(sae.cfg.d_sae, model.cfg.n_heads, model.cfg.d_head)
    return einops.einsum(W_dec, model.W_O[layer], "d_sae n_heads d_head, n_heads d_head d_model -> d_sae d_model")


def latent_top_logits(
    model: HookedSAETransformer, sae: SAE, latent: int, k: int = 10
) -> tuple[Float[Tensor, "k"], Int[Tensor, "k"], Float[Tensor, "k"], Int[Tensor, "k"]]:
    """`(top values, top token ids, bottom values, bottom token ids)` of the latent's direction times `W_U`."""
    logits = latent_residual_directions(model, sae)[latent] @ model.W_U
    top, bottom = logits.topk(k), logits.topk(k, largest=False)
    return top.values, top.indices, bottom.values, bottom.indices


def _chip(text: str, strength: float, rgb: tuple[int, int, int], title: str = "") -> str:
    alpha = max(0.0, min(1.0, strength))
    return (f"<span title='{html.escape(title)}' style='background: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.2f}); "
            f"padding: 1px 2px; border-radius: 3px; white-space: pre;'>{html.escape(text)}</span>")


def latent_dashboard(model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch seq"], latent: int,
                     k: int = 6, buffer: int = 6, n_logits: int = 8) -> str:
    """A self-contained HTML view of one latent (no scripts, no network): density, activation histogram, top
    contexts with highlighted tokens, contexts sampled across the range of its activations, top and bottom logits.
    Built from the chapter's exercises."""
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], names_filter=[name])
    table = cache[name][..., latent]  # [batch, seq]
    acts = table[:, 1:].flatten()
    density = (acts > 0).float().mean().item()
    values, windows, window_acts = fetch_max_activating_examples(model, sae, tokens, latent, k=k, buffer=buffer)
    top_v, top_i, bottom_v, bottom_i = latent_top_logits(model, sae, latent, k=n_logits)
    peak = max(values.max().item(), 1e-6)

    def row(label: str, window, window_act) -> str:
        chips = "".join(_chip(text, a / peak, (255, 140, 0), f"{a:.2f}")
                        for text, a in zip(model.to_str_tokens(window), window_act.tolist()))
        return (f"<tr><td style='text-align: right; padding-right: 8px; white-space: nowrap;'>{label}</td>"
                f"<td style='font-family: monospace;'>{chips}</td></tr>")

    rows = [row(f"{value:.2f}", window, window_act) for value, window, window_act in zip(values.tolist(), windows,
                                                                                            window_acts)]
    # The top k show the latent at its strongest; a latent is mostly seen weaker. One context per quartile of its
    # non-zero activations (the one nearest to each quartile), among the positions where a window fits.
    inner = table[:, buffer: table.shape[1] - buffer]
    active = inner[inner > 0]
    if len(active):
        for q in (0.75, 0.5, 0.25):
            target = active.quantile(q)
            where = ((inner - target).abs() + (inner <= 0) * 1e9).flatten().argmin()
            index = torch.tensor([[int(where) // inner.shape[1], int(where) % inner.shape[1] + buffer]],
                                 device=table.device)
            value = table[index[0, 0], index[0, 1]].item()
            rows.append(row(f"q{int(q * 100)} {value:.2f}", index_with_buffer(tokens, index, buffer)[0],
                            index_with_buffer(table, index, buffer)[0]))
    nonzero = acts[acts > 0]
    counts = torch.histc(nonzero, bins=20, min=0, max=peak).tolist() if len(nonzero) else [0] * 20
    tallest = max(counts) or 1
    bars = "".join(f"<div title='{int(c)} tokens' style='display: inline-block; width: 9px; margin-right: 1px; "
                   f"height: {max(1, int(60 * c / tallest))}px; background: #f08c00;'></div>" for c in counts)
    span = max(top_v.abs().max().item(), bottom_v.abs().max().item(), 1e-6)
    promoted = " ".join(_chip(text, v / span, (0, 90, 255), f"{v:+.2f}")
                        for v, text in zip(top_v.tolist(), model.to_str_tokens(top_i)))
    suppressed = " ".join(_chip(text, -v / span, (230, 0, 0), f"{v:+.2f}")
                          for v, text in zip(bottom_v.tolist(), model.to_str_tokens(bottom_i)))
    return (f"<div style='font: 13px sans-serif; border: 1px solid #ccc; border-radius: 6px; padding: 10px; "
            f"margin: 6px 0; max-width: 980px;'>"
            f"<b>latent {latent}</b> of <code>{html.escape(sae.cfg.metadata.hook_name)}</code> · density "
            f"{density:.3%} of {len(acts):,} tokens · max activation {peak:.2f}"
            f"<div style='margin: 8px 0;'><div style='display: flex; align-items: flex-end; height: 62px;'>{bars}"
            f"</div><small>non-zero activations, 0 to {peak:.2f}</small></div>"
            f"<div><b>promotes</b> {promoted}</div><div><b>suppresses</b> {suppressed}</div>"
            f"<small>(direct effect: the decoder direction times W_U, skipping every layer after the SAE)</small>"
            f"<table style='margin-top: 8px; border-collapse: collapse;'>{''.join(rows)}</table></div>")


def ablate_sae_latent(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"], latent: int
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits with `sae` spliced in (error term on) and `latent` zeroed at every position."""
    def ablate(acts: Float[Tensor, "batch pos d_sae"], hook: HookPoint) -> Float[Tensor, "batch pos d_sae"]:
        acts[..., latent] = 0.0
        return acts

    with model.saes(saes=[sae], use_error_term=True):
        return model.run_with_hooks(tokens, fwd_hooks=[(f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post", ablate)])


def steering_hook(
    activations: Float[Tensor, "batch pos d_in"], hook: HookPoint, sae: SAE, latent_idx: int,
    steering_coefficient: float
) -> Float[Tensor, "batch pos d_in"]:
    """`activations + steering_coefficient * W_dec[latent_idx]` at every position."""
    return activations + steering_coefficient * sae.W_dec[latent_idx]


def generate_with_steering(
    model: HookedSAETransformer, sae: SAE, prompt: str, latent_idx: int, steering_coefficient: float,
    max_new_tokens: int = 20, seed: int = 0
) -> str:
    """The prompt and `max_new_tokens` sampled tokens, with `latent_idx` steered by `steering_coefficient`."""
    fn = partial(steering_hook, sae=sae, latent_idx=latent_idx, steering_coefficient=steering_coefficient)
    torch.manual_seed(seed)
    with model.hooks(fwd_hooks=[(sae.cfg.metadata.hook_name, fn)]):
        return model.generate(prompt, max_new_tokens=max_new_tokens, verbose=False)


def latent_dla(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"], answer_tokens: Int[Tensor, "batch 2"]
) -> Float[Tensor, "batch d_sae"]:
    """Each latent's direct logit attribution toward `IO - S` at the last position of each prompt."""
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True,
                                              names_filter=[name, "ln_final.hook_scale"])
    acts = cache[name][:, -1]  # [batch, d_sae]
    directions = latent_residual_directions(model, sae)  # [d_sae, d_model]
    logit_diff_dirs = (model.W_U[:, answer_tokens[:, 0]] - model.W_U[:, answer_tokens[:, 1]]).T  # [batch, d_model]
    logit_diff_dirs = logit_diff_dirs / cache["ln_final.hook_scale"][:, -1]
    return acts * einops.einsum(directions, logit_diff_dirs, "d_sae d_model, batch d_model -> batch d_sae")


def decoder_norms_by_head(sae: SAE, n_heads: int) -> Float[Tensor, "d_sae n_heads"]:
    """The fraction of each latent's squared decoder norm in each head's `d_head` slice (rows sum to 1)."""
    per_head = sae.W_dec.view(sae.cfg.d_sae, n_heads, -1).pow(2).sum(-1)
    return per_head / per_head.sum(-1, keepdim=True)


def ablate_latents_logit_diff(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"], answer_tokens: Int[Tensor, "batch 2"],
    latents: list[int]
) -> float:
    """Mean `logit(IO) - logit(S)` at the last position with `latents` zero-ablated (error term on)."""
    def ablate(acts: Float[Tensor, "batch pos d_sae"], hook: HookPoint) -> Float[Tensor, "batch pos d_sae"]:
        acts[..., latents] = 0.0
        return acts

    with model.saes(saes=[sae], use_error_term=True):
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post", ablate)])
    last = logits[:, -1]
    return (last.gather(-1, answer_tokens[:, :1]) - last.gather(-1, answer_tokens[:, 1:])).mean().item()


def latent_attribution(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"], answer_tokens: Int[Tensor, "batch 2"]
) -> Float[Tensor, "d_sae"]:
    """`acts * grad` of each latent (SAE spliced in, error term on), summed over prompts and positions, for the mean
    `logit(IO) - logit(S)` at the last position."""
    kept = {}

    def keep(acts: Float[Tensor, "batch pos d_sae"], hook: HookPoint) -> Float[Tensor, "batch pos d_sae"]:
        kept["acts"] = acts.detach().requires_grad_()
        return kept["acts"]

    with torch.enable_grad(), model.saes(saes=[sae], use_error_term=True):
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post", keep)])
        last = logits[:, -1]
        metric = (last.gather(-1, answer_tokens[:, :1]) - last.gather(-1, answer_tokens[:, 1:])).mean()
        (grad,) = torch.autograd.grad(metric, kept["acts"])
    return (kept["acts"] * grad).sum((0, 1)).detach()


def sae_training_config(
    model_name: str, hook_name: str, d_in: int, *, expansion: int = 4, k: int = 8, training_tokens: int = 120_000,
    batch_tokens: int = 1024, context_size: int = 128, lr: float = 6e-3, seed: int = 0, device: str = "cpu"
) -> LanguageModelSAERunnerConfig:
    """The runner configuration of a small TopK SAE, offline, to the spec above."""
    steps = training_tokens // batch_tokens
    return LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(d_in=d_in, d_sae=expansion * d_in, k=k, aux_loss_coefficient=1.0,
                                  normalize_activations="expected_average_only_in", device=device),
        model_name=model_name, hook_name=hook_name, is_dataset_tokenized=True, streaming=False,
        context_size=context_size, training_tokens=training_tokens, train_batch_size_tokens=batch_tokens,
        n_batches_in_buffer=32, store_batch_size_prompts=16, lr=lr, lr_warm_up_steps=steps // 20,
        lr_decay_steps=steps // 5, dead_feature_window=max(1, 50_000 // batch_tokens), n_batches_for_norm_estimate=10,
        seed=seed, device=device, logger=LoggingConfig(log_to_wandb=False), output_path=None, checkpoint_path=None,
        n_checkpoints=0, verbose=False, model_from_pretrained_kwargs={},
    )


# The hint of each exercise, from its hint cell: shown by the checker when a failure matches no
# known mistake.
HINTS = {
    'sae_encode': (
        'The pre-activations use all three of `b_dec`, `W_enc` and `b_enc`. The config tells you '
        'the rest:\n`sae.cfg.architecture()`, `sae.cfg.k`, `sae.cfg.rescale_acts_by_decoder_norm`'
        '. `Tensor.topk` returns values and\nindices (the largest values, signs included); `Tenso'
        'r.scatter` writes values at indices into a tensor of zeros.'
    ),
    'sae_decode': (
        "One matrix product and one bias. When the encoder multiplied by the decoder rows' norms,"
        " divide by them here; a\nstandard SAE's config has no `rescale_acts_by_decoder_norm` at "
        'all (`getattr` with a default).'
    ),
    'spliced_loss_and_latents': (
        'One call does both: `run_with_cache_with_saes` passes `return_type` and `loss_per_token`'
        " on to the forward pass.\nThe latents are under the SAE's hook name followed by the SAE'"
        's own hook point *after* the TopK.'
    ),
    'reconstruction_metrics': (
        'Sum the squared error over `d_in` (the last dimension) and average over tokens; the tota'
        'l variance is the same\nwith `x - x.mean(0)` in place of `x - x_hat`. A latent is dead w'
        'hen `(feature_acts != 0).any(0)` is False for it.\nTurn each result into a Python float '
        'with `.item()`.'
    ),
    'latent_density': '`(feature_acts != 0)` as floats, averaged over the tokens (dimension 0).',
    'sae_metrics': (
        'Three forward passes on the same tokens: clean, spliced (with the cache, special tokens '
        "excluded) and zero-ablated\n(a hook that returns zeros of the activation's shape). `torc"
        "h.isin` builds the mask of kept positions. Each\nposition's loss belongs to its input to"
        'ken, hence `keep[:, :-1]`. KL(clean || new) weighs `log p_clean - log\np_new` by the *cl'
        'ean* probabilities, summed over the vocabulary.'
    ),
    'get_k_largest_indices': (
        'Slice away the edges first (careful: `x[:, buffer:-buffer]` is empty when `buffer` is 0)'
        ', take the top k of the\nflattened table, and turn each flat index back into a row and a'
        ' column of the *sliced* table, then of `x`.'
    ),
    'index_with_buffer': (
        'Advanced indexing with two index tensors that broadcast to `[k, 2 * buffer + 1]`: one fo'
        "r the rows, one for the\ncolumns of each window (each index's column plus the offsets `-"
        'buffer ... buffer`).'
    ),
    'fetch_max_activating_examples': (
        "Cache only the latents (`names_filter`), keep the one latent's `[batch, seq]` table, and"
        ' let your two previous\nfunctions do the rest: `index_with_buffer` once on the tokens an'
        'd once on the activations. The top *tokens*, not\nthe top sequences: one row may hold se'
        'veral of them.'
    ),
    'latent_residual_directions': (
        'Split each `hook_z` decoder row into its heads (the heads are concatenated head by head)'
        " and contract with the\nlayer's `model.W_O` over both the heads and `d_head`. A residual"
        "-stream SAE's rows need nothing."
    ),
    'latent_top_logits': (
        "The latent's direction from your previous function, times the unembedding, gives `[d_voc"
        'ab]` logits; `topk` has a\n`largest=` argument.'
    ),
    'ablate_sae_latent': (
        "A hook function that zeroes one latent and returns the activations, on the SAE's hook po"
        'int after the TopK\n(zeroing before it would let another latent take the place), run ins'
        'ide the `saes()` context shown above.'
    ),
    'steering_hook': (
        'One line: the decoder row `sae.W_dec[latent_idx]` (`[d_in]`) broadcasts over batch and p'
        'ositions. Every position,\nnot only the last: the model reads earlier positions through '
        'attention.'
    ),
    'generate_with_steering': (
        "Bind `steering_hook`'s extra arguments with `functools.partial`, seed, and generate insi"
        "de the `model.hooks(...)`\ncontext on the SAE's hook point: the hook goes away when the "
        'block ends, whatever happens inside.'
    ),
    'latent_dla': (
        'From one cached run (error term on): the latents and the final LayerNorm scale at the la'
        'st position. Each prompt\nhas its own logit-difference direction (`model.W_U` columns of'
        " its two answers); divide it by that prompt's scale,\nproject every latent's residual di"
        "rection on it, and weight by the latent's activation."
    ),
    'decoder_norms_by_head': (
        'Split the decoder rows into heads as for the residual directions, square and sum within '
        "each head, and divide by\neach latent's total."
    ),
    'ablate_latents_logit_diff': (
        'As `ablate_sae_latent`, with a list of latents (a list indexes several at once); then th'
        "e two answers' logits at\nthe last position (`gather` with `answer_tokens`), their mean "
        'difference as a Python float.'
    ),
    'latent_attribution': (
        'The metric is a mean over prompts, so its gradient already carries the `1 / batch`: sum '
        '`acts * grad` over both the\nprompts and the positions. The error term keeps the run the'
        ' clean one; `torch.autograd.grad` returns a tuple.'
    ),
    'sae_training_config': (
        'Two objects: `TopKTrainingSAEConfig(...)` (`d_sae` is `expansion * d_in`, not `expansion'
        '`) inside\n`LanguageModelSAERunnerConfig(sae=..., ...)`; copy every setting of the spec,'
        ' in particular\n`logger=LoggingConfig(log_to_wandb=False)` (the default logs to Weights '
        '& Biases) and\n`n_batches_for_norm_estimate=10`.'
    ),
}
