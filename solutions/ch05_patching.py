"""Reference solutions for chapter ch05_patching.

Generated from chapters/src/05_patching.py by `make build`: do not edit; edit the source and rebuild.
"""


from functools import partial
from types import SimpleNamespace
from typing import Callable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from utils.corpus import IOI_TRAIN_TEMPLATES

# A patching metric maps the logits of a (patched) run to one number, as in transformer_lens.patching.
Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]
# The sentence frames of this chapter's prompts: frames the model was trained on, whose prompts have one token length.
FRAMES = [IOI_TRAIN_TEMPLATES[i] for i in (2, 3, 9, 10)]


def ioi_metric(
    logits: Float[Tensor, "batch pos d_vocab"],
    answer_tokens: Int[Tensor, "batch 2"],
    corrupted_logit_diff: float,
    clean_logit_diff: float,
) -> Float[Tensor, ""]:
    """Mean logit difference IO - S at the last position, 0 on the corrupted run and 1 on the clean run."""
    answer_logits = logits[:, -1].gather(-1, answer_tokens)  # [batch, 2]
    patched_logit_diff = (answer_logits[:, 0] - answer_logits[:, 1]).mean()
    return (patched_logit_diff - corrupted_logit_diff) / (clean_logit_diff - corrupted_logit_diff)


def patch_residual_component(
    corrupted_residual_component: Float[Tensor, "batch pos d_model"],
    hook: HookPoint,
    pos: int,
    clean_cache: ActivationCache,
) -> Float[Tensor, "batch pos d_model"]:
    """Replace the activation at position `pos` (every prompt) by its value in `clean_cache`."""
    corrupted_residual_component[:, pos] = clean_cache[hook.name][:, pos]
    return corrupted_residual_component


def get_act_patch_resid_pre(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "layer pos"]:
    """The metric after patching `resid_pre` of each layer at each position from the clean run (one forward pass
    per patch)."""
    n_layers, seq_len = model.cfg.n_layers, corrupted_tokens.shape[1]
    results = torch.zeros(n_layers, seq_len, device=model.cfg.device, dtype=torch.float32)
    for layer in range(n_layers):
        for pos in range(seq_len):
            hook_fn = partial(patch_residual_component, pos=pos, clean_cache=clean_cache)
            logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(get_act_name("resid_pre", layer), hook_fn)])
            results[layer, pos] = patching_metric(logits).item()
    return results


def get_act_patch_block_every(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "3 layer pos"]:
    """`[resid_pre, attn_out, mlp_out]` patching results by layer and position (one forward pass per patch)."""
    n_layers, seq_len = model.cfg.n_layers, corrupted_tokens.shape[1]
    results = torch.zeros(3, n_layers, seq_len, device=model.cfg.device, dtype=torch.float32)
    for i, act_name in enumerate(["resid_pre", "attn_out", "mlp_out"]):
        for layer in range(n_layers):
            for pos in range(seq_len):
                hook_fn = partial(patch_residual_component, pos=pos, clean_cache=clean_cache)
                logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(get_act_name(act_name, layer), hook_fn)])
                results[i, layer, pos] = patching_metric(logits).item()
    return results


def patch_head_vector(
    corrupted_head_vector: Float[Tensor, "batch pos head_index d_head"],
    hook: HookPoint,
    head_index: int,
    clean_cache: ActivationCache,
) -> Float[Tensor, "batch pos head_index d_head"]:
    """Replace head `head_index`'s vector (every prompt, every position) by its value in `clean_cache`."""
    corrupted_head_vector[:, :, head_index] = clean_cache[hook.name][:, :, head_index]
    return corrupted_head_vector


def get_act_patch_attn_head_out_all_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "layer head"]:
    """The metric after patching each head's output `z` (all positions) from the clean run."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    results = torch.zeros(n_layers, n_heads, device=model.cfg.device, dtype=torch.float32)
    for layer in range(n_layers):
        for head in range(n_heads):
            hook_fn = partial(patch_head_vector, head_index=head, clean_cache=clean_cache)
            logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(get_act_name("z", layer), hook_fn)])
            results[layer, head] = patching_metric(logits).item()
    return results


def patch_attn_patterns(
    corrupted_head_vector: Float[Tensor, "batch head_index pos_q pos_k"],
    hook: HookPoint,
    head_index: int,
    clean_cache: ActivationCache,
) -> Float[Tensor, "batch head_index pos_q pos_k"]:
    """Replace head `head_index`'s attention pattern (every prompt) by its value in `clean_cache`."""
    corrupted_head_vector[:, head_index] = clean_cache[hook.name][:, head_index]
    return corrupted_head_vector


