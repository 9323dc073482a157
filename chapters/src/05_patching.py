# %% [markdown]
# # Chapter 5 — Activation patching and the IOI circuit
#
# *"When Mary and John went to the store, John gave a drink to"* — a language model that has learned
# **indirect object identification** (IOI) answers *Mary*: the name that is not repeated. Wang et al. (2022) found
# the circuit that does this in GPT-2 small, and ARENA's chapter 1.4.1 retraces it. In this chapter you will find
# the IOI circuit of the course's own model **with your own code**:
#
# 1. **activation patching**: run the model on a *corrupted* prompt, copy one activation from the *clean* run, and
#    measure how much of the right answer comes back — for every layer and position, every block and every head;
# 2. a **faster patching engine**: the simple loop runs one forward pass per patch; you will fold the patches into the
#    batch and start at the patched layer, and get exactly the numbers of `transformer_lens.patching`;
# 3. **what the heads do**: where they look (attention), what they write (copying scores), which earlier heads
#    look for duplicates, previous tokens and induction patterns;
# 4. **path patching** and **direct logit attribution**: which heads act *directly* on the logits, which act through
#    other heads' queries, keys or values, and what each head and MLP writes to the logits itself;
# 5. **the circuit**: mean-ablate everything else and measure how much of the model's logit difference the circuit
#    keeps on its own;
# 6. **attribution patching**: estimate every patch at once from one forward and one backward pass, see where the
#    estimate fails, and verify its top candidates exactly.
#
# We use `mlp4l`, the course's 4-layer model with MLPs (4 heads per layer, `d_model` 128), trained offline on
# English-like text with IOI sentences. It is not GPT-2, and its circuit is not GPT-2's: the chapter says where they
# differ. Every head this chapter names is *computed* by a cell: nothing is hard-coded, so the same cells run on
# `gpt2-small` (`MODEL_NAME` below) when you are online.

# %% [markdown] tags=["learner"]
# **How to work:** replace each `raise NotImplementedError()` with your code, run the cell, then run the
# check cell under it. Hints and solutions are in the dropdowns below each check.

# %% tags=["module"]
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

# %% [markdown]
# ## 0. The model and the task
#
# `MODEL_NAME` picks the model. The IOI prompts come from the sentence *frames* the model was trained on (with
# `{N1}`, `{N2}` for the two names and `{S}` for the subject's second mention) and from its training names. One
# constant, `FRAMES` (defined with the imports above), holds the frames we use: four whose prompts have the same
# number of tokens, so that a batch needs no padding.

# %%
import time

import circuitsvis as cv
import plotly.express as px
from IPython.display import display

from utils.corpus import TRAIN_NAMES
from utils.data import ioi_same_length, repeated_tokens, single_token_names
from utils.models import load_model
from utils.plotting import expect, layer_head_heatmap, shared_scale

# %% tags=["parameters"]
MODEL_NAME = "mlp4l"  # or "gpt2-small" when you are online

# %%
torch.set_grad_enabled(False)  # we only read and patch the model in this chapter
if device.type == "cpu" and MODEL_NAME != "gpt2-small":
    torch.set_num_threads(1)  # a model this small runs as fast on one CPU thread, and never waits for a busy core
model = load_model(MODEL_NAME, device=device)
NAMES = single_token_names(model, TRAIN_NAMES)  # IOI names must be one token each (with their leading space)
print(model.cfg.n_layers, "layers,", model.cfg.n_heads, "heads per layer | d_model", model.cfg.d_model,
      "| d_vocab", model.cfg.d_vocab, f"| {len(NAMES)} names")
for frame in FRAMES:
    print(" ", frame)

# %% [markdown]
# ## 1. The dataset
#
# `utils.data.ioi_dataset` (here through `ioi_same_length`, which keeps frames whose prompts share one token length)
# fills each frame with random pairs of names in both orders: **ABBA** ("When *Mary* and John ..., John gave ... to" →
# Mary) and **BABA** ("When John and *Mary* ..., John gave ... to" → Mary). It returns an `IOIDataset`:
#
# - `tokens` `[batch, pos]`, all of one length;
# - `answer_tokens` `[batch, 2]`: the indirect object **IO** (the right answer) and the subject **S**;
# - `positions`: the token positions of the words `io`, `s1`, `s2` (the subject's two mentions) and `end`
#   (the last token, where the answer is predicted), each `[batch]`;
# - `frames` and `orders`: which frame and which order each prompt comes from.
#
# Two corrupted versions keep the frames and positions and change only the names:
#
# - `data.swapped(model)`: **IO and S exchanged everywhere** ("When John and Mary ..., Mary gave ... to" → John):
#   the right answer becomes the clean subject. Activation patching uses it: whatever restores the clean answer
#   carries the information "which name is the IO";
# - `data.abc(model, NAMES)`: **three unrelated names** ("When Anna and Tom ..., Ben gave ... to"): no name repeats,
#   so nothing tells the model which name to prefer. Mean ablation and path patching use it: it keeps the grammar
#   and removes the IOI information.

# %%
data = ioi_same_length(model, FRAMES, NAMES, n_pairs=2, seed=0)
swapped = data.swapped(model)
abc = data.abc(model, NAMES)
for i in [0, 1]:
    print(f"{data.orders[i]}  clean: {data.prompts[i]!r} -> IO {data.io_names[i]!r}, S {data.s_names[i]!r}")
    print(f"      swapped: {swapped.prompts[i]!r}")
    print(f"      ABC:     {abc.prompts[i]!r}")
print("tokens", tuple(data.tokens.shape), "| positions of prompt 0:",
      {word: int(p[0]) for word, p in data.positions._asdict().items()})

# %% [markdown]
# How well does the model do? We measure the **logit difference** `logit(IO) - logit(S)` at the last position,
# averaged over the prompts: positive means the model prefers the right name.

# %%
def logit_diff(logits, answer_tokens, per_prompt=False):
    answer_logits = logits[:, -1].gather(-1, answer_tokens)
    diff = answer_logits[:, 0] - answer_logits[:, 1]
    return diff if per_prompt else diff.mean()


clean_logits, clean_cache = model.run_with_cache(data.tokens)
swapped_logits = model(swapped.tokens)
abc_logits, abc_cache = model.run_with_cache(abc.tokens)
per_prompt = logit_diff(clean_logits, data.answer_tokens, per_prompt=True)
clean_ld = per_prompt.mean().item()
swapped_ld = logit_diff(swapped_logits, data.answer_tokens).item()
abc_ld = logit_diff(abc_logits, data.answer_tokens).item()
top_is_io = (clean_logits[:, -1].argmax(-1) == data.answer_tokens[:, 0]).float().mean().item()
print(f"clean: logit diff {clean_ld:.2f} (ABBA {per_prompt[[o == 'ABBA' for o in data.orders]].mean():.2f}, "
      f"BABA {per_prompt[[o == 'BABA' for o in data.orders]].mean():.2f}); IO is the top token for {top_is_io:.0%}")
print(f"swapped: {swapped_ld:.2f} (the clean IO minus the clean S: negative, the model now prefers the clean S)")
print(f"ABC: {abc_ld:.2f} (near 0: neither name is in the ABC prompts)")

# %% [markdown]
# ## 2. The patching metric
#
# A patch moves the model somewhere between the corrupted run and the clean run. To compare patches, normalise the
# logit difference so that the **corrupted run scores 0 and the clean run scores 1**:
#
# $$\text{metric} = \frac{LD_\text{patched} - LD_\text{corrupted}}{LD_\text{clean} - LD_\text{corrupted}}$$
#
# where `LD` is the mean logit difference `logit(IO) - logit(S)` at the last position. Return a 0-d tensor (the
# patching functions call `.item()` on it). This is the metric ARENA calls `ioi_metric`; a patching function receives
# it with the last three arguments filled in (`functools.partial`), so that it maps logits to one number.

