"""Reference solutions for chapter ch03_hooks.

Generated from chapters/src/03_hooks.py by `make build`: do not edit; edit the source and rebuild.
"""


from collections.abc import Callable, Sequence
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name


def head_zero_ablation_hook(
    z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head_index_to_ablate: int
) -> Float[Tensor, "batch pos head d_head"]:
    """Set the output `z` of head `head_index_to_ablate` to zero at every batch element and position."""
    z[:, :, head_index_to_ablate] = 0.0
    return z


def head_mean_ablation_hook(
    z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head_index_to_ablate: int
) -> Float[Tensor, "batch pos head d_head"]:
    """Replace the output of head `head_index_to_ablate` by its mean over the batch and positions."""
    z[:, :, head_index_to_ablate] = z[:, :, head_index_to_ablate].mean(dim=(0, 1))
    return z


def get_ablation_scores(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    ablation_function=head_zero_ablation_hook,
) -> Float[Tensor, "layer head"]:
    """Increase in loss when each head is ablated on its own with `ablation_function` (applied to hook_z)."""
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)
    with torch.no_grad():
        clean_loss = model(tokens, return_type="loss")
        for layer in range(model.cfg.n_layers):
            for head in range(model.cfg.n_heads):
                hook_fn = partial(ablation_function, head_index_to_ablate=head)
                ablated_loss = model.run_with_hooks(
                    tokens, return_type="loss", fwd_hooks=[(get_act_name("z", layer), hook_fn)]
                )
                scores[layer, head] = ablated_loss - clean_loss
    return scores


def attention_entropy(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "layer head"]:
    """Mean (over batch and destination positions) entropy of each head's attention pattern, in nats."""
    entropy = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)

    def entropy_hook(pattern: Float[Tensor, "batch head dest src"], hook: HookPoint) -> None:
        per_query = -(pattern * pattern.clamp(min=1e-12).log()).sum(dim=-1)  # [batch, head, dest]
        entropy[hook.layer()] = per_query.mean(dim=(0, 2))

    with torch.no_grad():
        model.run_with_hooks(tokens, return_type=None,
                             fwd_hooks=[(lambda name: name.endswith("hook_pattern"), entropy_hook)])
    return entropy


def cache_some(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    names: list[str],
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
) -> dict[str, Tensor]:
    """{name: activation} for every hook point in `names`, from one forward pass on `tokens` that also runs
    `fwd_hooks` (after the caching hooks)."""
    cache: dict[str, Tensor] = {}

    def caching_hook(activation: Tensor, hook: HookPoint) -> None:
        cache[hook.name] = activation.detach().clone()

    model.run_with_hooks(tokens, return_type=None,
                         fwd_hooks=[(lambda name: name in names, caching_hook), *fwd_hooks])
    return cache


def add_steering_vector_hook(
    resid: Float[Tensor, "batch pos d_model"],
    hook: HookPoint,
    vector: Float[Tensor, "d_model"],
    coeff: float,
    pos: int | None = None,
) -> Float[Tensor, "batch pos d_model"]:
    """Add `coeff * vector` to the residual stream at every position, or only at position `pos`."""
    if pos is None:
        return resid + coeff * vector
    resid[:, pos] = resid[:, pos] + coeff * vector
    return resid


def permanent_hook_demo(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    permanent_head: tuple[int, int],
    temporary_head: tuple[int, int],
) -> dict[str, float]:
    """Losses clean, with both hooks, after reset_hooks(), and after reset_hooks(including_permanent=True)."""
    def loss() -> float:
        with torch.no_grad():
            return model(tokens, return_type="loss").item()

    losses = {"clean": loss()}
    (perm_layer, perm_head), (temp_layer, temp_head) = permanent_head, temporary_head
    model.add_hook(get_act_name("z", perm_layer), partial(head_zero_ablation_hook, head_index_to_ablate=perm_head),
                   is_permanent=True)
    model.add_hook(get_act_name("z", temp_layer), partial(head_zero_ablation_hook, head_index_to_ablate=temp_head))
    losses["hooked"] = loss()
    model.reset_hooks()
    losses["after_reset"] = loss()
    model.reset_hooks(including_permanent=True)
    losses["after_full_reset"] = loss()
    return losses


# The hint of each exercise, from its hint cell: shown by the checker when a failure matches no
# known mistake.
HINTS = {
    'head_zero_ablation_hook': (
        'The head dimension is the *third* dimension of `z` (`[batch, pos, head, d_head]`): set t'
        "hat head's slice to\nzero for every batch element and position, then return `z`."
    ),
    'head_mean_ablation_hook': (
        "Average the ablated head's slice over batch *and* positions (dimensions 0 and 1), which "
        'leaves one\n`[d_head]` vector, and write it back into that slice: broadcasting fills eve'
        'ry batch element and position.'
    ),
    'get_ablation_scores': (
        'Compute the clean loss once. For each layer and head, run `model.run_with_hooks` with `r'
        'eturn_type="loss"`\nand one hook on that layer\'s `hook_z` (`get_act_name`), made from `'
        'ablation_function` with\n`functools.partial` fixing the head. Store ablated minus clean '
        'at `[layer, head]`.'
    ),
    'attention_entropy': (
        'Create the `[layer, head]` result inside the function, and a hook that closes over it: p'
        'er query, `-Σ p log\np` over the source positions (the last dimension; clamp `p` inside '
        'the log), averaged over batch and\ndestinations, written to row `hook.layer()`. One `run'
        '_with_hooks` with a name filter on `hook_pattern` and\n`return_type=None`.'
    ),
    'cache_some': (
        'A closure again: a dict defined in your function and a hook that stores `activation.deta'
        'ch().clone()` under\n`hook.name`. One `run_with_hooks`, whose list of hooks starts with '
        'yours (a name filter that accepts exactly\nthe names in `names`) and then holds every ho'
        'ok of `fwd_hooks`.'
    ),
    'add_steering_vector_hook': (
        'With `pos is None` the vector broadcasts over batch and positions. Otherwise add it only'
        ' at index `pos` of\nthe *position* dimension, the second one, for every batch element, a'
        'nd return the tensor.'
    ),
    'permanent_hook_demo': (
        "Measure the loss (`.item()`) after each step. Both hooks go on their layer's `hook_z` wi"
        'th `model.add_hook`,\nmade from your zero-ablation hook with the head fixed; only one ge'
        'ts `is_permanent=True`. "after_reset"\nshould equal the loss with the permanent ablation'
        ' alone, "after_full_reset" the clean loss.'
    ),
}