def get_act_patch_attn_head_all_pos_every(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "5 layer head"]:
    """`[z, q, k, v, pattern]` patching results for every head (all positions)."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    results = torch.zeros(5, n_layers, n_heads, device=model.cfg.device, dtype=torch.float32)
    for i, act_name in enumerate(["z", "q", "k", "v", "pattern"]):
        setter = patch_attn_patterns if act_name == "pattern" else patch_head_vector
        for layer in range(n_layers):
            for head in range(n_heads):
                hook_fn = partial(setter, head_index=head, clean_cache=clean_cache)
                logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(get_act_name(act_name, layer), hook_fn)])
                results[i, layer, head] = patching_metric(logits).item()
    return results


POSITION_ACTS = ("resid_pre", "attn_out", "mlp_out")  # [batch, pos, d_model]: one patch per position
HEAD_ACTS = ("z", "q", "k", "v", "pattern")  # one patch per head


def get_act_patch_batched(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
    act_name: str,
    *,
    chunk_size: int = 32,
) -> Float[Tensor, "layer index"]:
    """The results of the loop versions for one activation (`[layer, pos]` or `[layer, head]`), with up to
    `chunk_size` patches per forward pass, each forward pass starting at the patched layer."""
    batch, seq_len = corrupted_tokens.shape
    by_position = act_name in POSITION_ACTS
    n_index = seq_len if by_position else model.cfg.n_heads
    setter = patch_residual_component if by_position else patch_attn_patterns if act_name == "pattern" else (
        patch_head_vector)
    index_arg = "pos" if by_position else "head_index"
    results = torch.zeros(model.cfg.n_layers, n_index, device=model.cfg.device, dtype=torch.float32)
    names = {get_act_name(kind, layer) for kind in ("resid_pre", act_name) for layer in range(model.cfg.n_layers)}
    with torch.no_grad():
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=lambda n: n in names)
        corrupted_value = patching_metric(corrupted_logits).item()
        for layer in range(model.cfg.n_layers):
            name = get_act_name(act_name, layer)
            hook = model.hook_dict[name]
            todo = []
            for index in range(n_index):  # a patch that changes nothing needs no forward pass
                patched = setter(corrupted_cache[name].clone(), hook, **{index_arg: index}, clean_cache=clean_cache)
                if torch.equal(patched, corrupted_cache[name]):
                    results[layer, index] = corrupted_value
                else:
                    todo.append(index)
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start: start + chunk_size]
                resid = corrupted_cache["resid_pre", layer].repeat(len(chunk), 1, 1)  # patch i: rows i*batch...

                def patch_chunk(activation, hook):
                    for i, index in enumerate(chunk):
                        rows = slice(i * batch, (i + 1) * batch)
                        activation[rows] = setter(activation[rows], hook, **{index_arg: index},
                                                  clean_cache=clean_cache)
                    return activation

                logits = model.run_with_hooks(resid, start_at_layer=layer, fwd_hooks=[(name, patch_chunk)])
                for i, index in enumerate(chunk):
                    results[layer, index] = patching_metric(logits[i * batch: (i + 1) * batch]).item()
    return results


def _batched(*act_names: str) -> Callable[..., Tensor]:
    """A function with transformer_lens.patching's signature: the engine on each of `act_names`, stacked (or alone)."""
    def patch(model, corrupted_tokens, clean_cache, patching_metric):
        results = [get_act_patch_batched(model, corrupted_tokens, clean_cache, patching_metric, name)
                   for name in act_names]
        return results[0] if len(results) == 1 else torch.stack(results)
    return patch