# %%
def ioi_metric(
    logits: Float[Tensor, "batch pos d_vocab"],
    answer_tokens: Int[Tensor, "batch 2"],
    corrupted_logit_diff: float,
    clean_logit_diff: float,
) -> Float[Tensor, ""]:
    """Mean logit difference IO - S at the last position, 0 on the corrupted run and 1 on the clean run."""
    # SOLUTION
    answer_logits = logits[:, -1].gather(-1, answer_tokens)  # [batch, 2]
    patched_logit_diff = (answer_logits[:, 0] - answer_logits[:, 1]).mean()
    return (patched_logit_diff - corrupted_logit_diff) / (clean_logit_diff - corrupted_logit_diff)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `logits[:, -1]` are the last position's logits; `.gather(-1, answer_tokens)` picks the IO and S logits of each
# prompt. Average the difference over the batch *before* normalising, and subtract the corrupted baseline in the
# numerator as in the formula.

# %%
metric = partial(ioi_metric, answer_tokens=data.answer_tokens, corrupted_logit_diff=swapped_ld,
                 clean_logit_diff=clean_ld)
print(f"metric on the clean run: {metric(clean_logits).item():.3f}, on the swapped run: "
      f"{metric(swapped_logits).item():.3f}")

# %% [markdown]
# ## 3. Patching the residual stream
#
# The first question: **where, and when, does the information "which name is the IO" sit in the residual stream?**
# For every layer and every position, run the model on the swapped prompts, replace the residual stream before that
# layer (`hook_resid_pre`) at that position by its value in the clean run, and measure the metric. A value near 1
# means that this one vector carries everything the model needs.
#
# First the hook. It receives the corrupted activation `[batch, pos, d_model]` and the hook point, and copies the
# clean value at `pos` from `clean_cache` (`hook.name` is the activation's name, e.g. `"blocks.1.hook_resid_pre"`).
# Modify the activation in place and return it. (It works for any activation of shape `[batch, pos, d_model]`:
# we use it for `attn_out` and `mlp_out` too.)

# %%
def patch_residual_component(
    corrupted_residual_component: Float[Tensor, "batch pos d_model"],
    hook: HookPoint,
    pos: int,
    clean_cache: ActivationCache,
) -> Float[Tensor, "batch pos d_model"]:
    """Replace the activation at position `pos` (every prompt) by its value in `clean_cache`."""
    # SOLUTION
    corrupted_residual_component[:, pos] = clean_cache[hook.name][:, pos]
    return corrupted_residual_component
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `clean_cache[hook.name]` has the same shape as the activation. Copy its slice at `pos` for every prompt (the position
# is the second dimension) into the activation you were given, in place, and return that activation.

# %% [markdown]
# Now the loop, with the signature of `transformer_lens.patching.get_act_patch_resid_pre`: for every layer and every
# position, one forward pass on `corrupted_tokens` with your hook on `get_act_name("resid_pre", layer)` (bind `pos`
# and `clean_cache` with `functools.partial`), and the metric of its logits, as a Python float (`.item()`), in a
# float32 tensor on the model's device.

# %%
def get_act_patch_resid_pre(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "layer pos"]:
    """The metric after patching `resid_pre` of each layer at each position from the clean run (one forward pass
    per patch)."""
    # SOLUTION
    n_layers, seq_len = model.cfg.n_layers, corrupted_tokens.shape[1]
    results = torch.zeros(n_layers, seq_len, device=model.cfg.device, dtype=torch.float32)
    for layer in range(n_layers):
        for pos in range(seq_len):
            hook_fn = partial(patch_residual_component, pos=pos, clean_cache=clean_cache)
            logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(get_act_name("resid_pre", layer), hook_fn)])
            results[layer, pos] = patching_metric(logits).item()
    return results
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Two nested loops, layers then positions. A hook function takes only `(activation, hook)`: fix the other arguments of
# your hook with `functools.partial`, and pass it to `model.run_with_hooks` together with the hook point's name. Each
# run's metric goes into one cell of a float32 tensor created on `model.cfg.device`.

# %% [markdown]
# Positions differ from frame to frame, so for a plot by position we patch the prompts of **one frame** (both
# orders). Label each position with its word: `N1` and `N2` are the two names (the IO is `N1` in ABBA prompts and
# `N2` in BABA prompts), `S2` the subject's second mention and `END` the last token.

# %%
one_frame = ioi_same_length(model, FRAMES[:1], NAMES, n_pairs=4, seed=1)
one_swapped = one_frame.swapped(model)
_, one_cache = model.run_with_cache(one_frame.tokens)
one_metric = partial(ioi_metric, answer_tokens=one_frame.answer_tokens,
                     corrupted_logit_diff=logit_diff(model(one_swapped.tokens), one_frame.answer_tokens).item(),
                     clean_logit_diff=logit_diff(model(one_frame.tokens), one_frame.answer_tokens).item())


def position_labels(dataset):
    """`"3 N1"`, `"11 S2"`, ... for the positions of a one-frame dataset."""
    words = model.to_str_tokens(dataset.tokens[0])
    n1, n2 = sorted([int(dataset.positions.io[0]), int(dataset.positions.s1[0])])
    slots = {n1: "N1", n2: "N2", int(dataset.positions.s2[0]): "S2", int(dataset.positions.end[0]): "END"}
    return [f"{i} {slots.get(i, word.strip() or '␣')}" for i, word in enumerate(words)]


positions_axis = position_labels(one_frame)
t0 = time.perf_counter()
resid_pre_results = get_act_patch_resid_pre(model, one_swapped.tokens, one_cache, one_metric)
loop_seconds = time.perf_counter() - t0
layer_head_heatmap(expect(resid_pre_results, "get_act_patch_resid_pre", dims=2), x_labels=positions_axis,
                   x_title="position", text_auto=".1f",
                   title="Patching resid_pre (1 = the clean answer is back)").show()

# %% [markdown]
# Read it from the top: before layer 0 only the name positions matter (the tokens themselves); by the last layers
# everything sits at `END`. The layer where the bright cell jumps to `END` is where attention moves the names'
# information to the last token.

# %%
at_end = resid_pre_results[:, -1]
name_positions = [p for p, label in enumerate(positions_axis) if label.split()[1] in ("N1", "N2", "S2")]
names_only = resid_pre_results[0, name_positions]
print(f"before layer 0: the name positions recover {names_only.min():.2f} to {names_only.max():.2f}, END "
      f"{at_end[0]:.2f}; at END before layers 1 to {model.cfg.n_layers - 1}: "
      f"{', '.join(f'{v:.2f}' for v in at_end[1:].tolist())}")
print(f"the loop ran {resid_pre_results.numel()} forward passes ({model.cfg.n_layers} layers x "
      f"{one_frame.tokens.shape[1]} positions) in {loop_seconds:.1f} s")

# %% [markdown]
# ## 4. Attention and MLP blocks
#
# The residual stream is a sum of what every block writes. Patch each block's output by position as well:
# `get_act_patch_block_every` returns `[3, layer, pos]`: `resid_pre`, `attn_out`, `mlp_out`, in that order (as
# `transformer_lens.patching.get_act_patch_block_every`). All three activations have shape `[batch, pos, d_model]`,
# so `patch_residual_component` patches each of them.

# %%
def get_act_patch_block_every(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "3 layer pos"]:
    """`[resid_pre, attn_out, mlp_out]` patching results by layer and position (one forward pass per patch)."""
    # SOLUTION
    n_layers, seq_len = model.cfg.n_layers, corrupted_tokens.shape[1]
    results = torch.zeros(3, n_layers, seq_len, device=model.cfg.device, dtype=torch.float32)
    for i, act_name in enumerate(["resid_pre", "attn_out", "mlp_out"]):
        for layer in range(n_layers):
            for pos in range(seq_len):
                hook_fn = partial(patch_residual_component, pos=pos, clean_cache=clean_cache)
                logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(get_act_name(act_name, layer), hook_fn)])
                results[i, layer, pos] = patching_metric(logits).item()
    return results
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The loop of `get_act_patch_resid_pre`, once for each of the three activation names, with the name passed to
# `get_act_name(act_name, layer)`; stack the three results in the order resid_pre, attn_out, mlp_out.

