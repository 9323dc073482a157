# %% [markdown]
# # Chapter 3 — Hooks: reading and writing activations
#
# In chapter 2 you *read* activations with `run_with_cache`. Interpretability needs more: to test a hypothesis
# ("head 1.1 does induction") you must *change* an activation during a forward pass and see what happens to
# the output. TransformerLens makes this possible with **hooks**.
#
# Every interesting activation of a `HookedTransformer` passes through a `HookPoint`: a module that does
# nothing (it returns its input) except call the functions you attach to it. A **hook function** has the
# signature
#
# ```python
# def hook_fn(activation: Tensor, hook: HookPoint) -> Tensor | None:
#     ...
# ```
#
# It receives the activation and the hook point (whose name is `hook.name`). If it returns `None`, the
# activation goes on as it is (a *reading* hook, as long as it did not write into the tensor in place); if it
# returns a tensor of the same shape, that tensor **replaces** the activation for the rest of the forward pass
# (a *writing* hook).
#
# In this chapter you will:
#
# - run the model with temporary hooks (`run_with_hooks`), pass extra arguments with `functools.partial` and
#   pick hook points with name filters;
# - ablate attention heads (zero and mean ablation) and score every head by how much the loss goes up;
# - collect statistics with read-only hooks that store into `hook.ctx` or a closure, using `hook.layer()`;
# - build your own `run_with_cache`;
# - steer the model by adding a vector to the residual stream;
# - see what `add_hook(..., is_permanent=True)` and `reset_hooks()` do, and what they leave behind.

# %% [markdown] tags=["learner"]
# **How to work:** replace each `raise NotImplementedError()` with your code, run the cell, then run the
# check cell under it. Hints and solutions are in the dropdowns below each check.

# %% tags=["module"]
from collections.abc import Callable, Sequence
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

# %% [markdown]
# ## 1. The model and its hook points
#
# We use the course's shipped 2-layer **attention-only** model (2 heads per layer, `d_model = 128`, a
# 2048-token byte-level BPE vocabulary, trained on synthetic English-like sentences and on repeated random
# token sequences). It runs offline on a CPU. When you are online, `"gpt2-small"` works here too; every
# function in this chapter is written for any `HookedTransformer`.
#
# `model.hook_dict` maps each hook point's name to the `HookPoint` itself. Some hook points only fire when a
# config flag turns them on (`hook_result` needs `model.set_use_attn_result(True)`), so the list of
# activations that `run_with_cache` returns is the better guide. `get_act_name("z", 0)` spells the name of
# the head outputs in layer 0 for you (`"blocks.0.attn.hook_z"`).

# %%
from utils.models import load_model

MODEL_NAME = "attn2l"  # the shipped 2-layer attention-only model; "gpt2-small" works when you are online
model = load_model(MODEL_NAME, device=device)  # `device` comes from the setup cell
torch.set_grad_enabled(False)  # we never train here: no autograd graphs, less memory, faster
print(model.cfg.n_layers, "layers,", model.cfg.n_heads, "heads per layer, d_head =", model.cfg.d_head)

_, cache = model.run_with_cache(model.to_tokens("Hello"))
print(len(model.hook_dict), "hook points; those that fire in block 0:")
print([name for name in cache.keys() if name.startswith("blocks.0.")])
print(get_act_name("z", 0), get_act_name("pattern", 1), get_act_name("resid_pre", 1))

# %% [markdown]
# Two kinds of input run through the whole chapter:
#
# - **repeated random tokens**: `BOS`, then a random sequence of 20 tokens, then the same 20 tokens again.
#   The first copy is unpredictable; a model with *induction heads* predicts the second copy far better, by
#   looking back at what followed the current token last time;
# - **real text** from the kind of sentences the model was trained on.

# %%
from utils.data import repeated_tokens  # the course's one definition: random tokens never include BOS

rep_tokens = repeated_tokens(model, seq_len=20, batch=4, seed=0)  # [batch, 1 + 2 * seq_len]
text = ("When Mary and John went to the store, John gave a drink to Mary. "
        "Then Alice and Tom went to the park, and Tom gave a ball to Alice.")
