"""Reference solutions for chapter ch02_caching.

Generated from chapters/src/02_caching.py by `make build`: do not edit; edit the source and rebuild.
"""


import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer


def attention_pattern_from_qk(
    q: Float[Tensor, "batch pos head d_head"], k: Float[Tensor, "batch pos head d_head"]
) -> Float[Tensor, "batch head dest src"]:
    """The causal attention pattern of every head, computed from cached queries and keys.

    Must equal `cache["pattern", layer]` when given `cache["q", layer]` and `cache["k", layer]`.
    """
    d_head, n_pos = q.shape[-1], q.shape[1]
    scores = einops.einsum(q, k, "batch dest head d_head, batch src head d_head -> batch head dest src")
    future = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool, device=q.device), diagonal=1)
    return (scores / d_head**0.5).masked_fill(future, float("-inf")).softmax(dim=-1)


def current_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose mean attention to the current token (the diagonal) is above `threshold`."""
    heads = []
    n_layers, n_heads = cache.model.cfg.n_layers, cache.model.cfg.n_heads
    for layer in range(n_layers):
        pattern = cache["pattern", layer]  # [batch, head, dest, src]
        for head in range(n_heads):
            score = pattern[:, head].diagonal(dim1=-2, dim2=-1).mean()
            if score > threshold:
                heads.append(f"{layer}.{head}")
    return heads


def prev_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose mean attention to the previous token (the sub-diagonal) is above `threshold`."""
    heads = []
    n_layers, n_heads = cache.model.cfg.n_layers, cache.model.cfg.n_heads
    for layer in range(n_layers):
        pattern = cache["pattern", layer]
        for head in range(n_heads):
            score = pattern[:, head].diagonal(offset=-1, dim1=-2, dim2=-1).mean()
            if score > threshold:
                heads.append(f"{layer}.{head}")
    return heads


def first_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose mean attention to the first token (column 0, all destinations) is above
    `threshold`."""
    heads = []
    n_layers, n_heads = cache.model.cfg.n_layers, cache.model.cfg.n_heads
    for layer in range(n_layers):
        pattern = cache["pattern", layer]
        for head in range(n_heads):
            score = pattern[:, head, :, 0].mean()
            if score > threshold:
                heads.append(f"{layer}.{head}")
    return heads


IOI_TEMPLATE = "When {N1} and {N2} went to the {place}, {S} gave a {object} to"
IOI_PAIRS = [("Mary", "John"), ("Tom", "James"), ("Lisa", "Paul"), ("Sarah", "Dan")]
HELD_OUT_PAIRS = [("Victoria", "Arthur"), ("Simon", "Hannah"), ("Oliver", "Rachel")]


def logits_to_ave_logit_diff(
    logits: Float[Tensor, "batch pos d_vocab"],
    answer_tokens: Int[Tensor, "batch 2"],
    per_prompt: bool = False,
) -> Float[Tensor, "*batch"]:
    """Logit of the correct answer minus logit of the incorrect one, at the last position.

    `answer_tokens[:, 0]` are the correct tokens, `answer_tokens[:, 1]` the incorrect ones. Returns the mean
    over the batch (a 0-dim tensor), or one value per prompt (shape `[batch]`) when `per_prompt` is True.
    """
    final_logits = logits[:, -1, :]  # [batch, d_vocab]
    answer_logits = final_logits.gather(dim=-1, index=answer_tokens)  # [batch, 2]
    diff = answer_logits[:, 0] - answer_logits[:, 1]
    return diff if per_prompt else diff.mean()


def logit_lens(
    model: HookedTransformer, cache: ActivationCache, answer_tokens: Int[Tensor, "batch"]
) -> Float[Tensor, "component batch"]:
    """The logit of each prompt's answer token at the last position, read from the residual stream after
    0, 1, ..., n_layers layers (via `cache.accumulated_resid(..., apply_ln=True)` and the unembedding)."""
    resid = cache.accumulated_resid(layer=None, pos_slice=-1, apply_ln=True)  # [component, batch, d_model]
    W_U_answer = model.W_U[:, answer_tokens]  # [d_model, batch]
    logits = einops.einsum(resid, W_U_answer, "component batch d_model, d_model batch -> component batch")
    return logits + model.b_U[answer_tokens]


def residual_stack_to_logit_diff(
    residual_stack: Float[Tensor, "... batch d_model"],
    cache: ActivationCache,
    logit_diff_directions: Float[Tensor, "batch d_model"],
) -> Float[Tensor, "..."]:
    """The average (over the batch) direct contribution of each piece of the residual stream, at the final
    position, to the logit difference, after the final LayerNorm (using the cached scale)."""
    batch_size = residual_stack.shape[-2]
    scaled = cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)
    return einops.einsum(scaled, logit_diff_directions, "... batch d_model, batch d_model -> ...") / batch_size


def head_direct_logit_attribution(
    model: HookedTransformer, cache: ActivationCache, logit_diff_directions: Float[Tensor, "batch d_model"]
) -> Float[Tensor, "layer head"]:
    """Each head's average direct contribution to the logit difference at the final position."""
    per_head = cache.stack_head_results(layer=-1, pos_slice=-1)  # [layer * head, batch, d_model]
    dla = residual_stack_to_logit_diff(per_head, cache, logit_diff_directions)  # [layer * head]
    return einops.rearrange(dla, "(layer head) -> layer head", layer=model.cfg.n_layers)