fast = SimpleNamespace(
    get_act_patch_resid_pre=_batched("resid_pre"),
    get_act_patch_block_every=_batched("resid_pre", "attn_out", "mlp_out"),
    get_act_patch_attn_head_out_all_pos=_batched("z"),
    get_act_patch_attn_head_all_pos_every=_batched("z", "q", "k", "v", "pattern"),
)


def get_copying_scores(
    model: HookedTransformer, name_tokens: Int[Tensor, "n_names"], k: int = 5
) -> Float[Tensor, "2 layer head"]:
    """`[0]`: fraction of names whose token is in the top `k` logits of `W_OV` applied to the name's (extended)
    embedding; `[1]`: the same for `-W_OV`."""
    embeddings = model.W_E[name_tokens][:, None]  # [n_names, 1, d_model]
    extended = embeddings + model.blocks[0].mlp(model.blocks[0].ln2(embeddings))
    results = torch.zeros(2, model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)
    for layer in range(model.cfg.n_layers):
        resid = embeddings if layer == 0 else extended
        for head in range(model.cfg.n_heads):
            W_OV = model.W_V[layer, head] @ model.W_O[layer, head]
            for sign in (0, 1):
                out = resid @ (W_OV if sign == 0 else -W_OV)
                logits = model.unembed(model.ln_final(out))[:, 0]  # [n_names, d_vocab]
                top = logits.topk(k, dim=-1).indices
                results[sign, layer, head] = (top == name_tokens[:, None]).any(-1).float().mean()
    return results


def get_attn_scores(cache: ActivationCache, seq_len: int, head_type: str) -> Float[Tensor, "layer head"]:
    """Mean attention of every head from each destination to its `head_type` source ("duplicate", "induction" or
    "prev") on `[BOS] + r + r` (`r` of length `seq_len`, batch dimension kept)."""
    if head_type == "prev":
        dest = torch.arange(1, 2 * seq_len + 1)
        src = dest - 1
    else:
        dest = torch.arange(seq_len + 1, 2 * seq_len + 1)
        src = dest - seq_len + (1 if head_type == "induction" else 0)
    n_layers = cache.model.cfg.n_layers
    return torch.stack([cache["pattern", layer][:, :, dest, src].mean(dim=(0, 2)) for layer in range(n_layers)])


def get_path_patch_head_to_final_resid_post(
    model: HookedTransformer,
    patching_metric: Metric,
    orig_tokens: Int[Tensor, "batch pos"],
    new_cache: ActivationCache,
    orig_cache: ActivationCache,
) -> Float[Tensor, "layer head"]:
    """The metric when only the sender head (each in turn) takes its `new_cache` output and every other head is
    frozen at its `orig_cache` output."""
    results = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device, dtype=torch.float32)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            def patch_or_freeze(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint):
                z[:] = orig_cache[hook.name]  # freeze every head ...
                if hook.layer() == layer:
                    z[:, :, head] = new_cache[hook.name][:, :, head]  # ... but the sender
                return z

            logits = model.run_with_hooks(orig_tokens, fwd_hooks=[(lambda name: name.endswith("hook_z"),
                                                                   patch_or_freeze)])
            results[layer, head] = patching_metric(logits).item()
    return results


def logit_diff_attribution(
    model: HookedTransformer, cache: ActivationCache, answer_tokens: Int[Tensor, "batch 2"]
) -> tuple[Float[Tensor, "layer head"], Float[Tensor, "layer"]]:
    """Mean over prompts of what each head's output and each MLP's output at the last position add to
    logit(IO) - logit(S), through the final LayerNorm's scale at that position."""
    direction = model.W_U[:, answer_tokens[:, 0]] - model.W_U[:, answer_tokens[:, 1]]  # [d_model, batch]
    scale = cache["ln_final.hook_scale"][:, -1]  # [batch, 1]
    heads = torch.stack([torch.einsum("bhd,hdm->bhm", cache["z", layer][:, -1], model.W_O[layer])
                         for layer in range(model.cfg.n_layers)])  # [layer, batch, head, d_model]
    mlps = torch.stack([cache["mlp_out", layer][:, -1] for layer in range(model.cfg.n_layers)])  # [layer, batch, d]
    head_dla = torch.einsum("lbhm,mb->lh", heads / scale[:, None], direction) / len(answer_tokens)
    mlp_dla = torch.einsum("lbm,mb->l", mlps / scale, direction) / len(answer_tokens)
    return head_dla, mlp_dla