text_tokens = model.to_tokens(text)
print(rep_tokens.shape, text_tokens.shape)
loss_per_token = model(rep_tokens, return_type="loss", loss_per_token=True)  # [batch, pos - 1]
uniform = torch.tensor(float(model.cfg.d_vocab)).log()  # the loss of a uniform guess
print(f"loss on the first copy {loss_per_token[:, :20].mean():.2f}, on the second copy "
      f"{loss_per_token[:, 20:].mean():.2f} (nats; a uniform guess scores {uniform:.2f})")
log_probs = model(rep_tokens).log_softmax(dim=-1)[:, :20]  # the predictions of the first copy's tokens
print(f"entropy of those predictions {-(log_probs.exp() * log_probs).sum(-1).mean():.2f} nats "
      f"(a uniform guess: {uniform:.2f})")
print("loss on the text:", model(text_tokens, return_type="loss").item())

# %% [markdown]
# The first copy costs *more* than a uniform guess. Its tokens are drawn uniformly at random, and against
# uniformly random tokens the best prediction is the uniform one: any other loses on average (the expected loss
# is the uniform guess's plus the KL divergence of the uniform distribution from the prediction). The model's
# predictions are not uniform (their entropy, printed above, is lower: it has learned that some tokens are
# likelier than others), and on random tokens it pays for every such bet.

# %% [markdown]
# ## 2. `run_with_hooks`: a reading hook
#
# `model.run_with_hooks(tokens, fwd_hooks=[(name, hook_fn), ...])` runs a forward pass with these hooks
# attached and **removes them at the end**, even when the forward pass raises. `name` is either a hook
# name or a *name filter*: a function from names to `bool`, so that one hook function can go on many hook
# points. All other arguments go to the model's `forward` (e.g. `return_type="loss"`).
#
# This hook only reads: it prints the shape of each attention pattern and returns `None`.

# %%
def print_shape_hook(pattern: Float[Tensor, "batch head dest src"], hook: HookPoint) -> None:
    print(f"{hook.name} (layer {hook.layer()}): {tuple(pattern.shape)}")


model.run_with_hooks(text_tokens, return_type=None,
                     fwd_hooks=[(lambda name: name.endswith("hook_pattern"), print_shape_hook)])

# %% [markdown]
# `hook.layer()` reads the layer index off the name (`blocks.1.attn.hook_pattern` → 1). Note
# `return_type=None`: we only wanted the side effect, so the model does not even compute the logits.
#
# ## 3. Writing hooks: ablating a head
#
# To *ablate* a head is to remove its contribution and watch what breaks. The output of head `h` in a layer
# is `z[:, :, h]`, of shape `[batch, pos, d_head]` (`hook_z`, before the output matrix `W_O`): change it and
# the head's contribution to the residual stream changes accordingly.
#
# - **Zero ablation** sets the head's `z` to 0, as if the head were not there.
# - **Mean ablation** replaces it with its mean over the batch and the positions: the head still adds its
#   "typical" output, but no longer any information specific to this input. Zero is often far off the
#   distribution the next layers were trained on; the mean is a gentler baseline.
#
# Write both hooks. They receive `z` and the hook point, and a third argument we will fill in with
# `functools.partial`. Return the modified `z` (modifying it in place first is fine). A hook that changes a
# copy (`z = z.clone()`, then ...) and returns nothing changes nothing: `None` means "go on with the activation
# as it is".

# %%
def head_zero_ablation_hook(
    z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head_index_to_ablate: int
) -> Float[Tensor, "batch pos head d_head"]:
    """Set the output `z` of head `head_index_to_ablate` to zero at every batch element and position."""
    # SOLUTION
    z[:, :, head_index_to_ablate] = 0.0
    return z
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The head dimension is the *third* dimension of `z` (`[batch, pos, head, d_head]`): set that head's slice to
# zero for every batch element and position, then return `z`.

# %%
def head_mean_ablation_hook(
    z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head_index_to_ablate: int
) -> Float[Tensor, "batch pos head d_head"]:
    """Replace the output of head `head_index_to_ablate` by its mean over the batch and positions."""
    # SOLUTION
    z[:, :, head_index_to_ablate] = z[:, :, head_index_to_ablate].mean(dim=(0, 1))
    return z
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Average the ablated head's slice over batch *and* positions (dimensions 0 and 1), which leaves one
# `[d_head]` vector, and write it back into that slice: broadcasting fills every batch element and position.