# The hint of each exercise, from its hint cell: shown by the checker when a failure matches no
# known mistake.
HINTS = {
    'attention_pattern_from_qk': (
        'Three steps: `einops.einsum` of `q` and `k` over `d_head` into `batch head dest src`, di'
        'vided by\n`sqrt(d_head)`; `-inf` on the future (`src > dest`, strictly above the diagona'
        'l: `torch.triu` with\n`diagonal=1`); softmax over `src`, the last dimension.'
    ),
    'current_attn_detector': (
        'For each layer take `cache["pattern", layer]` (`[batch, head, dest, src]`). A head\'s sc'
        'ore is the mean of\nits main diagonal over the last two dimensions (`Tensor.diagonal(dim'
        '1=-2, dim2=-1)`), averaged over the\nbatch too. Keep the heads above the threshold as `f'
        '"{layer}.{head}"`, layer by layer.'
    ),
    'prev_attn_detector': (
        'The same loop as `current_attn_detector`, with the diagonal just *below* the main one (a'
        ' negative `offset`):\nits entry `i` is the attention from position `i + 1` to position `'
        'i`. That diagonal has `pos - 1` entries, and\nthe score is their mean (not their sum div'
        'ided by `pos`). Above the diagonal the causal mask makes everything\nzero.'
    ),
    'first_attn_detector': (
        "The score is the mean of *column* 0 of a head's pattern: the attention that every destin"
        'ation position pays\nto the first source position, averaged over batch and over *all* de'
        'stinations, destination 0 included (its\nattention is always entirely on itself, 1.0: th'
        'e detector does not leave it out).'
    ),
    'logits_to_ave_logit_diff': (
        "Only the last position's logits matter. `gather` along the vocabulary with `answer_token"
        "s` picks each\nprompt's two answer logits (`[batch, 2]`); take correct minus incorrect, "
        'and average over the batch unless\n`per_prompt`.'
    ),
    'logit_lens': (
        '`cache.accumulated_resid` with `layer=None` (every layer, down to the final stream), `po'
        's_slice=-1` and\n`apply_ln=True` gives the normalized partial sums, `[component, batch, '
        "d_model]`. Read each prompt with its\n*own* answer's column of `W_U` (an einsum that kee"
        "ps `batch`) and add that answer's `b_U`."
    ),
    'residual_stack_to_logit_diff': (
        'Scale the stack with the cached final LayerNorm scale (`cache.apply_ln_to_stack` at the '
        "last layer and\nposition), then take each prompt's dot product with its own direction ov"
        'er `d_model` (an einsum with `...`\nfor the leading dimensions) and average over the bat'
        'ch.'
    ),
    'head_direct_logit_attribution': (
        "`cache.stack_head_results` gives every head's output at the last position, layer by laye"
        'r (`L0H0, L0H1, …`).\nPass it through `residual_stack_to_logit_diff` and reshape the fla'
        't `[layer * head]` result into `[layer,\nhead]`: the layer is the outer factor.'
    ),
}