def get_path_patch_head_to_heads(
    receiver_heads: list[tuple[int, int]],
    receiver_input: str,
    model: HookedTransformer,
    patching_metric: Metric,
    orig_tokens: Int[Tensor, "batch pos"],
    new_cache: ActivationCache,
    orig_cache: ActivationCache,
) -> Float[Tensor, "layer head"]:
    """The metric when the receivers' `receiver_input` ("q", "k" or "v") is what it would be if only the sender
    (each head before the last receiver's layer) had its `new_cache` output."""
    receiver_layers = sorted({layer for layer, _ in receiver_heads})
    receiver_names = {get_act_name(receiver_input, layer) for layer in receiver_layers}
    results = torch.zeros(max(receiver_layers), model.cfg.n_heads, device=model.cfg.device, dtype=torch.float32)
    for layer in range(max(receiver_layers)):
        for head in range(model.cfg.n_heads):
            def patch_or_freeze(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint):
                z[:] = orig_cache[hook.name]
                if hook.layer() == layer:
                    z[:, :, head] = new_cache[hook.name][:, :, head]
                return z

            with model.hooks(fwd_hooks=[(lambda name: name.endswith("hook_z"), patch_or_freeze)]):
                _, patched = model.run_with_cache(orig_tokens, names_filter=lambda name: name in receiver_names,
                                                  return_type=None)

            def patch_receivers(x: Float[Tensor, "batch pos head d_head"], hook: HookPoint):
                for receiver_layer, receiver_head in receiver_heads:
                    if receiver_layer == hook.layer():
                        x[:, :, receiver_head] = patched[hook.name][:, :, receiver_head]
                return x

            logits = model.run_with_hooks(orig_tokens, fwd_hooks=[(lambda name: name in receiver_names,
                                                                   patch_receivers)])
            results[layer, head] = patching_metric(logits).item()
    return results


def get_heads_and_posns_to_keep(
    positions: dict[str, Int[Tensor, "batch"]],
    circuit: dict[str, list[tuple[int, int]]],
    seq_pos_to_keep: dict[str, str],
    n_layers: int,
    n_heads: int,
    seq_len: int,
) -> Bool[Tensor, "layer batch pos head"]:
    """True at `[layer, i, pos, head]` where head `layer.head` belongs to a role of `circuit` and `pos` is prompt `i`'s
    position of that role's word."""
    batch = len(next(iter(positions.values())))
    device = next(iter(positions.values())).device
    keep = torch.zeros(n_layers, batch, seq_len, n_heads, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)
    for role, heads in circuit.items():
        where = positions[seq_pos_to_keep[role]]
        for layer, head in heads:
            keep[layer, rows, where, head] = True
    return keep


def compute_means_by_frame(
    means_cache: ActivationCache, frames: Int[Tensor, "batch"]
) -> Float[Tensor, "layer batch pos head d_head"]:
    """`z` of every layer, each prompt's row replaced by the mean over the prompts of its frame."""
    z = torch.stack([means_cache["z", layer] for layer in range(means_cache.model.cfg.n_layers)])
    means = torch.empty_like(z)
    for frame in frames.unique():
        same = frames == frame
        means[:, same] = z[:, same].mean(dim=1, keepdim=True)
    return means


def mean_ablation_hook(
    z: Float[Tensor, "batch pos head d_head"],
    hook: HookPoint,
    means: Float[Tensor, "layer batch pos head d_head"],
    keep: Bool[Tensor, "layer batch pos head"],
) -> Float[Tensor, "batch pos head d_head"]:
    """`z` where `keep` is True for this hook's layer, the mean elsewhere."""
    layer = hook.layer()
    return torch.where(keep[layer][..., None], z, means[layer])