# %% [markdown]
# A hook function must take exactly `(activation, hook)`. `functools.partial` fixes the other arguments:
# `partial(head_zero_ablation_hook, head_index_to_ablate=1)` is a function of `(z, hook)`.

# %%
clean_loss = model(rep_tokens, return_type="loss")
ablated_loss = model.run_with_hooks(
    rep_tokens, return_type="loss",
    fwd_hooks=[(get_act_name("z", 1), partial(head_zero_ablation_hook, head_index_to_ablate=1))],
)
print(f"clean loss {clean_loss.item():.3f}; with head 1.1 zero-ablated {ablated_loss.item():.3f}")
print("after run_with_hooks the hooks are gone:", model(rep_tokens, return_type="loss").item())

# %% [markdown]
# ## 4. Which heads matter? Ablation scores
#
# Now do it for every head: the **ablation score** of head `(layer, head)` is the increase in loss when that
# head alone is ablated,
#
# `score[layer, head] = loss(head ablated) - loss(clean)`.
#
# Use `model(tokens, return_type="loss")` for the clean loss and `model.run_with_hooks(tokens,
# return_type="loss", fwd_hooks=[...])` with `partial(ablation_function, head_index_to_ablate=head)` on
# `get_act_name("z", layer)` for each ablated one. The default `ablation_function` is your zero-ablation
# hook; any hook with the same signature works. Return a `[layer, head]` tensor of float losses on the
# model's device (no gradients needed: wrap it in `torch.no_grad()` or `.item()` each loss).

# %%
def get_ablation_scores(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    ablation_function=head_zero_ablation_hook,
) -> Float[Tensor, "layer head"]:
    """Increase in loss when each head is ablated on its own with `ablation_function` (applied to hook_z)."""
    # SOLUTION
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
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Compute the clean loss once. For each layer and head, run `model.run_with_hooks` with `return_type="loss"`
# and one hook on that layer's `hook_z` (`get_act_name`), made from `ablation_function` with
# `functools.partial` fixing the head. Store ablated minus clean at `[layer, head]`.

# %%
from utils.plotting import expect, layer_head_heatmap

shape = (model.cfg.n_layers, model.cfg.n_heads)
ablation = {}  # (tokens, baseline) -> [layer, head] scores
for name, tokens in [("repeated random tokens", rep_tokens), ("text", text_tokens)]:
    for baseline, function in [("Zero", head_zero_ablation_hook), ("Mean", head_mean_ablation_hook)]:
        scores = expect(get_ablation_scores(model, tokens, function), "get_ablation_scores", shape=shape,
                        names="layer head")
        ablation[name, baseline] = scores
        layer_head_heatmap(scores, color="Δ loss", title=f"{baseline} ablation, {name}").show()
gap = ablation["text", "Zero"] - ablation["text", "Mean"]
layer, head = divmod(int(gap.abs().argmax()), model.cfg.n_heads)
print(f"on the text, zero and mean ablation disagree most on head {layer}.{head}: "
      f"{ablation['text', 'Zero'][layer, head]:.2f} vs {ablation['text', 'Mean'][layer, head]:.2f} nats")

# %% [markdown]
# What to look for (your numbers are in the plots; the model card `models/attn2l/README.md` lists what the
# shipped model was measured to do, on longer sequences than here, 50 random tokens repeated in a batch of 20,
# so its losses differ from the ones printed in this chapter):
#
# - On **repeated random tokens**, the layer-1 head with the larger score is the model's main **induction
#   head** (printed below). It builds on layer 0, whose heads tell each position what came before it, so
#   ablating them hurts as well. Chapter 4 takes this circuit apart.
# - On **text** the induction head matters less: there is little for it to copy in two short sentences.
# - Zero and mean ablation can disagree, sometimes by a lot (the head printed above), and the gap can go
#   either way. The baseline is part of the experiment: always say which one you used.