# %%
block_results = expect(get_act_patch_block_every(model, one_swapped.tokens, one_cache, one_metric),
                       "get_act_patch_block_every", dims=3)
block_scale = shared_scale(block_results)  # one colour, one value, in the three figures
for kind, table in zip(["resid_pre", "attn_out", "mlp_out"], block_results):
    layer_head_heatmap(table, x_labels=positions_axis, x_title="position", text_auto=".1f",
                       title=f"Patching {kind} by layer and position", **block_scale).show()
attn_end, mlp_end = block_results[1, :, -1], block_results[2, :, -1]
print("at END, attn_out recovers", [round(v, 2) for v in attn_end.tolist()], "and mlp_out",
      [round(v, 2) for v in mlp_end.tolist()], "(layers 0, 1, ...)")

# %% [markdown]
# ## 5. Attention heads
#
# Which *heads* carry it? Patch one head's output `z` (`hook_z`, `[batch, pos, head_index, d_head]`) at every
# position at once. The hook copies one head's slice.

# %%
def patch_head_vector(
    corrupted_head_vector: Float[Tensor, "batch pos head_index d_head"],
    hook: HookPoint,
    head_index: int,
    clean_cache: ActivationCache,
) -> Float[Tensor, "batch pos head_index d_head"]:
    """Replace head `head_index`'s vector (every prompt, every position) by its value in `clean_cache`."""
    # SOLUTION
    corrupted_head_vector[:, :, head_index] = clean_cache[hook.name][:, :, head_index]
    return corrupted_head_vector
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The head index is the third dimension (`[:, :, head_index]`); take the same slice of `clean_cache[hook.name]` and
# leave the other heads as they are.

# %%
def get_act_patch_attn_head_out_all_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "layer head"]:
    """The metric after patching each head's output `z` (all positions) from the clean run."""
    # SOLUTION
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    results = torch.zeros(n_layers, n_heads, device=model.cfg.device, dtype=torch.float32)
    for layer in range(n_layers):
        for head in range(n_heads):
            hook_fn = partial(patch_head_vector, head_index=head, clean_cache=clean_cache)
            logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(get_act_name("z", layer), hook_fn)])
            results[layer, head] = patching_metric(logits).item()
    return results
    # END SOLUTION


# %% [markdown] tags=["hint"]
# As `get_act_patch_resid_pre`, looping over layers and heads instead of positions, with `patch_head_vector` on
# `get_act_name("z", layer)`.

# %% [markdown]
# Back to the whole dataset (all frames): heads are patched at every position, so the positions need not line up.

# %%
swapped_metric = metric  # 0 on the swapped run, 1 on the clean run
head_out = expect(get_act_patch_attn_head_out_all_pos(model, swapped.tokens, clean_cache, swapped_metric),
                  "get_act_patch_attn_head_out_all_pos", shape=(model.cfg.n_layers, model.cfg.n_heads))
layer_head_heatmap(head_out, title="Patching each head's output (all positions)").show()
ranked = sorted(((head_out[layer, h].item(), (layer, h)) for layer in range(model.cfg.n_layers)
                 for h in range(model.cfg.n_heads)), reverse=True)
important = [head for value, head in ranked if value >= 0.1] or [head for _, head in ranked[:3]]
print("important heads (recovering at least 10% alone, else the best three):",
      ", ".join(f"{layer}.{h} ({head_out[layer, h]:.0%})" for layer, h in important))

# %% [markdown]
# A head's output depends on its **query** (where it looks from), **key** (what it looks for), **value** (what it
# moves) and **pattern** (where it looks). Patching each separately tells which of them carries the information.
# `q`, `k` and `v` have the shape of `z` (`patch_head_vector` patches them); the attention pattern is
# `[batch, head_index, query_pos, key_pos]`, with the head in the *second* dimension.

# %%
def patch_attn_patterns(
    corrupted_head_vector: Float[Tensor, "batch head_index pos_q pos_k"],
    hook: HookPoint,
    head_index: int,
    clean_cache: ActivationCache,
) -> Float[Tensor, "batch head_index pos_q pos_k"]:
    """Replace head `head_index`'s attention pattern (every prompt) by its value in `clean_cache`."""
    # SOLUTION
    corrupted_head_vector[:, head_index] = clean_cache[hook.name][:, head_index]
    return corrupted_head_vector
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Patterns put the head second: `[:, head_index]` selects one head's whole `[query, key]` table.

# %% [markdown]
# Now all five at once, as `transformer_lens.patching.get_act_patch_attn_head_all_pos_every`: `[5, layer, head]` for
# `z` (the output), `q`, `k`, `v`, `pattern`, in that order.

# %%
def get_act_patch_attn_head_all_pos_every(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "5 layer head"]:
    """`[z, q, k, v, pattern]` patching results for every head (all positions)."""
    # SOLUTION
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
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Loop over the five activation names; for `"pattern"` use `patch_attn_patterns`, for the other four
# `patch_head_vector`. Everything else is `get_act_patch_attn_head_out_all_pos`.

# %%
every = expect(get_act_patch_attn_head_all_pos_every(model, swapped.tokens, clean_cache, swapped_metric),
               "get_act_patch_attn_head_all_pos_every", dims=3)
every_scale = shared_scale(every)  # the five figures are compared: one colour scale
for kind, table in zip(["output (z)", "query", "key", "value", "pattern"], every):
    layer_head_heatmap(table, title=f"Patching each head's {kind} (all positions)", **every_scale).show()
top_layer, top_head = important[0]
parts = {kind: every[i, top_layer, top_head].item() for i, kind in enumerate(["z", "q", "k", "v", "pattern"])}
print(f"head {top_layer}.{top_head}: " + ", ".join(f"{kind} {value:.2f}" for kind, value in parts.items()))

# %% [markdown]
# ## 6. A faster engine
#
# The loops ran one forward pass per patch: `n_layers * pos` passes for `get_act_patch_resid_pre`, three times as
# many for `get_act_patch_block_every`. `transformer_lens.patching` does the same. Two observations make it faster
# without changing a single number:
#
# 1. **Fold the patches into the batch.** Patches are independent: stack `n` copies of the corrupted batch, patch copy
#    `i` with patch `i`, and run them in **one** forward pass. Rows `i * batch` to `(i + 1) * batch` of the logits
#    belong to patch `i`. Do it in chunks of `chunk_size` patches to bound the memory: the logits alone are
#    `chunk_size * batch * pos * d_vocab` floats.
# 2. **Start at the patched layer.** A patch in layer `L` changes nothing before layer `L`: take the corrupted run's
#    `resid_pre` of layer `L` from a cache, and run only the layers from `L` on:
#    `model.run_with_hooks(resid, start_at_layer=L, fwd_hooks=...)`.
#
# And one shortcut: a patch that copies what is already there (clean and corrupted activations equal, e.g. at the
# positions before the first name) changes nothing: its result is the metric of the corrupted run, no forward pass
# needed.
#
# Write one engine for every activation: `act_name` is `"resid_pre"`, `"attn_out"` or `"mlp_out"` (one patch per
# position, `[layer, pos]`), or `"z"`, `"q"`, `"k"`, `"v"` or `"pattern"` (one patch per head, `[layer, head]`).
# Reuse your hooks: inside one hook call, apply the right one to each patch's rows. Work under `torch.no_grad()`.