def circuit_faithfulness(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    answer_tokens: Int[Tensor, "batch 2"],
    means: Float[Tensor, "layer batch pos head d_head"],
    keep: Bool[Tensor, "layer batch pos head"],
) -> float:
    """Mean logit difference (IO - S, last position) with everything outside `keep` mean-ablated, divided by the
    full model's."""
    def mean_logit_diff(logits):
        answer_logits = logits[:, -1].gather(-1, answer_tokens)
        return (answer_logits[:, 0] - answer_logits[:, 1]).mean()

    hook_fn = partial(mean_ablation_hook, means=means, keep=keep)
    ablated = model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("hook_z"), hook_fn)])
    return (mean_logit_diff(ablated) / mean_logit_diff(model(tokens))).item()


def get_attr_patch_resid_pre(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "layer pos"]:
    """Attribution patching's estimate of `get_act_patch_resid_pre`: the corrupted run's metric plus
    `(clean - corrupted) . d metric / d resid_pre` at each layer and position."""
    names = [get_act_name("resid_pre", layer) for layer in range(model.cfg.n_layers)]
    probes = {}

    def add_probe(activation, hook):
        probes[hook.name] = torch.zeros_like(activation, requires_grad=True)
        return activation + probes[hook.name]

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, add_probe) for name in names]):
        logits, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=lambda n: n in names)
        value = patching_metric(logits)
        grads = torch.autograd.grad(value, [probes[name] for name in names])
    return value.item() + torch.stack([
        ((clean_cache[name] - corrupted_cache[name]) * grad).sum(dim=(0, 2)) for name, grad in zip(names, grads)])


def get_attr_patch_attn_head_out(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "layer head"]:
    """Attribution patching's estimate of `get_act_patch_attn_head_out_all_pos`: the corrupted run's metric plus
    `(clean - corrupted) . d metric / d z` for each head (all positions)."""
    names = [get_act_name("z", layer) for layer in range(model.cfg.n_layers)]
    probes = {}

    def add_probe(activation, hook):
        probes[hook.name] = torch.zeros_like(activation, requires_grad=True)
        return activation + probes[hook.name]

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, add_probe) for name in names]):
        logits, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=lambda n: n in names)
        value = patching_metric(logits)
        grads = torch.autograd.grad(value, [probes[name] for name in names])
    return value.item() + torch.stack([
        ((clean_cache[name] - corrupted_cache[name]) * grad).sum(dim=(0, 1, 3)) for name, grad in zip(names, grads)])


def atp_qk(model: HookedTransformer, corrupted_tokens: Int[Tensor, "batch pos"], clean_cache: ActivationCache,
           patching_metric: Metric, layer: int, head: int) -> dict[str, tuple[float, float]]:
    """For one head's query and key patches (all positions): `(AtP, AtP*)` estimates of the metric after the patch.
    AtP: `(clean - corrupted) . gradient` at the query (key); AtP*: the pattern recomputed with the clean query (key),
    then `(pattern' - pattern) . gradient` at the pattern."""
    names = [get_act_name(kind, layer) for kind in ("q", "k", "pattern")]
    probes = {}

    def add_probe(activation, hook):
        probes[hook.name] = torch.zeros_like(activation, requires_grad=True)
        return activation + probes[hook.name]

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, add_probe) for name in names]):
        logits, corrupted = model.run_with_cache(corrupted_tokens, names_filter=lambda n: n in names)
        value = patching_metric(logits)
        grad_q, grad_k, grad_pattern = torch.autograd.grad(value, [probes[name] for name in names])
    n = corrupted_tokens.shape[1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=grad_q.device), 1)
    estimates = {}
    for kind, grad in [("q", grad_q), ("k", grad_k)]:
        plain = ((clean_cache[kind, layer] - corrupted[kind, layer])[:, :, head] * grad[:, :, head]).sum().item()
        q = (clean_cache if kind == "q" else corrupted)["q", layer][:, :, head]
        k = (clean_cache if kind == "k" else corrupted)["k", layer][:, :, head]
        scores = torch.einsum("bqd,bkd->bqk", q, k) / model.blocks[layer].attn.attn_scale
        pattern = scores.masked_fill(future, float("-inf")).softmax(-1)
        star = ((pattern - corrupted["pattern", layer][:, head]) * grad_pattern[:, head]).sum().item()
        estimates[kind] = (value.item() + plain, value.item() + star)
    return estimates