# %%
rep_scores = ablation["repeated random tokens", "Zero"]  # computed above
induction_head = int(rep_scores[1].argmax())
print(f"Main induction head: 1.{induction_head} (zero-ablating it adds {rep_scores[1, induction_head]:.2f} nats "
      f"on repeated tokens)")

# %% [markdown]
# ## 5. Read-only hooks that remember: `hook.ctx`, closures and attention entropy
#
# A reading hook often needs to *keep* what it computed. Three ways, from worst to best:
#
# - a global variable: works once, then leaks state from one run into the next (avoid);
# - `hook.ctx`, a dictionary that every `HookPoint` carries for exactly this purpose: store with
#   `hook.ctx["entropy"] = ...` inside the hook, read back with `model.hook_dict[name].ctx["entropy"]`
#   after the run, then clear with `model.reset_hooks()` (which clears every `ctx` by default) or
#   `hook.clear_context()`;
# - a **closure**: define the hook inside your function, next to a dictionary or tensor it writes into.
#   Nothing outlives the call.
#
# Here is `hook.ctx` at work: the largest attention weight of each head, away from the BOS token.

# %%
def max_attention_hook(pattern: Float[Tensor, "batch head dest src"], hook: HookPoint) -> None:
    hook.ctx["max_attention"] = pattern[:, :, 1:, 1:].amax(dim=(0, 2, 3))


pattern_filter = lambda name: name.endswith("hook_pattern")
model.run_with_hooks(rep_tokens, return_type=None, fwd_hooks=[(pattern_filter, max_attention_hook)])
for layer in range(model.cfg.n_layers):
    print(layer, model.hook_dict[get_act_name("pattern", layer)].ctx["max_attention"])
model.reset_hooks()  # clears every hook.ctx too
print(model.hook_dict[get_act_name("pattern", 0)].ctx)

# %% [markdown]
# Now measure how *spread out* each head's attention is. The entropy of one query's attention distribution
# `p` over source positions is
#
# `H(p) = -Σ_src p[src] · log p[src]`   (natural log)
#
# It is 0 when the head attends to a single token and `log(n)` when it spreads evenly over `n` tokens. Write
# `attention_entropy`, which returns the mean entropy over the batch and the destination positions, for
# every head. Use one read-only hook on every `hook_pattern` (a name filter) that writes into `hook.ctx` or a
# closure, with `hook.layer()` to know where to put the result. No globals, and nothing left behind: if you use
# `hook.ctx`, clear it before you return (data left there stays on the model, for whoever runs it next).
#
# **Careful with `0 · log 0`.** The causal mask makes every future position's weight exactly 0, and
# `0 * log(0) = 0 * -inf = nan` in floating point. Mathematically the term is 0: clamp `p` away from 0 inside
# the log (`p.clamp(min=1e-12).log()`) or use `torch.special.xlogy(p, p)`.

# %%
def attention_entropy(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "layer head"]:
    """Mean (over batch and destination positions) entropy of each head's attention pattern, in nats."""
    # SOLUTION
    entropy = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)

    def entropy_hook(pattern: Float[Tensor, "batch head dest src"], hook: HookPoint) -> None:
        per_query = -(pattern * pattern.clamp(min=1e-12).log()).sum(dim=-1)  # [batch, head, dest]
        entropy[hook.layer()] = per_query.mean(dim=(0, 2))

    with torch.no_grad():
        model.run_with_hooks(tokens, return_type=None,
                             fwd_hooks=[(lambda name: name.endswith("hook_pattern"), entropy_hook)])
    return entropy
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Create the `[layer, head]` result inside the function, and a hook that closes over it: per query, `-Σ p log
# p` over the source positions (the last dimension; clamp `p` inside the log), averaged over batch and
# destinations, written to row `hook.layer()`. One `run_with_hooks` with a name filter on `hook_pattern` and
# `return_type=None`.

# %%
entropy = expect(attention_entropy(model, rep_tokens), "attention_entropy", shape=shape, names="layer head")
layer_head_heatmap(entropy, color="nats", midpoint=None, colorscale="Blues",
                   title="Mean attention entropy on repeated random tokens").show()