# %% tags=["module"]
POSITION_ACTS = ("resid_pre", "attn_out", "mlp_out")  # [batch, pos, d_model]: one patch per position
HEAD_ACTS = ("z", "q", "k", "v", "pattern")  # one patch per head


# %%
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
    # SOLUTION
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
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Cache the corrupted run once (`run_with_cache` with a `names_filter` for `resid_pre` and `act_name`). For each
# layer, and each chunk of indices: `resid = corrupted_cache["resid_pre", layer].repeat(n, 1, 1)` (a copy: `repeat`,
# not `expand`), a hook on `get_act_name(act_name, layer)` that, for patch `i`, replaces
# `activation[i * batch:(i + 1) * batch]` by your hook's output on that slice, then
# `model.run_with_hooks(resid, start_at_layer=layer, ...)`, and the metric of each patch's slice of the logits. The
# shortcut: apply your hook to a clone of the corrupted activation; if it comes back equal (`torch.equal`), store
# the corrupted run's metric.

# %% [markdown]
# With the engine, each function of `transformer_lens.patching` is one line. `fast` holds the four with the library's
# names and signatures; the equality with the library (`atol` 1e-4 on CPU) is a test of this course, and a benchmark
# in `bench/bench_patching.py` times both on this model.

# %% tags=["module"]
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

# %% [markdown]
# Same numbers? And how much faster? A timing taken in one cell and compared with one taken in another says little on
# a busy machine, so the loop and the engine run here back to back, three times, on the same input.

# %%
fast_resid_pre = fast.get_act_patch_resid_pre(model, one_swapped.tokens, one_cache, one_metric)
fast_block = fast.get_act_patch_block_every(model, one_swapped.tokens, one_cache, one_metric)
fast_every = fast.get_act_patch_attn_head_all_pos_every(model, swapped.tokens, clean_cache, swapped_metric)
differences = [(fast_resid_pre.cpu() - resid_pre_results).abs().max(), (fast_block.cpu() - block_results).abs().max(),
               (fast_every.cpu() - every).abs().max()]
print(f"largest difference from the loops' results: {max(differences):.1e}")
timings = {"loop": [], "batched": []}
for _ in range(3):
    for name, patch_fn in [("loop", get_act_patch_attn_head_out_all_pos),
                           ("batched", fast.get_act_patch_attn_head_out_all_pos)]:
        t0 = time.perf_counter()
        patch_fn(model, one_swapped.tokens, one_cache, one_metric)
        timings[name].append(time.perf_counter() - t0)
loop_times, fast_times = sorted(timings["loop"]), sorted(timings["batched"])
print(f"patching each head's output, {len(one_frame)} prompts, 3 runs each, back to back: loop "
      f"{', '.join(f'{t:.2f}' for t in loop_times)} s; batched {', '.join(f'{t:.2f}' for t in fast_times)} s "
      f"(medians: the batched engine takes {fast_times[1] / loop_times[1]:.0%} of the loop's time)")

# %% [markdown]
# How much faster depends on the machine and the batch. Where a forward pass of a small model costs about the same
# for 8 rows as for 500 (a GPU), folding is what pays. On a CPU the arithmetic itself dominates once the batch is a
# few prompts long, and the gain comes mostly from skipping the layers before the patch and the patches that change
# nothing: less with many prompts, more with few. (`python -m bench.bench_patching` measures all four functions
# against the library, for several batch sizes.)
#
# ## 7. What do the important heads do?
#
# Patching says *which* heads matter. Now: **where do they look, and what do they write?**
#
# ### Where they look
#
# From the last token, a head that moves the answer should look at a name. Here is each head's mean attention from
# `END` to the IO, to the subject's first mention `S1` and to its second mention `S2`:

# %%
rows = torch.arange(len(data))
end_attention = torch.stack([torch.stack([clean_cache["pattern", layer][rows, :, data.positions.end, where].mean(0)
                                          for layer in range(model.cfg.n_layers)])
                             for where in (data.positions.io, data.positions.s1, data.positions.s2)]).cpu()
for word, table in zip(["IO", "S1", "S2"], end_attention):
    layer_head_heatmap(table, title=f"Attention from END to {word}", midpoint=None, colorscale="Blues",
                       zmin=0, zmax=1).show()
WORDS = ["IO", "S1", "S2"]
looks_at = {head: WORDS[int(end_attention[:, head[0], head[1]].argmax())] for head in important}
print("important heads look at:", ", ".join(f"{layer}.{h} -> {word} ({end_attention[WORDS.index(word), layer, h]:.0%})"
                                            for (layer, h), word in looks_at.items()))

# %% [markdown]
# The attention of the important heads on the first prompts (hover over a head to see its pattern):

# %%
shown = important[:4]
display(cv.attention.attention_heads(
    tokens=model.to_str_tokens(data.tokens[0]),
    attention=torch.stack([clean_cache["pattern", layer][0, h] for layer, h in shown]),
    attention_head_names=[f"{layer}.{h}" for layer, h in shown]))

# %% [markdown]
# ### What they write: copying scores
#
# A **name mover** attends to a name and *copies* it: its OV circuit maps a name's embedding to a high logit for
# the same name. Test it directly on the weights, as ARENA does: take each name's embedding (for heads after layer
# 0, plus what MLP 0 adds to it: `W_E[name] + MLP0(ln2(W_E[name]))`, the "extended embedding" a later head reads),
# multiply by the head's `W_V W_O`, apply the final LayerNorm (`model.ln_final`) and unembed (`model.unembed`). The
# **copying score** is the fraction of names whose own token is among the `k` largest logits. The **negative copying
# score** does the same with `-W_V W_O` (a head that *suppresses* the name it attends to). Heads in layer 0 read the
# residual stream before MLP 0: give them the embedding alone.
#
# `model.ln_final`, `model.blocks[0].ln2` and `model.blocks[0].mlp` take `[batch, pos, d_model]`: give the names a
# `pos` dimension of 1.

# %%
def get_copying_scores(
    model: HookedTransformer, name_tokens: Int[Tensor, "n_names"], k: int = 5
) -> Float[Tensor, "2 layer head"]:
    """`[0]`: fraction of names whose token is in the top `k` logits of `W_OV` applied to the name's (extended)
    embedding; `[1]`: the same for `-W_OV`."""
    # SOLUTION
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
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Give the names a position dimension (`[n_names, 1, d_model]`). Layer-0 heads read the embedding as it is; later
# heads read it plus MLP 0's output on it (`ln2`, then `mlp`, of block 0). For each head, multiply by its `W_V W_O`
# (or its negative), then apply the final LayerNorm and the unembedding; a name counts if its own token id is among
# the `k` largest logits (`topk`). Flip the sign before the unembedding: it has a bias.

# %%
name_tokens = torch.tensor([model.to_single_token(" " + n) for n in NAMES], device=model.cfg.device)
copying = expect(get_copying_scores(model, name_tokens), "get_copying_scores", dims=3)
layer_head_heatmap(copying[0], title="Copying score (names among the top 5 logits)", midpoint=None,
                   colorscale="Blues", zmin=0, zmax=1).show()
layer_head_heatmap(copying[1], title="Negative copying score (names among the top 5 of -W_OV)", midpoint=None,
                   colorscale="Reds", zmin=0, zmax=1).show()
print("important heads, copying / negative copying:", ", ".join(
    f"{layer}.{h} {copying[0, layer, h]:.0%} / {copying[1, layer, h]:.0%}" for layer, h in important))