def filter_then_verify(model: HookedTransformer, corrupted_tokens: Int[Tensor, "batch pos"],
                       clean_cache: ActivationCache, patching_metric: Metric, attribution: Float[Tensor, "layer index"],
                       act_name: str, k: int, n_candidates: int) -> list[tuple[int, int]]:
    """The `k` `(layer, index)` entries with the largest exact patching results among the `n_candidates` whose
    attribution-patching effect (estimate minus the corrupted run's metric) is largest in size."""
    corrupted_value = patching_metric(model(corrupted_tokens)).item()
    effect = (attribution - corrupted_value).abs().flatten()
    n_index = attribution.shape[1]
    candidates = [divmod(int(i), n_index) for i in effect.topk(n_candidates).indices]
    setter = patch_residual_component if act_name in POSITION_ACTS else patch_head_vector
    index_arg = "pos" if act_name in POSITION_ACTS else "head_index"
    exact = {}
    for layer, index in candidates:
        hook_fn = partial(setter, **{index_arg: index}, clean_cache=clean_cache)
        logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(get_act_name(act_name, layer), hook_fn)])
        exact[layer, index] = patching_metric(logits).item()
    return sorted(exact, key=exact.get, reverse=True)[:k]


# The hint of each exercise, from its hint cell: shown by the checker when a failure matches no
# known mistake.
HINTS = {
    'ioi_metric': (
        "`logits[:, -1]` are the last position's logits; `.gather(-1, answer_tokens)` picks the I"
        'O and S logits of each\nprompt. Average the difference over the batch *before* normalisi'
        'ng, and subtract the corrupted baseline in the\nnumerator as in the formula.'
    ),
    'patch_residual_component': (
        '`clean_cache[hook.name]` has the same shape as the activation. Copy its slice at `pos` f'
        'or every prompt (the position\nis the second dimension) into the activation you were giv'
        'en, in place, and return that activation.'
    ),
    'get_act_patch_resid_pre': (
        'Two nested loops, layers then positions. A hook function takes only `(activation, hook)`'
        ': fix the other arguments of\nyour hook with `functools.partial`, and pass it to `model.'
        "run_with_hooks` together with the hook point's name. Each\nrun's metric goes into one ce"
        'll of a float32 tensor created on `model.cfg.device`.'
    ),
    'get_act_patch_block_every': (
        'The loop of `get_act_patch_resid_pre`, once for each of the three activation names, with'
        ' the name passed to\n`get_act_name(act_name, layer)`; stack the three results in the ord'
        'er resid_pre, attn_out, mlp_out.'
    ),
    'patch_head_vector': (
        'The head index is the third dimension (`[:, :, head_index]`); take the same slice of `cl'
        'ean_cache[hook.name]` and\nleave the other heads as they are.'
    ),
    'get_act_patch_attn_head_out_all_pos': (
        'As `get_act_patch_resid_pre`, looping over layers and heads instead of positions, with `'
        'patch_head_vector` on\n`get_act_name("z", layer)`.'
    ),
    'patch_attn_patterns': (
        "Patterns put the head second: `[:, head_index]` selects one head's whole `[query, key]` "
        'table.'
    ),
    'get_act_patch_attn_head_all_pos_every': (
        'Loop over the five activation names; for `"pattern"` use `patch_attn_patterns`, for the '
        'other four\n`patch_head_vector`. Everything else is `get_act_patch_attn_head_out_all_pos'
        '`.'
    ),
    'get_act_patch_batched': (
        'Cache the corrupted run once (`run_with_cache` with a `names_filter` for `resid_pre` and'
        ' `act_name`). For each\nlayer, and each chunk of indices: `resid = corrupted_cache["resi'
        'd_pre", layer].repeat(n, 1, 1)` (a copy: `repeat`,\nnot `expand`), a hook on `get_act_na'
        'me(act_name, layer)` that, for patch `i`, replaces\n`activation[i * batch:(i + 1) * batc'
        "h]` by your hook's output on that slice, then\n`model.run_with_hooks(resid, start_at_lay"
        "er=layer, ...)`, and the metric of each patch's slice of the logits. The\nshortcut: appl"
        'y your hook to a clone of the corrupted activation; if it comes back equal (`torch.equal'
        "`), store\nthe corrupted run's metric."
    ),
    'get_copying_scores': (
        'Give the names a position dimension (`[n_names, 1, d_model]`). Layer-0 heads read the em'
        "bedding as it is; later\nheads read it plus MLP 0's output on it (`ln2`, then `mlp`, of "
        'block 0). For each head, multiply by its `W_V W_O`\n(or its negative), then apply the fi'
        'nal LayerNorm and the unembedding; a name counts if its own token id is among\nthe `k` l'
        'argest logits (`topk`). Flip the sign before the unembedding: it has a bias.'
    ),
    'get_attn_scores': (
        'Build the destination positions and the source positions as two index tensors of the sam'
        'e length, and index\n`cache["pattern", layer][:, :, dest, src]` (patterns are `[batch, h'
        'ead, dest, src]`): that picks one source per\ndestination. Average over the batch and th'
        'e destinations, and stack the layers.'
    ),
    'get_path_patch_head_to_final_resid_post': (
        'One hook for every `hook_z` (a name filter). Inside it, freeze first (all of `z` gets it'
        's `orig_cache` value), then\npatch the sender, only in its layer (`hook.layer()`) and on'
        "ly its head's slice, from `new_cache`: the other order\nfreezes the sender too."
    ),
    'logit_diff_attribution': (
        'The direction is one column per prompt: `W_U[:, IO] - W_U[:, S]`, `[d_model, batch]`. Ta'
        'ke every output at the\nlast position, divide it by `cache["ln_final.hook_scale"][:, -1]'
        "` (one scale per prompt), dot it with its prompt's\ndirection and average over the promp"
        "ts. A head's output is its `z` times its `W_O[layer, head]`."
    ),
    'get_path_patch_head_to_heads': (
        "Step 1 is the sender's hook of `get_path_patch_head_to_final_resid_post` inside `with mo"
        'del.hooks(...)`, around\n`model.run_with_cache(orig_tokens, names_filter=..., return_typ'
        "e=None)` for the receivers' `hook_q`/`hook_k`/`hook_v`\nnames (`get_act_name(receiver_in"
        'put, layer)`). Step 2 is `run_with_hooks` with one hook on those names that copies,\nfor'
        " each receiver head of that layer, `[:, :, receiver_head]` from step 1's cache."
    ),
    'get_heads_and_posns_to_keep': (
        "Start from an all-False tensor. Each role's word gives one position per prompt: index th"
        'e prompts and their\npositions *together* (two index tensors of length `batch`), not eve'
        'ry listed position for every prompt.'
    ),
    'compute_means_by_frame': (
        'Stack `means_cache["z", layer]` over the layers (`[layer, batch, pos, head, d_head]`). F'
        'or each frame, a boolean\nmask of its prompts selects their rows; their mean over dimens'
        'ion 1 (`keepdim=True`) broadcasts back into those\nrows.'
    ),
    'mean_ablation_hook': (
        "`hook.layer()` tells you which layer's slice of `means` and `keep` applies. `torch.where"
        '` chooses element by\nelement between two tensors; the mask has no `d_head` dimension, s'
        'o give it one to broadcast.'
    ),
    'circuit_faithfulness': (
        'Two runs on the same tokens: one with your hook (bound to `means` and `keep` with `funct'
        'ools.partial`) on every\n`hook_z` (a name filter), one without. Divide their mean logit '
        'differences, and return a Python float.'
    ),
    'get_attr_patch_resid_pre': (
        "One run under `torch.enable_grad()` with a probe hook on every layer's `resid_pre` (`mod"
        'el.hooks(...)` around\n`model.run_with_cache(...)`), the metric of its logits, `torch.au'
        'tograd.grad(value, list_of_probes)`. For each layer:\n`((clean - corrupted) * grad).sum('
        'dim=(0, 2))` (prompts and `d_model`), stacked, plus `value.item()`.'
    ),
    'get_attr_patch_attn_head_out': (
        "As for `resid_pre`, on every layer's `hook_z`; the sum runs over the prompts, the positi"
        'ons and `d_head`\n(dimensions 0, 1 and 3), leaving one number per head.'
    ),
}