# %% [markdown]
# The induction head should have a low entropy on repeated random tokens: in the second copy it puts most of
# its attention on a single token, the one right *after* the earlier occurrence of the current token
# (chapter 4 explains why). The cell below measures that attention for the layer-1 heads, and the entropy on
# text, where no head has anything to copy. Compare with the ablation scores too: on the shipped model both
# layer-1 heads attend this sharply, yet ablating one costs more than ablating the other. Where a head looks
# does not tell you how much its output matters; that is what ablation is for.

# %%
seq_len = (rep_tokens.shape[1] - 1) // 2
_, pattern_cache = model.run_with_cache(rep_tokens, names_filter=get_act_name("pattern", 1))
# dest position d of the second copy holds the token of position d - seq_len; the token after it is at
# d - seq_len + 1, i.e. on the diagonal at offset -(seq_len - 1). The first two entries of that diagonal
# belong to the first copy.
to_next_token = pattern_cache["pattern", 1].diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)[..., 2:]
for head in range(model.cfg.n_heads):
    print(f"head 1.{head}: {to_next_token[:, head].mean():.0%} of its attention on the induction target "
          f"(second copy)")
print("entropy on text:\n", attention_entropy(model, text_tokens))

# %% [markdown]
# Look at the patterns themselves to see what low and high entropy mean:

# %%
import circuitsvis as cv
from IPython.display import display

_, rep_cache = model.run_with_cache(rep_tokens[:1], names_filter=lambda name: name.endswith("hook_pattern"))
for layer in range(model.cfg.n_layers):
    print(f"Layer {layer}")
    display(cv.attention.attention_patterns(tokens=model.to_str_tokens(rep_tokens[0]),
                                            attention=rep_cache["pattern", layer][0]))

# %% [markdown]
# ## 6. Your own `run_with_cache`
#
# `run_with_cache` is nothing but reading hooks. Before you write your own, one trap: what exactly does a
# hook keep? `activation.detach()` returns a tensor without the autograd graph, but it **shares memory** with
# the activation: if a later hook writes into the activation in place (as your `head_zero_ablation_hook` does),
# the tensor you kept changes too. `activation.clone()` copies. This cell keeps both, then lets a second hook
# on the same hook point zero the activation in place:

# %%
kept = {}