# %% [markdown]
# ### Duplicate-token, previous-token and induction heads
#
# In GPT-2, the heads at `END` know which name is the subject because earlier heads, at `S2`, noticed that `S` occurs
# twice: **duplicate-token heads** attend from `S2` to `S1` (the same token earlier), **induction heads** attend from
# `S2` to the token after `S1`, helped by **previous-token heads**. Such heads are found on repeated random tokens
# `[BOS] + r + r` (chapter 4), where the answer does not depend on language. For a cache of such a run, with `r` of
# length `seq_len`, the score of each head is its mean attention (over the batch and the destination positions) from:
#
# - `"duplicate"`: each token of the second copy (positions `seq_len + 1` to `2 * seq_len`) to the same token in the
#   first copy (`seq_len` earlier);
# - `"induction"`: each token of the second copy to the token *after* its first occurrence (`seq_len - 1` earlier);
# - `"prev"`: each token after BOS (positions `1` to `2 * seq_len`) to the token just before it.

# %%
def get_attn_scores(cache: ActivationCache, seq_len: int, head_type: str) -> Float[Tensor, "layer head"]:
    """Mean attention of every head from each destination to its `head_type` source ("duplicate", "induction" or
    "prev") on `[BOS] + r + r` (`r` of length `seq_len`, batch dimension kept)."""
    # SOLUTION
    if head_type == "prev":
        dest = torch.arange(1, 2 * seq_len + 1)
        src = dest - 1
    else:
        dest = torch.arange(seq_len + 1, 2 * seq_len + 1)
        src = dest - seq_len + (1 if head_type == "induction" else 0)
    n_layers = cache.model.cfg.n_layers
    return torch.stack([cache["pattern", layer][:, :, dest, src].mean(dim=(0, 2)) for layer in range(n_layers)])
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Build the destination positions and the source positions as two index tensors of the same length, and index
# `cache["pattern", layer][:, :, dest, src]` (patterns are `[batch, head, dest, src]`): that picks one source per
# destination. Average over the batch and the destinations, and stack the layers.

# %%
SEQ_LEN = 20
rep = repeated_tokens(model, SEQ_LEN, batch=8, seed=0)
_, rep_cache = model.run_with_cache(rep, names_filter=lambda name: name.endswith("hook_pattern"))
role_scores = {kind: expect(get_attn_scores(rep_cache, SEQ_LEN, kind), "get_attn_scores", dims=2)
               for kind in ("duplicate", "prev", "induction")}
for kind, table in role_scores.items():
    layer_head_heatmap(table, title=f"{kind} score on [BOS] + r + r", midpoint=None, colorscale="Blues", zmin=0,
                       zmax=1).show()
best = {kind: divmod(int(table.argmax()), model.cfg.n_heads) for kind, table in role_scores.items()}
print(", ".join(f"best {kind} head {layer}.{h} ({role_scores[kind][layer, h]:.2f})"
                for kind, (layer, h) in best.items()))

# %% [markdown]
# ## 8. Path patching
#
# Activation patching measures everything downstream of a head at once. **Path patching** isolates one path: run
# the clean prompt, give the *sender* head its output from a corrupted run, and **freeze every other head** at its
# clean output, so that the change reaches the logits only through the path we keep open. We use the ABC prompts as
# the corrupted ("new") run, and the same normalised metric with the ABC logit difference as baseline: 1 means the
# path carries nothing the ABC prompt removes, a drop towards 0 means it carries the IOI information.
#
# **Sender → logits.** Freeze every head's `z` at its clean value except the sender's, which gets its value on the
# ABC prompts; MLPs and LayerNorms recompute (so MLPs downstream of the sender count as part of its direct path, as
# in ARENA). One forward pass per sender, with one hook on every `hook_z` (a name filter).

# %%
def get_path_patch_head_to_final_resid_post(
    model: HookedTransformer,
    patching_metric: Metric,
    orig_tokens: Int[Tensor, "batch pos"],
    new_cache: ActivationCache,
    orig_cache: ActivationCache,
) -> Float[Tensor, "layer head"]:
    """The metric when only the sender head (each in turn) takes its `new_cache` output and every other head is
    frozen at its `orig_cache` output."""
    # SOLUTION
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
    # END SOLUTION


# %% [markdown] tags=["hint"]
# One hook for every `hook_z` (a name filter). Inside it, freeze first (all of `z` gets its `orig_cache` value), then
# patch the sender, only in its layer (`hook.layer()`) and only its head's slice, from `new_cache`: the other order
# freezes the sender too.

# %%
abc_metric = partial(ioi_metric, answer_tokens=data.answer_tokens, corrupted_logit_diff=abc_ld,
                     clean_logit_diff=clean_ld)
to_logits = expect(get_path_patch_head_to_final_resid_post(model, abc_metric, data.tokens, abc_cache, clean_cache),
                   "get_path_patch_head_to_final_resid_post", shape=(model.cfg.n_layers, model.cfg.n_heads))
direct = 1 - to_logits  # the share of the clean-minus-ABC logit difference each head's direct path carries
layer_head_heatmap(direct, title="Path patching sender -> logits: drop in the metric (ABC sender)").show()
by_drop = sorted(((direct[layer, h].item(), (layer, h)) for layer in range(model.cfg.n_layers)
                  for h in range(model.cfg.n_heads)), reverse=True)
print("largest drops:", ", ".join(f"{layer}.{h} {drop:.0%}" for drop, (layer, h) in by_drop[:4]))
print("important heads:", ", ".join(f"{layer}.{h} {direct[layer, h]:.0%}" for layer, h in important))

# %% [markdown]
# ### What they write to the logits: direct logit attribution
#
# Path patching to the logits counts the MLPs after a head as part of its direct path. To see what each component
# itself writes, split the residual stream at `END` into its parts (chapter 2): the final residual stream is the sum
# of the embeddings, every head's output `z @ W_O` (plus the attention biases) and every MLP's output, and the logit
# difference is (up to the unembedding bias) that sum, divided by the final LayerNorm's scale, dotted with
# `W_U[:, IO] - W_U[:, S]`. So each part has a **direct logit attribution** (DLA): its own share of the logit
# difference, through the scale of the whole stream.
#
# Return the DLA of each head's output `[layer, head]` and of each MLP's output `[layer]` at the last position,
# averaged over the prompts.

# %%
def logit_diff_attribution(
    model: HookedTransformer, cache: ActivationCache, answer_tokens: Int[Tensor, "batch 2"]
) -> tuple[Float[Tensor, "layer head"], Float[Tensor, "layer"]]:
    """Mean over prompts of what each head's output and each MLP's output at the last position add to
    logit(IO) - logit(S), through the final LayerNorm's scale at that position."""
    # SOLUTION
    direction = model.W_U[:, answer_tokens[:, 0]] - model.W_U[:, answer_tokens[:, 1]]  # [d_model, batch]
    scale = cache["ln_final.hook_scale"][:, -1]  # [batch, 1]
    heads = torch.stack([torch.einsum("bhd,hdm->bhm", cache["z", layer][:, -1], model.W_O[layer])
                         for layer in range(model.cfg.n_layers)])  # [layer, batch, head, d_model]
    mlps = torch.stack([cache["mlp_out", layer][:, -1] for layer in range(model.cfg.n_layers)])  # [layer, batch, d]
    head_dla = torch.einsum("lbhm,mb->lh", heads / scale[:, None], direction) / len(answer_tokens)
    mlp_dla = torch.einsum("lbm,mb->l", mlps / scale, direction) / len(answer_tokens)
    return head_dla, mlp_dla
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The direction is one column per prompt: `W_U[:, IO] - W_U[:, S]`, `[d_model, batch]`. Take every output at the
# last position, divide it by `cache["ln_final.hook_scale"][:, -1]` (one scale per prompt), dot it with its prompt's
# direction and average over the prompts. A head's output is its `z` times its `W_O[layer, head]`.

# %%
head_dla, mlp_dla = logit_diff_attribution(model, clean_cache, data.answer_tokens)
head_dla = expect(head_dla, "logit_diff_attribution", shape=(model.cfg.n_layers, model.cfg.n_heads))
mlp_dla = expect(mlp_dla, "logit_diff_attribution", shape=(model.cfg.n_layers,))
layer_head_heatmap(head_dla, title="Direct logit attribution of each head (IO - S at END)").show()
print("MLPs: " + ", ".join(f"MLP{layer} {v:.2f}" for layer, v in enumerate(mlp_dla.tolist()))
      + f" | heads: largest {head_dla.max():.2f}, smallest {head_dla.min():.2f} | important heads: "
      + ", ".join(f"{layer}.{h} {head_dla[layer, h]:.2f}" for layer, h in important))
print(f"MLPs together {mlp_dla.sum():.2f}, heads together {head_dla.sum():.2f}, of a logit difference of "
      f"{clean_ld:.2f} (the rest: embeddings and biases)")
print(f"head {top_layer}.{top_head}: path to the logits {direct[top_layer, top_head]:.0%} of the effect; its own "
      f"direct logit attribution {head_dla[top_layer, top_head]:.2f} of {clean_ld:.2f} "
      f"({head_dla[top_layer, top_head] / clean_ld:.0%})")

# %% [markdown]
# **Sender → receivers.** Which heads change the *inputs* of some receiver heads? Two runs per sender:
#
# 1. run the clean prompt with the sender patched and every other head frozen (as above), and cache the
#    receivers' input `receiver_input` (`"q"`, `"k"` or `"v"`: `hook_q`, `hook_k`, `hook_v` of their layers);
# 2. run the clean prompt again with **only the receivers' input** replaced by what step 1 cached (for the receiver
#    heads only), and everything else free; the metric of these logits is the sender's result.
#
# Senders run over the layers before the last receiver's layer: the result is `[max receiver layer, head]`.
# (`with model.hooks(fwd_hooks=...):` around `model.run_with_cache(...)` runs a cache with hooks.)

# %%
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
    # SOLUTION
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
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Step 1 is the sender's hook of `get_path_patch_head_to_final_resid_post` inside `with model.hooks(...)`, around
# `model.run_with_cache(orig_tokens, names_filter=..., return_type=None)` for the receivers' `hook_q`/`hook_k`/`hook_v`
# names (`get_act_name(receiver_input, layer)`). Step 2 is `run_with_hooks` with one hook on those names that copies,
# for each receiver head of that layer, `[:, :, receiver_head]` from step 1's cache.

# %% [markdown]
# Time to name the important heads by what they do. A head that looks from `END` at the names (at least 0.3 of its
# attention on IO, S1 and S2) acts at `END`: if it looks at `S2` most, it is a **subject mover** (it brings the
# repeated name to `END`; GPT-2's S-inhibition heads look there too, and tell the name movers whom *not* to copy);
# otherwise, if it copies names (copying score at least 0.3), a **name mover** when its direct logit attribution is
# positive and a **negative name mover** when it writes against the answer. A head that does not look at the names
# from `END` works elsewhere, and is named by its attention-role score on repeated tokens (at least 0.3: induction,
# duplicate token, previous token). Anything else is "other". Then path patching answers the question GPT-2's
# circuit raises: do the other heads act through the name movers' **queries**, **keys** or **values**?

# %%
def role_of(head):
    layer, h = head
    if end_attention[:, layer, h].sum() >= 0.3:
        if looks_at[head] == "S2":
            return "subject mover"
        if copying[0, layer, h] >= 0.3:
            return "name mover" if head_dla[layer, h] > 0 else "negative name mover"
        return "other"
    for kind, role in [("induction", "induction"), ("duplicate", "duplicate token"), ("prev", "previous token")]:
        if role_scores[kind][layer, h] >= 0.3:
            return role
    return "other"


roles = {head: role_of(head) for head in important}
print("roles:", ", ".join(f"{layer}.{h} {role}" for (layer, h), role in roles.items()))
print("their induction scores on [BOS] + r + r (section 7):", ", ".join(
    f"{layer}.{h} {role_scores['induction'][layer, h]:.2f}" for layer, h in important))
receivers = [head for head, role in roles.items() if role.endswith("name mover") and head[0] > 0]
via = {}
for kind in ("q", "k", "v") if receivers else ():
    via[kind] = 1 - get_path_patch_head_to_heads(receivers, kind, model, abc_metric, data.tokens, abc_cache,
                                                 clean_cache)
via_scale = shared_scale(*via.values(), direct)  # compared with each other and with the path to the logits
for kind, table in via.items():
    layer_head_heatmap(table, title=f"Path patching sender -> {kind} of the name movers: drop in the metric",
                       **via_scale).show()
for kind, table in via.items():
    layer, h = divmod(int(table.argmax()), model.cfg.n_heads)
    print(f"through the name movers' {kind}: largest drop {table.max():.0%}, from sender {layer}.{h}")

# %% [markdown]
# ## 9. The circuit
#
# Time to put the pieces together and test them: keep the circuit's heads, replace **every other head's output** by
# its mean over the ABC prompts, and see how much of the logit difference is left. (MLPs stay as they are, as in
# ARENA: the circuit is a circuit of heads.) Two details make this fair:
#
# - the means are taken **per frame**: prompts of different frames have different words at each position, and a
#   mean over frames would put a word where none of them has one;
# - circuit heads are kept **only at the positions where they work** (movers and subject movers at `END`, duplicate and
#   induction heads at `S2`, previous-token heads at `S1+1`): everywhere else they are mean-ablated too.
#
# The circuit is a dict `{role: [(layer, head), ...]}`, and `seq_pos_to_keep` says where each role is kept:
# `{role: word}`, where the word is a key of `positions` (`{"IO": ..., "S1": ..., "S1+1": ..., "S2": ..., "end":
# ...}`, each `[batch]`). First, the mask of what to keep: `[layer, batch, pos, head]`, True where a circuit head keeps
# its own output.

# %%
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
    # SOLUTION
    batch = len(next(iter(positions.values())))
    device = next(iter(positions.values())).device
    keep = torch.zeros(n_layers, batch, seq_len, n_heads, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)
    for role, heads in circuit.items():
        where = positions[seq_pos_to_keep[role]]
        for layer, head in heads:
            keep[layer, rows, where, head] = True
    return keep
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Start from an all-False tensor. Each role's word gives one position per prompt: index the prompts and their
# positions *together* (two index tensors of length `batch`), not every listed position for every prompt.

# %% [markdown]
# Next the means: for each prompt, the mean of every head's `z` over the ABC prompts **of the same frame**, at every
# position: `[layer, batch, pos, head, d_head]`.

# %%
def compute_means_by_frame(
    means_cache: ActivationCache, frames: Int[Tensor, "batch"]
) -> Float[Tensor, "layer batch pos head d_head"]:
    """`z` of every layer, each prompt's row replaced by the mean over the prompts of its frame."""
    # SOLUTION
    z = torch.stack([means_cache["z", layer] for layer in range(means_cache.model.cfg.n_layers)])
    means = torch.empty_like(z)
    for frame in frames.unique():
        same = frames == frame
        means[:, same] = z[:, same].mean(dim=1, keepdim=True)
    return means
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Stack `means_cache["z", layer]` over the layers (`[layer, batch, pos, head, d_head]`). For each frame, a boolean
# mask of its prompts selects their rows; their mean over dimension 1 (`keepdim=True`) broadcasts back into those
# rows.

# %% [markdown]
# The hook: on `hook_z` of every layer, keep `z` where the mask says so and put the mean everywhere else.
# (ARENA's `add_mean_ablation_hook` adds this hook to the model permanently; here it is a plain hook function, which
# `run_with_hooks` adds for one run only: a permanent hook would stay on the model for every later cell.)

# %%
def mean_ablation_hook(
    z: Float[Tensor, "batch pos head d_head"],
    hook: HookPoint,
    means: Float[Tensor, "layer batch pos head d_head"],
    keep: Bool[Tensor, "layer batch pos head"],
) -> Float[Tensor, "batch pos head d_head"]:
    """`z` where `keep` is True for this hook's layer, the mean elsewhere."""
    # SOLUTION
    layer = hook.layer()
    return torch.where(keep[layer][..., None], z, means[layer])
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `hook.layer()` tells you which layer's slice of `means` and `keep` applies. `torch.where` chooses element by
# element between two tensors; the mask has no `d_head` dimension, so give it one to broadcast.