def keep_hook(resid: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> None:
    kept["detach()"] = resid.detach()
    kept["detach().clone()"] = resid.detach().clone()


def zero_in_place_hook(
    resid: Float[Tensor, "batch pos d_model"], hook: HookPoint
) -> Float[Tensor, "batch pos d_model"]:
    resid.zero_()  # writes into the activation itself
    return resid


resid_pre_0 = get_act_name("resid_pre", 0)
model.run_with_hooks(text_tokens, return_type=None,
                     fwd_hooks=[(resid_pre_0, keep_hook), (resid_pre_0, zero_in_place_hook)])  # run in this order
for how, tensor in kept.items():
    print(f"{how:>17}: all zeros after the run? {bool((tensor == 0).all())}")

# %% [markdown]
# So store `activation.detach().clone()`: `detach()` so that you do not keep the autograd graph alive (when
# gradients are on), `clone()` so that nothing that runs later can change what you stored.
#
# Now write `cache_some`, which runs the model **once** on `tokens` with a hook on every hook point whose name
# is in `names` (a name filter) and returns a dictionary from hook name to the activation stored there.
# Without `fwd_hooks`, it must equal `model.run_with_cache(tokens)[1][name]` for each name.
#
# `fwd_hooks` are more hooks for the same forward pass (a list or tuple of `(name, hook_fn)` pairs, as
# `run_with_hooks` takes; empty by default), say an ablation: then the cache shows what the model computes with
# them. Put your caching hook *first* (hooks on one hook point run in the order they were added),
# so that each stored activation is what arrived at its hook point, before any of `fwd_hooks` changed it;
# activations further on show the change's effects. Leave nothing behind on the model: no hooks, nothing in
# any `hook.ctx`.

# %%
def cache_some(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    names: list[str],
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
) -> dict[str, Tensor]:
    """{name: activation} for every hook point in `names`, from one forward pass on `tokens` that also runs
    `fwd_hooks` (after the caching hooks)."""
    # SOLUTION
    cache: dict[str, Tensor] = {}

    def caching_hook(activation: Tensor, hook: HookPoint) -> None:
        cache[hook.name] = activation.detach().clone()

    model.run_with_hooks(tokens, return_type=None,
                         fwd_hooks=[(lambda name: name in names, caching_hook), *fwd_hooks])
    return cache
    # END SOLUTION


# %% [markdown] tags=["hint"]
# A closure again: a dict defined in your function and a hook that stores `activation.detach().clone()` under
# `hook.name`. One `run_with_hooks`, whose list of hooks starts with yours (a name filter that accepts exactly
# the names in `names`) and then holds every hook of `fwd_hooks`.

# %%
names = [get_act_name("z", 0), get_act_name("resid_pre", 1)]
_, real_cache = model.run_with_cache(text_tokens)
mine = cache_some(model, text_tokens, names)
for name in names:
    print(name, tuple(mine[name].shape), "equal to run_with_cache:", torch.equal(mine[name], real_cache[name]))
ablate_0_1 = (get_act_name("z", 0), partial(head_zero_ablation_hook, head_index_to_ablate=1))  # in place
ablated = cache_some(model, text_tokens, names, fwd_hooks=[ablate_0_1])
for name in names:
    print(f"with head 0.1 zero-ablated, {name} equal to the clean run: {torch.equal(ablated[name], real_cache[name])}")

# %% [markdown]
# ## 7. Writing into the residual stream: steering vectors
#
# A writing hook can add anything to an activation. **Activation steering** adds a fixed vector to the
# residual stream, at every position or at one, and looks at how the predictions change. Write
# `add_steering_vector_hook`: it returns `resid + coeff * vector` at every position when `pos is None`, and
# adds `coeff * vector` only at position `pos` (which may be negative, like `-1` for the last position)
# otherwise.

# %%
def add_steering_vector_hook(
    resid: Float[Tensor, "batch pos d_model"],
    hook: HookPoint,
    vector: Float[Tensor, "d_model"],
    coeff: float,
    pos: int | None = None,
) -> Float[Tensor, "batch pos d_model"]:
    """Add `coeff * vector` to the residual stream at every position, or only at position `pos`."""
    # SOLUTION
    if pos is None:
        return resid + coeff * vector
    resid[:, pos] = resid[:, pos] + coeff * vector
    return resid
    # END SOLUTION


# %% [markdown] tags=["hint"]
# With `pos is None` the vector broadcasts over batch and positions. Otherwise add it only at index `pos` of
# the *position* dimension, the second one, for every batch element, and return the tensor.

# %% [markdown]
# Let's steer. For "When Mary and John went to the store, John gave a drink to", which name comes next? We
# take as steering vector the difference of two *token embeddings*, `W_E[" John"] - W_E[" Mary"]`, and add it
# at the position of " Mary", before layer 0 (`hook_resid_pre` of block 0).

# %%
prompt = "When Mary and John went to the store, John gave a drink to"
prompt_tokens = model.to_tokens(prompt)
mary_pos = model.to_str_tokens(prompt).index(" Mary")
mary_id, john_id = model.to_single_token(" Mary"), model.to_single_token(" John")
steering = model.W_E[john_id] - model.W_E[mary_id]


def describe(logits):
    probs = logits[0, -1].softmax(-1)
    top3 = model.to_str_tokens(probs.topk(3).indices)
    return f"P(' Mary') = {probs[mary_id].item():.3f}, P(' John') = {probs[john_id].item():.3f}, top 3: {top3}"


print("no hook:         ", describe(model(prompt_tokens)))
for coeff, pos in [(0.25, mary_pos), (0.5, mary_pos), (1.0, mary_pos), (1.0, None), (2.0, None)]:
    hook_fn = partial(add_steering_vector_hook, vector=steering, coeff=coeff, pos=pos)
    logits = model.run_with_hooks(prompt_tokens, fwd_hooks=[(get_act_name("resid_pre", 0), hook_fn)])
    where = "at Mary" if pos is not None else "everywhere"
    print(f"coeff {coeff}, {where:>10}:", describe(logits))

# %% [markdown]
# Without a hook the model should answer " Mary", the name that occurs once (the indirect-object task of
# chapter 5). Adding `E[" John"] - E[" Mary"]` at Mary's position moves that position towards " John"; at
# `coeff = 1` its token embedding *is* John's, so the prompt effectively reads "When John and John went to
# the store, John gave a drink to", and the prediction moves to " John" (the printout shows how large a
# coefficient it takes). Adding the vector at *every* position also changes the answer, and the rest of the
# top 3 with it (compare with the top 3 at Mary's position): a steering vector is a blunt instrument, and
# where you add it matters.
#
# ## 8. Hooks that stay: `add_hook`, `is_permanent` and `reset_hooks`
#
# `run_with_hooks` cleans up after itself. `model.add_hook(name, hook_fn)` does not: the hook stays on the
# model, for every later forward pass, until you remove it. Two kinds exist:
#
# - `model.add_hook(name, hook_fn)`: a normal hook; `model.reset_hooks()` removes it;
# - `model.add_hook(name, hook_fn, is_permanent=True)`: a **permanent** hook; `model.reset_hooks()` leaves it
#   in place, and only `model.reset_hooks(including_permanent=True)` removes it.
#
# Permanent hooks are for changes you want on *every* run of an experiment (say, a head you always ablate)
# without re-adding them each time. They are also the classic source of "my model suddenly gives different
# answers": a hook you forgot is still attached. `run_with_hooks` only removes the hooks *it* added, so it will
# not save you either. When in doubt, `model.reset_hooks(including_permanent=True)`.
#
# Write `permanent_hook_demo`, which shows all of this with four losses on `tokens`:
#
# 1. `"clean"`: no hooks;
# 2. `"hooked"`: after adding a *permanent* hook that zero-ablates head `permanent_head` and a *normal* hook
#    that zero-ablates head `temporary_head` (each a `(layer, head)` pair), both with `model.add_hook`;
# 3. `"after_reset"`: after `model.reset_hooks()`;
# 4. `"after_full_reset"`: after `model.reset_hooks(including_permanent=True)`.
#
# Return them as a dict of Python floats (`.item()`), and leave the model without hooks.

# %%
def permanent_hook_demo(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    permanent_head: tuple[int, int],
    temporary_head: tuple[int, int],
) -> dict[str, float]:
    """Losses clean, with both hooks, after reset_hooks(), and after reset_hooks(including_permanent=True)."""
    # SOLUTION
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
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Measure the loss (`.item()`) after each step. Both hooks go on their layer's `hook_z` with `model.add_hook`,
# made from your zero-ablation hook with the head fixed; only one gets `is_permanent=True`. "after_reset"
# should equal the loss with the permanent ablation alone, "after_full_reset" the clean loss.

# %%
demo = permanent_hook_demo(model, rep_tokens, permanent_head=(1, 0), temporary_head=(0, 1))
for stage, value in demo.items():
    print(f"{stage:>17}: {value:.3f}")
print("hooks left on the model:", [name for name, hp in model.hook_dict.items() if hp.fwd_hooks])

# %% [markdown]
# ## Summary
#
# - A hook function is `fn(activation, hook)`; returning `None` reads, returning a tensor writes.
# - `model.run_with_hooks(tokens, fwd_hooks=[(name_or_filter, fn)], return_type=...)` adds hooks for one
#   forward pass and removes them afterwards; `functools.partial` supplies extra arguments; a name filter
#   (`lambda name: name.endswith("hook_pattern")`) puts one hook on many points.
# - Ablation (zero or mean) of `hook_z[:, :, head]` measures what a head is needed for; the two baselines
#   can disagree, so say which one you used.
# - Read-only hooks keep results in a closure or in `hook.ctx` (cleared by `reset_hooks()`), never in globals;
#   `hook.layer()` and `hook.name` say where the hook is.
# - `run_with_cache` is a name filter plus a storing hook. Store `activation.detach().clone()`: `detach()` shares
#   memory with the activation, so a later hook that writes in place would change what you kept.
# - `model.add_hook` hooks stay until removed: `reset_hooks()` removes normal ones,
#   `reset_hooks(including_permanent=True)` all of them.
#
# Next: **Chapter 4**, where these tools find the induction heads and explain how they work.