# %% [markdown]
# Finally the **faithfulness** of the circuit: its logit difference (mean over prompts, every `hook_z` hooked with
# `mean_ablation_hook`) divided by the full model's, as a Python float.

# %%
def circuit_faithfulness(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    answer_tokens: Int[Tensor, "batch 2"],
    means: Float[Tensor, "layer batch pos head d_head"],
    keep: Bool[Tensor, "layer batch pos head"],
) -> float:
    """Mean logit difference (IO - S, last position) with everything outside `keep` mean-ablated, divided by the
    full model's."""
    # SOLUTION
    def mean_logit_diff(logits):
        answer_logits = logits[:, -1].gather(-1, answer_tokens)
        return (answer_logits[:, 0] - answer_logits[:, 1]).mean()

    hook_fn = partial(mean_ablation_hook, means=means, keep=keep)
    ablated = model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("hook_z"), hook_fn)])
    return (mean_logit_diff(ablated) / mean_logit_diff(model(tokens))).item()
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Two runs on the same tokens: one with your hook (bound to `means` and `keep` with `functools.partial`) on every
# `hook_z` (a name filter), one without. Divide their mean logit differences, and return a Python float.

# %% [markdown]
# The circuit is what your functions found: the important heads, each kept where its role works. The means come from
# the ABC version of our prompts (as in ARENA): same frames, same positions, unrelated names.

# %%
circuit = {}
for head, role in roles.items():
    circuit.setdefault(role, []).append(head)
SEQ_POS_TO_KEEP = {"name mover": "end", "negative name mover": "end", "subject mover": "end", "other": "end",
                   "induction": "S2", "duplicate token": "S2", "previous token": "S1+1"}
means = compute_means_by_frame(abc_cache, torch.tensor(data.frames, device=model.cfg.device))
positions = {"IO": data.positions.io, "S1": data.positions.s1, "S1+1": data.positions.s1 + 1,
             "S2": data.positions.s2, "end": data.positions.end}
keep = get_heads_and_posns_to_keep(positions, circuit, SEQ_POS_TO_KEEP, model.cfg.n_layers, model.cfg.n_heads,
                                   data.tokens.shape[1])
faithfulness = circuit_faithfulness(model, data.tokens, data.answer_tokens, means, keep)
nothing = circuit_faithfulness(model, data.tokens, data.answer_tokens, means, torch.zeros_like(keep))
for role, heads in circuit.items():
    print(f"{role:>16}: {', '.join(f'{layer}.{h}' for layer, h in heads)} (kept at {SEQ_POS_TO_KEEP[role]})")
print(f"the circuit keeps {faithfulness:.0%} of the full model's logit difference ({clean_ld:.2f}); with every head "
      f"mean-ablated: {nothing:.0%}")

# %% [markdown]
# ## 10. The small model and GPT-2
#
# In GPT-2 small (ARENA 1.4.1, Wang et al. 2022) the circuit has seven classes of heads:
#
# | role | GPT-2 small heads | what it does | position |
# |---|---|---|---|
# | name movers | 9.9, 9.6, 10.0 | attend to the IO, copy it to the logits | END |
# | negative name movers | 10.7, 11.10 | attend to the IO, write *against* it | END |
# | backup name movers | 10.10, 10.6, 10.2, 10.1, 11.2, 9.7, 9.0, 11.9 | take over when name movers are ablated | END |
# | S-inhibition | 7.3, 7.9, 8.6, 8.10 | attend to S2, make the name movers' queries avoid S | END |
# | induction | 5.5, 5.8, 5.9, 6.9 | attend from S2 to the token after S1 | S2 |
# | duplicate token | 0.1, 0.10, 3.0 | attend from S2 to S1 | S2 |
# | previous token | 2.2, 4.11 | attend from S1+1 to S1 | S1+1 |
#
# Set `MODEL_NAME = "gpt2-small"` (online) and run the notebook again: your functions should find these heads.
#
# Our 4-layer model does the task with far fewer parts, and the cells above say which: the heads it needs, where
# they look, what they write, through which paths. Where the two differ:
#
# - **Who knows the subject.** GPT-2 needs duplicate-token and induction heads at `S2` to discover that `S` is
#   repeated. In `mlp4l` the head with the largest effect sits in **layer 0**, where a head sees only tokens and
#   positions, and attends from `END` to `S2`: in every frame the subject's second mention is the last name before
#   `END`, and "the most recent name" can be found from positions alone. Nothing before it can feed it. The model has
#   previous-token and induction heads (chapter 4, and the scores of section 7) but no duplicate-token head. The
#   other important heads, all in layer 1, *are* its induction heads: each scores at least 0.5 on repeated tokens
#   (section 8 prints their scores). In the IOI prompts they look from `END` at the two earlier names, IO and S1, far
#   more than at `S2`.
# - **Who writes the answer.** The MLPs. Direct logit attribution puts most of the logit difference on the MLPs'
#   outputs at `END` (section 8 prints each MLP's share), and no head writes more than a small share of it directly.
#   The top head moves `S2`'s token to `END`: patching its values alone recovers about as much as patching its
#   output. Path patching to the logits (where the MLPs count as part of the direct path) puts most of its effect
#   there, while its own direct logit attribution is small: the MLPs at `END` turn "the subject is S" into "not S"
#   (section 4: patching the first MLP's output at `END` recovers most of the answer). Much less goes through the
#   name movers' queries, keys and values, the paths GPT-2's S-inhibition heads use (section 8 prints how much):
#   this is why the chapter calls that head a subject mover, not an S-inhibition head. The layer-1 heads that copy
#   names write *against* the answer directly (a negative direct logit attribution: negative name movers), yet
#   patching each of them recovers part of the answer (section 5): what they add goes through the later layers.
#
# ## 11. Attribution patching
#
# Every patching sweep above ran one forward pass per patch (fewer with the engine, but still one row of a batch per
# patch). What practitioners run first on a large model is **attribution patching** (AtP; Nanda 2023, Kramár et al.
# 2024): a first-order estimate of *every* patch at once. Patching replaces the corrupted activation `a` by the clean
# one `a'`; to first order the metric changes by
#
# $$ \Delta \text{metric} \approx (a' - a) \cdot \frac{\partial\, \text{metric}}{\partial a}\Big|_{\text{corrupted}} $$
#
# So one forward pass on the corrupted prompts (caching the activations), one backward pass (their gradients), and the
# clean cache give the estimate for every layer and position, or every head, at the cost of about two forward passes.
#
# Return, with the signature of `get_act_patch_resid_pre`, the estimated metric after each patch of `resid_pre`: the
# corrupted run's metric plus the estimated change, `[layer, pos]` (the dot product runs over the prompts and
# `d_model`: one patch changes every prompt at that position).
#
# The gradient: this chapter turned gradients off, so work under `torch.enable_grad()`. On each hook point, add a
# zero tensor that requires a gradient (`act + probe`): the run is unchanged, and `torch.autograd.grad(metric,
# probes)` returns the gradient of the metric with respect to each activation, without touching the model's
# parameters. (Detaching the activations instead would cut the residual stream between layers.)

# %%
def get_attr_patch_resid_pre(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "layer pos"]:
    """Attribution patching's estimate of `get_act_patch_resid_pre`: the corrupted run's metric plus
    `(clean - corrupted) . d metric / d resid_pre` at each layer and position."""
    # SOLUTION
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
    # END SOLUTION


# %% [markdown] tags=["hint"]
# One run under `torch.enable_grad()` with a probe hook on every layer's `resid_pre` (`model.hooks(...)` around
# `model.run_with_cache(...)`), the metric of its logits, `torch.autograd.grad(value, list_of_probes)`. For each layer:
# `((clean - corrupted) * grad).sum(dim=(0, 2))` (prompts and `d_model`), stacked, plus `value.item()`.

# %% [markdown]
# The same for each head's output `z` (`[batch, pos, head_index, d_head]`), with the signature of
# `get_act_patch_attn_head_out_all_pos`: one patch per head, at every position at once, so the dot product runs over
# the prompts, the positions and `d_head`.

# %%
def get_attr_patch_attn_head_out(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    patching_metric: Metric,
) -> Float[Tensor, "layer head"]:
    """Attribution patching's estimate of `get_act_patch_attn_head_out_all_pos`: the corrupted run's metric plus
    `(clean - corrupted) . d metric / d z` for each head (all positions)."""
    # SOLUTION
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
    # END SOLUTION


# %% [markdown] tags=["hint"]
# As for `resid_pre`, on every layer's `hook_z`; the sum runs over the prompts, the positions and `d_head`
# (dimensions 0, 1 and 3), leaving one number per head.

# %% [markdown]
# How good is the estimate? Against your exact results (sections 3 and 5), on the same prompts, and timed back to back
# with the engine:

# %%
atp_resid = expect(get_attr_patch_resid_pre(model, one_swapped.tokens, one_cache, one_metric),
                   "get_attr_patch_resid_pre", shape=tuple(resid_pre_results.shape))
atp_heads = expect(get_attr_patch_attn_head_out(model, swapped.tokens, clean_cache, swapped_metric),
                   "get_attr_patch_attn_head_out", shape=(model.cfg.n_layers, model.cfg.n_heads))
agreement = {name: torch.corrcoef(torch.stack([exact.flatten(), estimate.flatten()]))[0, 1].item()
             for name, exact, estimate in [("resid_pre", resid_pre_results, atp_resid), ("heads", head_out, atp_heads)]}
head_names = [f"{layer}.{h}" for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
named = [f"{layer}.{h}" for layer, h in important]  # the important heads (section 5) get a colour; hover for the rest
px.scatter(x=head_out.flatten(), y=atp_heads.flatten(), color=[n if n in named else "other" for n in head_names],
           color_discrete_map={"other": "lightgrey"}, category_orders={"color": [*named, "other"]},
           hover_name=head_names, title=f"Heads: exact patching vs attribution patching (correlation "
           f"{agreement['heads']:.2f})", labels=dict(x="exact (activation patching)",
                                                      y="estimate (attribution patching)", color="head"),
           width=620, height=480).show()
px.scatter(x=resid_pre_results.flatten(), y=atp_resid.flatten(), title=f"resid_pre by layer and position: exact vs "
           f"attribution patching (correlation {agreement['resid_pre']:.2f})",
           labels=dict(x="exact (activation patching)", y="estimate (attribution patching)"), width=620,
           height=480).show()
seconds = {"attribution": [], "engine": []}
for _ in range(3):
    for name, patch_fn in [("attribution", get_attr_patch_attn_head_out),
                           ("engine", fast.get_act_patch_attn_head_out_all_pos)]:
        t0 = time.perf_counter()
        patch_fn(model, swapped.tokens, clean_cache, swapped_metric)
        seconds[name].append(time.perf_counter() - t0)
print(f"correlation with the exact results: resid_pre {agreement['resid_pre']:.2f}, heads {agreement['heads']:.2f}")
print(f"every head, {len(swapped.tokens)} prompts, 3 runs back to back (medians): attribution patching "
      f"{sorted(seconds['attribution'])[1]:.3f} s, the exact engine {sorted(seconds['engine'])[1]:.3f} s")
print("the important heads, exact / estimate:",
      ", ".join(f"{layer}.{h} {head_out[layer, h]:.2f}/{atp_heads[layer, h]:.2f}" for layer, h in important))

# %% [markdown]
# The correlations are high, but read the important heads: the estimate gets the layer-1 heads' *sign* wrong. Their
# direct effect on the logits is negative (section 8), and a gradient at the corrupted run mostly sees that; what they
# add through the later layers switches on only when the patch is made for real, which a first-order estimate cannot
# see.
#
# **Saturated attention** is the other classic failure. The top head puts nearly all of its attention from `END` on
# `S2`: its softmax is saturated, so its gradient with respect to the query and the key is close to 0, and AtP
# estimates their patches at about nothing, while the exact patches (section 5) move the metric. AtP* (Kramár et al.)
# fixes this for query and key patches: **recompute the attention pattern exactly** with the patched query (or key),
# and take the first-order estimate only from the pattern onwards, `(pattern' - pattern) . d metric / d pattern`.

# %% tags=["module"]
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


# %%
qk = atp_qk(model, swapped.tokens, clean_cache, swapped_metric, top_layer, top_head)
print(f"head {top_layer}.{top_head}: attention from END to S2 {end_attention[2, top_layer, top_head]:.0%}")
for i, kind in [(1, "q"), (2, "k")]:
    print(f"  patching its {kind}: exact {every[i, top_layer, top_head]:.3f}, AtP {qk[kind][0]:.3f}, "
          f"AtP* {qk[kind][1]:.3f}")

# %% [markdown]
# Plain AtP gets both small patches wrong, down to the sign; AtP* recovers their sign and part of their size.
#
# So attribution patching is a **filter**: run it on everything, then verify its top candidates with exact patching.
# `filter_then_verify` takes an AtP table, patches exactly the `n_candidates` entries whose estimated effect is
# largest (one forward pass each, with your hooks), and returns the `k` entries with the largest exact results.

# %% tags=["module"]
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


# %%
def top_k(table, k):
    return [divmod(int(i), table.shape[1]) for i in table.flatten().topk(k).indices]


for name, exact, estimate, act, tokens_, cache_, metric_ in [
        ("resid_pre", resid_pre_results, atp_resid, "resid_pre", one_swapped.tokens, one_cache, one_metric),
        ("heads", head_out, atp_heads, "z", swapped.tokens, clean_cache, swapped_metric)]:
    k = len(important)
    for n_candidates in (2 * k, 3 * k):
        found = filter_then_verify(model, tokens_, cache_, metric_, estimate, act, k, n_candidates)
        print(f"{name}: top {k} of the exact sweep {top_k(exact, k)}; AtP's top {n_candidates} verified exactly: "
              f"{found} -> {'the same' if set(found) == set(top_k(exact, k)) else 'not the same'} "
              f"({n_candidates} forward passes instead of {exact.numel()})")

# %% [markdown]
# For positions, the filter finds the exact sweep's top entries from a short list. For heads it needs a longer one:
# the head whose estimate is furthest off (a layer-1 head, estimated near 0) ranks low, and only a long enough list of
# candidates lets the exact patches put it back. The rule of thumb: the more nonlinear the path (attention, MLPs
# after the patch), the longer the list to verify.
#
# ## Summary
#
# - **Activation patching** localises: by position (the names, then `END` after the first layer), by block and by
#   head; patching `q`, `k`, `v` and the pattern separately tells which part of a head carries the information.
# - **A faster engine** returns exactly the library's numbers: fold the patches into the batch, start at the patched
#   layer, skip the patches that change nothing.
# - **Attention, copying scores and attention-role scores** say what the heads do; **path patching** separates
#   direct effects from effects through other heads' queries, keys and values; **direct logit attribution** says
#   what each head and MLP writes to the logits itself.
# - **Mean ablation per frame** tests the circuit as a whole: the heads you found keep most of the logit difference
#   on their own.
# - **Attribution patching** estimates every patch from one forward and one backward pass; it is a filter (wrong where
#   the path is nonlinear: saturated attention, MLPs after the patch), so its top candidates are verified exactly.
#
# Next: **Chapter 6**, sparse autoencoders.
