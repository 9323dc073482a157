# %% [markdown]
# # Chapter 2 — Activation caching: reading a model's mind, one activation at a time
#
# A forward pass computes hundreds of intermediate tensors: the residual stream before and after every
# layer, every head's queries, keys, values and attention pattern, the final LayerNorm's scale. Normally
# they are thrown away as soon as the next layer has used them. **Caching** keeps them, so that we can ask
# questions like *"where does this head look?"* and *"which layer first makes the model prefer ` Mary`?"*.
#
# In TransformerLens, one call does it:
#
# ```python
# logits, cache = model.run_with_cache(tokens)
# cache["pattern", 0]          # layer 0's attention patterns, [batch, head, dest, src]
# ```
#
# In this chapter you will
#
# 1. look around an `ActivationCache`: its keys, shapes and the shorthand `cache["pattern", layer]`;
# 2. recompute an attention pattern from the cached queries and keys (and get exactly the cache's value);
# 3. write detectors for three kinds of attention heads (current-token, previous-token, first-token);
# 4. use the cache's residual-stream tools (`accumulated_resid`, `decompose_resid`, `stack_head_results`,
#    `apply_ln_to_stack`) for a **logit lens** and for **direct logit attribution**: how much each layer and
#    each head pushes the model towards the right answer of an indirect-object sentence.
#
# We work with the course's shipped model `attn2l`: a tiny **2-layer, attention-only** transformer trained
# on generated English-like text (people, places, objects, and sentences such as *"When Mary and John went to
# the store, John gave a drink to Mary"*), with a 2048-token byte-level BPE tokenizer. It runs offline on a
# laptop CPU in milliseconds. When you are online, `MODEL_NAME = "gpt2-small"` runs the same code on GPT-2
# small (12 layers); the numbers will differ, which is the point of looking.

# %% tags=["module"]
import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer

# %% [markdown]
# ## 1. `run_with_cache` and the cache's keys
#
# Load the model and run it on one sentence. `run_with_cache` returns the logits (as `model(tokens)` would)
# and an `ActivationCache`, a dictionary from *hook names* to tensors.

# %%
import circuitsvis as cv
import plotly.express as px
from IPython.display import display
from transformer_lens.utilities import get_act_name

from utils.models import load_model
from utils.plotting import expect, layer_head_heatmap

MODEL_NAME = "attn2l"  # the shipped 2-layer attention-only model; "gpt2-small" works when you are online
model = load_model(MODEL_NAME, device=device)
print(model.cfg.n_layers, "layers,", model.cfg.n_heads, "heads per layer, d_model =", model.cfg.d_model,
      ", d_head =", model.cfg.d_head, ", attn_only =", model.cfg.attn_only)

text = "When Mary and John went to the store, John gave a drink to"
tokens = model.to_tokens(text)  # [1, pos], with the BOS token first
str_tokens = model.to_str_tokens(text)
logits, cache = model.run_with_cache(tokens)
print(str_tokens)
print("top 5 next tokens:", [model.to_string(t) for t in logits[0, -1].topk(5).indices])

# %% [markdown]
# Every key is the name of a **hook point**: a place in the forward pass where an activation flows past.
# Their shapes tell you what each one is (`pos` = 15 tokens here, including BOS):

# %%
for name, activation in cache.items():
    print(f"{name:32} {tuple(activation.shape)}")

# %% [markdown]
# The names follow one pattern: `blocks.{layer}.{module}.hook_{name}`. Instead of typing them, use the
# shorthand `cache[name, layer]`, which is the same as `cache[get_act_name(name, layer)]`:
#
# | shorthand | full name | shape |
# |---|---|---|
# | `cache["resid_pre", 1]` | `blocks.1.hook_resid_pre` | `[batch, pos, d_model]` — entering layer 1 |
# | `cache["resid_post", 1]` | `blocks.1.hook_resid_post` | `[batch, pos, d_model]` — leaving layer 1 |
# | `cache["q", 0]`, `"k"`, `"v"`, `"z"` | `blocks.0.attn.hook_q` … | `[batch, pos, head, d_head]` |
# | `cache["pattern", 0]` | `blocks.0.attn.hook_pattern` | `[batch, head, dest, src]` (after softmax) |
# | `cache["attn_scores", 0]` | `blocks.0.attn.hook_attn_scores` | `[batch, head, dest, src]` (before softmax) |
# | `cache["attn_out", 0]` | `blocks.0.hook_attn_out` | `[batch, pos, d_model]` — what the layer adds |
# | `cache["scale"]` | `ln_final.hook_scale` | `[batch, pos, 1]` — the final LayerNorm's divisor |
#
# Models with MLPs also have `resid_mid` (between attention and MLP), `mlp_out`, and `pre`/`post` (the MLP's
# hidden activations). Our model is attention-only, so each layer simply adds its `attn_out`:
# `resid_post = resid_pre + attn_out` (`+ mlp_out` with MLPs). Let us check that, and that layer 0's output
# is layer 1's input.

# %%
assert cache["pattern", 0] is cache["blocks.0.attn.hook_pattern"] is cache[get_act_name("pattern", 0)]
mlp_out = 0 if model.cfg.attn_only else cache["mlp_out", 0]
print(torch.allclose(cache["resid_post", 0], cache["resid_pre", 0] + cache["attn_out", 0] + mlp_out, atol=1e-4))
print(torch.equal(cache["resid_post", 0], cache["resid_pre", 1]))

# %% [markdown]
# **Caching only what you need.** A full cache of a big model on a long batch can take gigabytes.
# `names_filter` (a list of names, or a function from name to bool) keeps only some activations:

# %%
_, small_cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
print(list(small_cache.keys()))

# %% [markdown]
# **Per-head outputs.** By default the cache holds `z` (each head's weighted sum of values) but not each
# head's *output* in the residual stream (`z @ W_O`), since that is `n_heads` times bigger than `attn_out`.
# `model.set_use_attn_result(True)` adds `cache["result", layer]` (`[batch, pos, head, d_model]`); switch it
# off again afterwards. Summing the heads' results (plus the bias `b_O`) gives back `attn_out`:

# %%
model.set_use_attn_result(True)
_, result_cache = model.run_with_cache(tokens)
model.set_use_attn_result(False)
result = result_cache["result", 0]
print(tuple(result.shape), torch.allclose(result.sum(dim=2) + model.b_O[0], cache["attn_out", 0], atol=1e-5))

# %% [markdown]
# ## 2. An attention pattern from the cached queries and keys
#
# The cache lets us check our understanding of the model *exactly*. Each head's pattern is computed from
# `q = cache["q", layer]` and `k = cache["k", layer]` (both `[batch, pos, head, d_head]`):
#
# 1. scores: `q · k / sqrt(d_head)` for every (dest, src) pair of positions;
# 2. causal mask: a token may not look at later tokens, so scores with `src > dest` become `-inf`;
# 3. softmax over `src`, so each destination's attention sums to 1.
#
# (You wrote these steps on random tensors in Chapter 0; now the output must match the real model.)

# %%
def attention_pattern_from_qk(
    q: Float[Tensor, "batch pos head d_head"], k: Float[Tensor, "batch pos head d_head"]
) -> Float[Tensor, "batch head dest src"]:
    """The causal attention pattern of every head, computed from cached queries and keys.

    Must equal `cache["pattern", layer]` when given `cache["q", layer]` and `cache["k", layer]`.
    """
    # SOLUTION
    d_head, n_pos = q.shape[-1], q.shape[1]
    scores = einops.einsum(q, k, "batch dest head d_head, batch src head d_head -> batch head dest src")
    future = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool, device=q.device), diagonal=1)
    return (scores / d_head**0.5).masked_fill(future, float("-inf")).softmax(dim=-1)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Three steps: `einops.einsum` of `q` and `k` over `d_head` into `batch head dest src`, divided by
# `sqrt(d_head)`; `-inf` on the future (`src > dest`, strictly above the diagonal: `torch.triu` with
# `diagonal=1`); softmax over `src`, the last dimension.

# %%
for layer in range(model.cfg.n_layers):
    mine = attention_pattern_from_qk(cache["q", layer], cache["k", layer])
    print(f"layer {layer}: max difference from the cache {(mine - cache['pattern', layer]).abs().max():.2e}")

# %% [markdown]
# ## 3. Looking at attention, and detecting head types
#
# Numbers are hard to read; pictures of attention are easy. `circuitsvis` draws one pattern per head:
# hover over a token to see where it looks (dest → src).

# %%
for layer in range(model.cfg.n_layers):
    print(f"Layer {layer}")
    display(cv.attention.attention_patterns(tokens=str_tokens, attention=cache["pattern", layer][0]))

# %% [markdown]
# Some heads have a simple, recognisable habit:
#
# - **current-token heads** attend mostly to the destination token itself (the diagonal of the pattern);
# - **previous-token heads** attend to the token just before (the sub-diagonal, `src = dest - 1`);
# - **first-token heads** attend to the first token, BOS (column 0). BOS is a convenient "nowhere": a head
#   that has nothing useful to do at a position parks its attention there.
#
# A detector turns a habit into a number: the **mean attention** on the diagonal (or sub-diagonal, or first
# column), averaged over the batch and over the positions of that diagonal. A head whose score is above a
# threshold gets reported as `"layer.head"`, e.g. `"0.1"` for head 1 of layer 0. Write the three detectors;
# return the heads in order (layer by layer, head by head). `Tensor.diagonal(offset, dim1=-2, dim2=-1)`
# takes a diagonal of the last two dimensions (`offset=-1` is the one below the main diagonal).

# %%
def current_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose mean attention to the current token (the diagonal) is above `threshold`."""
    # SOLUTION
    heads = []
    n_layers, n_heads = cache.model.cfg.n_layers, cache.model.cfg.n_heads
    for layer in range(n_layers):
        pattern = cache["pattern", layer]  # [batch, head, dest, src]
        for head in range(n_heads):
            score = pattern[:, head].diagonal(dim1=-2, dim2=-1).mean()
            if score > threshold:
                heads.append(f"{layer}.{head}")
    return heads
    # END SOLUTION


# %% [markdown] tags=["hint"]
# For each layer take `cache["pattern", layer]` (`[batch, head, dest, src]`). A head's score is the mean of
# its main diagonal over the last two dimensions (`Tensor.diagonal(dim1=-2, dim2=-1)`), averaged over the
# batch too. Keep the heads above the threshold as `f"{layer}.{head}"`, layer by layer.

# %%
def prev_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose mean attention to the previous token (the sub-diagonal) is above `threshold`."""
    # SOLUTION
    heads = []
    n_layers, n_heads = cache.model.cfg.n_layers, cache.model.cfg.n_heads
    for layer in range(n_layers):
        pattern = cache["pattern", layer]
        for head in range(n_heads):
            score = pattern[:, head].diagonal(offset=-1, dim1=-2, dim2=-1).mean()
            if score > threshold:
                heads.append(f"{layer}.{head}")
    return heads
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The same loop as `current_attn_detector`, with the diagonal just *below* the main one (a negative `offset`):
# its entry `i` is the attention from position `i + 1` to position `i`. That diagonal has `pos - 1` entries, and
# the score is their mean (not their sum divided by `pos`). Above the diagonal the causal mask makes everything
# zero.

# %%
def first_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose mean attention to the first token (column 0, all destinations) is above
    `threshold`."""
    # SOLUTION
    heads = []
    n_layers, n_heads = cache.model.cfg.n_layers, cache.model.cfg.n_heads
    for layer in range(n_layers):
        pattern = cache["pattern", layer]
        for head in range(n_heads):
            score = pattern[:, head, :, 0].mean()
            if score > threshold:
                heads.append(f"{layer}.{head}")
    return heads
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The score is the mean of *column* 0 of a head's pattern: the attention that every destination position pays
# to the first source position, averaged over batch and over *all* destinations, destination 0 included (its
# attention is always entirely on itself, 1.0: the detector does not leave it out).

# %% [markdown]
# Let us run the detectors on a batch of sentences from the model's world, and print every head's three
# scores so that you can judge the threshold yourself.

# %%
sentences = [  # four sentences of 16 tokens each (BOS included), so no padding is needed
    "Then, Tom and James went to the park. James gave a ball to",
    "Friends Lisa and Paul found a book at the market. Paul gave it to",
    "The small cat slept on the warm chair in the kitchen.",
    "The old man sat in the garden and read a long letter.",
]
text_tokens = model.to_tokens(sentences)
assert all(len(model.to_str_tokens(s)) == text_tokens.shape[1] for s in sentences)
_, text_cache = model.run_with_cache(text_tokens)
print("current-token heads:", current_attn_detector(text_cache))
print("previous-token heads:", prev_attn_detector(text_cache))
print("first-token heads:  ", first_attn_detector(text_cache))
for layer in range(model.cfg.n_layers):
    pattern = text_cache["pattern", layer]
    for head in range(model.cfg.n_heads):
        p = pattern[:, head]
        print(f"  {layer}.{head}: current {p.diagonal(dim1=-2, dim2=-1).mean():.2f}  "
              f"previous {p.diagonal(-1, dim1=-2, dim2=-1).mean():.2f}  first {p[:, :, 0].mean():.2f}  "
              f"(first from destination 1 on: {p[:, 1:, 0].mean():.2f})")

# %% [markdown]
# Read the lists and the scores. On the shipped model each detector finds at least one head: the
# previous-token and current-token heads sit in layer 0, and the first-token heads in layer 1 (they park on
# BOS wherever they have nothing to move; section 6 shows what they do when they do have something). Look at
# how far above the threshold each head is, too. Every first-token score includes destination 0, the BOS token
# attending to itself (always 1.0, one of the 16 destinations averaged); counted from destination 1 on (the last
# number printed), one of the two layer-1 heads falls below 0.4: it passes only just, thanks to BOS. Real
# heads are rarely pure: a head can be a previous-token head on ordinary text and do something else on names. The
# threshold is a choice, not a law of nature; look at the patterns above before you trust a detector. (We
# chose sentences of equal length on purpose: `to_tokens` pads shorter prompts at the end, and padding
# positions would enter the averages.)

# %% [markdown]
# ## 4. An indirect-object task and the logit difference
#
# In *"When Mary and John went to the store, John gave a drink to"*, the right next word is ` Mary`: the
# name that is *not* repeated (the **indirect object**, IO), rather than ` John` (the **subject**, S). This
# is the **IOI** task; Chapter 5 comes back to it with activation patching. The training text of
# `attn2l` is full of such sentences, in both name orders (ABBA: IO first, "Mary and John … John";
# BABA: S first, "John and Mary … John").
#
# A clean metric for "does the model know?" is the **logit difference** between the correct and the
# incorrect name at the last position. It ignores everything else in the vocabulary and, unlike a
# probability, is linear in the residual stream, which makes it easy to split into parts (section 6).
#
# First we need names that are **single tokens** (with their leading space) for this tokenizer:

# %%
candidates = ["Mary", "John", "Tom", "James", "Lisa", "Paul", "Sarah", "Dan", "Victoria", "Zebedee"]
for name in candidates:
    print(f"{name!r:12} -> {model.to_str_tokens(' ' + name, prepend_bos=False)}")

# %% [markdown]
# We build 8 prompts from one template with `utils.data.ioi_dataset`, the course's IOI dataset (chapter 5 uses it
# too): four pairs of names, each pair twice, once with each name as the subject. So each name is the right
# answer once and the wrong answer once (a bias towards a particular name cancels in the average), and the two
# name orders alternate: ABBA at even indices, BABA at odd ones. `answer_tokens[i] = (correct, incorrect)`, and
# all prompts have the same number of tokens, so they fit in one batch without padding.

# %% tags=["module"]
IOI_TEMPLATE = "When {N1} and {N2} went to the {place}, {S} gave a {object} to"
IOI_PAIRS = [("Mary", "John"), ("Tom", "James"), ("Lisa", "Paul"), ("Sarah", "Dan")]
HELD_OUT_PAIRS = [("Victoria", "Arthur"), ("Simon", "Hannah"), ("Oliver", "Rachel")]

# %%
from utils.data import ioi_dataset

ioi = ioi_dataset(model, [IOI_TEMPLATE], pairs=IOI_PAIRS)
prompts, answer_tokens, ioi_tokens = ioi.prompts, ioi.answer_tokens, ioi.tokens
answers = [(" " + io, " " + s) for io, s in zip(ioi.io_names, ioi.s_names)]
ioi_logits, ioi_cache = model.run_with_cache(ioi_tokens)
print(prompts[0], "->", answers[0])
print(prompts[1], "->", answers[1])

# %%
def logits_to_ave_logit_diff(
    logits: Float[Tensor, "batch pos d_vocab"],
    answer_tokens: Int[Tensor, "batch 2"],
    per_prompt: bool = False,
) -> Float[Tensor, "*batch"]:
    """Logit of the correct answer minus logit of the incorrect one, at the last position.

    `answer_tokens[:, 0]` are the correct tokens, `answer_tokens[:, 1]` the incorrect ones. Returns the mean
    over the batch (a 0-dim tensor), or one value per prompt (shape `[batch]`) when `per_prompt` is True.
    """
    # SOLUTION
    final_logits = logits[:, -1, :]  # [batch, d_vocab]
    answer_logits = final_logits.gather(dim=-1, index=answer_tokens)  # [batch, 2]
    diff = answer_logits[:, 0] - answer_logits[:, 1]
    return diff if per_prompt else diff.mean()
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Only the last position's logits matter. `gather` along the vocabulary with `answer_tokens` picks each
# prompt's two answer logits (`[batch, 2]`); take correct minus incorrect, and average over the batch unless
# `per_prompt`.

# %%
per_prompt = expect(logits_to_ave_logit_diff(ioi_logits, answer_tokens, per_prompt=True),
                    "logits_to_ave_logit_diff", shape=(len(prompts),), names="batch")
print(f"mean logit difference: {logits_to_ave_logit_diff(ioi_logits, answer_tokens):.3f}")
wrong = [prompts[i] for i in range(len(prompts)) if per_prompt[i] <= 0]
print(f"{len(prompts) - len(wrong)} of {len(prompts)} prompts prefer the indirect object; the others: {wrong}")
px.bar(x=[f"{i}: {'ABBA' if i % 2 == 0 else 'BABA'} {a[0]}" for i, a in enumerate(answers)],
       y=per_prompt, labels=dict(x="prompt", y="logit(correct) - logit(incorrect)"),
       title="Logit difference per prompt (positive = prefers the indirect object)").show()
for i, prompt in enumerate(prompts[:4]):
    print(f"{prompt!r} -> top 3: {[model.to_string(t) for t in ioi_logits[i, -1].topk(3).indices]}")

# %% [markdown]
# **Read the bar chart before you read on.** Is `attn2l` solving IOI? On the shipped model most bars are
# positive and large, in both name orders, and the mean logit difference is several logits (both printed
# above, with any prompt it gets wrong): on these sentences the model clearly prefers the indirect object.
#
# Do not conclude too fast that it has learned *the rule*. These names and this template occur in IOI
# sentences of its training text. A fair test uses names that never appeared in an IOI sentence during
# training (they do appear in other sentences, so the model knows them as names):

# %%
held_out = ioi_dataset(model, [IOI_TEMPLATE], pairs=HELD_OUT_PAIRS)
held_out_diff = logits_to_ave_logit_diff(model(held_out.tokens), held_out.answer_tokens, per_prompt=True)
print("held-out names, per prompt:", held_out_diff.detach().cpu().numpy().round(2))
print(f"mean: {held_out_diff.mean():.2f}")
for order, diffs in [("ABBA", held_out_diff[0::2]), ("BABA", held_out_diff[1::2])]:
    print(f"{order}: {int((diffs > 0).sum())} of {len(diffs)} prefer the indirect object (mean {diffs.mean():.2f})")

# %% [markdown]
# Compare with the training names: on held-out names the mean is near zero, and not at random. The ABBA
# prompts score higher than the BABA prompts (the two lines above): on names it has not seen in this role,
# the model leans towards "say the *first* name of the sentence", which is right for ABBA and wrong for BABA.
# Its model card (`models/attn2l/README.md`, the row "held-out names x held-out frames") measures held-out names
# *and* sentence frames: close to chance. A two-layer attention-only model has little room for
# the general algorithm; what it has learned is partly tied to the names it saw in this role. That is still
# a real computation inside the model, and the tools below show *where* it happens: for the rest of the
# chapter we study the prompts with training names, which it mostly gets right.

# %% [markdown]
# ## 5. The logit lens: what the model "thinks" after each layer
#
# The residual stream is a sum: `resid_post` of the last layer = embedding + positional embedding + each
# layer's output. The final LayerNorm and the unembedding turn it into logits. The **logit lens** applies
# that same read-out to the *partial* sums: after 0 layers (just the embeddings), after layer 0, after
# layer 1 … to see when the answer appears.
#
# `cache.accumulated_resid(layer=None, pos_slice=-1, apply_ln=True)` gives the partial sums at the last
# position, `[component, batch, d_model]` with labels `0_pre, 1_pre, …, final_post`, each passed through the
# final LayerNorm *as if it were the final stream* (TransformerLens recomputes the normalization for each
# partial sum here: a partial sum is much smaller than the full stream, and the read-out expects a
# normalized vector).
#
# Write `logit_lens`: for each component and prompt, the logit of that prompt's answer token
# (`answer_tokens[b]`), i.e. `normalized_resid @ W_U[:, answer] + b_U[answer]`. With the bias included, the
# last component is exactly the model's real logit.

# %%
def logit_lens(
    model: HookedTransformer, cache: ActivationCache, answer_tokens: Int[Tensor, "batch"]
) -> Float[Tensor, "component batch"]:
    """The logit of each prompt's answer token at the last position, read from the residual stream after
    0, 1, ..., n_layers layers (via `cache.accumulated_resid(..., apply_ln=True)` and the unembedding)."""
    # SOLUTION
    resid = cache.accumulated_resid(layer=None, pos_slice=-1, apply_ln=True)  # [component, batch, d_model]
    W_U_answer = model.W_U[:, answer_tokens]  # [d_model, batch]
    logits = einops.einsum(resid, W_U_answer, "component batch d_model, d_model batch -> component batch")
    return logits + model.b_U[answer_tokens]
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `cache.accumulated_resid` with `layer=None` (every layer, down to the final stream), `pos_slice=-1` and
# `apply_ln=True` gives the normalized partial sums, `[component, batch, d_model]`. Read each prompt with its
# *own* answer's column of `W_U` (an einsum that keeps `batch`) and add that answer's `b_U`.

# %%
labels = cache.accumulated_resid(layer=None, pos_slice=-1, return_labels=True)[1]
lens_shape = (len(labels), len(prompts))  # [component, batch]
lens_correct = expect(logit_lens(model, ioi_cache, answer_tokens[:, 0]), "logit_lens", shape=lens_shape,
                      names="component batch")
lens_incorrect = expect(logit_lens(model, ioi_cache, answer_tokens[:, 1]), "logit_lens", shape=lens_shape,
                        names="component batch")
print("last component = real logits:",
      torch.allclose(lens_correct[-1], ioi_logits[:, -1].gather(-1, answer_tokens[:, :1])[:, 0].cpu(), atol=1e-4))
lens_diff = lens_correct - lens_incorrect
print("mean logit difference after each stage:",
      {label: round(value, 2) for label, value in zip(labels, lens_diff.mean(-1).tolist())})
px.line(x=labels, y=[lens_correct.mean(-1), lens_incorrect.mean(-1), lens_diff.mean(-1)],
        labels=dict(x="residual stream after", value="logit (mean over prompts)"),
        title="Logit lens on the IOI prompts", markers=True).update_traces(
    selector=0, name="correct (IO)").update_traces(selector=1, name="incorrect (S)").update_traces(
    selector=2, name="difference").show()

# %% [markdown]
# At `0_pre` the stream holds only the current token (` to`) and its position, the same in every prompt;
# since each name is the correct answer once and the incorrect one once, the two curves start at exactly the
# same value. Whatever separates them was moved to the last position by attention. On the shipped model they
# have barely separated after layer 0 (`1_pre`) and are far apart after the last layer (the printed
# differences): the decision is made in the last layer. (The logits also grow overall: a later stream is more
# confident that *some* name comes next.)

# %% [markdown]
# ## 6. Direct logit attribution
#
# Because the logit difference is linear in the (normalized) residual stream, we can ask how much each
# *piece* of the stream contributes to it. The **logit-difference direction** of a prompt is
# `W_U[:, correct] - W_U[:, incorrect]`; `model.tokens_to_residual_directions(answer_tokens)` returns the
# unembedding columns (`[batch, 2, d_model]`). Projecting a normalized piece of the residual stream on this
# direction gives that piece's direct contribution to the logit difference.
#
# There is one subtlety. The final LayerNorm divides the *whole* stream by its norm (its "scale", cached as
# `cache["ln_final.hook_scale"]`). To split the logit difference exactly into pieces, every piece must be
# divided by that **same** cached scale, not normalized on its own as the logit lens did:
# `cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1)` does this (it centres each piece and divides by
# the final stream's scale at the last position). Then the pieces' contributions add up to the total.
#
# Write `residual_stack_to_logit_diff`: take a stack of residual-stream pieces at the final position
# (`[..., batch, d_model]`, any number of leading dimensions), apply the final LayerNorm's cached scale with
# `cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1)`, project each prompt's piece on that prompt's
# direction and average over the batch.

# %%
def residual_stack_to_logit_diff(
    residual_stack: Float[Tensor, "... batch d_model"],
    cache: ActivationCache,
    logit_diff_directions: Float[Tensor, "batch d_model"],
) -> Float[Tensor, "..."]:
    """The average (over the batch) direct contribution of each piece of the residual stream, at the final
    position, to the logit difference, after the final LayerNorm (using the cached scale)."""
    # SOLUTION
    batch_size = residual_stack.shape[-2]
    scaled = cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)
    return einops.einsum(scaled, logit_diff_directions, "... batch d_model, batch d_model -> ...") / batch_size
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Scale the stack with the cached final LayerNorm scale (`cache.apply_ln_to_stack` at the last layer and
# position), then take each prompt's dot product with its own direction over `d_model` (an einsum with `...`
# for the leading dimensions) and average over the batch.

# %% [markdown]
# Sanity check: the whole final residual stream must give back the model's logit difference, up to the
# unembedding bias, which `W_U` directions do not see (`b_U[correct] - b_U[incorrect]`, averaged):

# %%
answer_residual_directions = model.tokens_to_residual_directions(answer_tokens)  # [batch, 2, d_model]
logit_diff_directions = answer_residual_directions[:, 0] - answer_residual_directions[:, 1]
final_resid = ioi_cache["resid_post", -1][:, -1]  # [batch, d_model]
bias_diff = (model.b_U[answer_tokens[:, 0]] - model.b_U[answer_tokens[:, 1]]).mean()
print(f"from the residual stream: {residual_stack_to_logit_diff(final_resid, ioi_cache, logit_diff_directions):.4f}"
      f" + bias {bias_diff:.4f}")
print(f"from the logits:          {logits_to_ave_logit_diff(ioi_logits, answer_tokens):.4f}")

# %% [markdown]
# The same function on two different stacks: the **accumulated** stream (another logit lens, now on the
# difference) and the **decomposed** stream (`embed`, `pos_embed`, and each layer's `attn_out`), whose
# pieces add up to the final stream.

# %%
accumulated, acc_labels = ioi_cache.accumulated_resid(layer=-1, pos_slice=-1, return_labels=True)
decomposed, dec_labels = ioi_cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
acc_diff = expect(residual_stack_to_logit_diff(accumulated, ioi_cache, logit_diff_directions),
                  "residual_stack_to_logit_diff", shape=(len(acc_labels),), names="component")
dec_diff = expect(residual_stack_to_logit_diff(decomposed, ioi_cache, logit_diff_directions),
                  "residual_stack_to_logit_diff", shape=(len(dec_labels),), names="component")
print("accumulated:", {label: round(value, 3) for label, value in zip(acc_labels, acc_diff.tolist())})
print("decomposed: ", {label: round(value, 3) for label, value in zip(dec_labels, dec_diff.tolist())})
px.bar(x=dec_labels, y=dec_diff, labels=dict(x="component", y="logit difference"),
       title="Direct contribution of each component to the IOI logit difference").show()

# %% [markdown]
# Now split each layer further, into its heads. `cache.stack_head_results(layer=-1, pos_slice=-1)` stacks
# every head's output at the last position (`[layer * head, batch, d_model]`, labels `L0H0, L0H1, …`); it
# computes them from `z` and `W_O` if the cache has no `result` (so no need for `set_use_attn_result` here).
# Write `head_direct_logit_attribution`, returning a `[layer, head]` table.

# %%
def head_direct_logit_attribution(
    model: HookedTransformer, cache: ActivationCache, logit_diff_directions: Float[Tensor, "batch d_model"]
) -> Float[Tensor, "layer head"]:
    """Each head's average direct contribution to the logit difference at the final position."""
    # SOLUTION
    per_head = cache.stack_head_results(layer=-1, pos_slice=-1)  # [layer * head, batch, d_model]
    dla = residual_stack_to_logit_diff(per_head, cache, logit_diff_directions)  # [layer * head]
    return einops.rearrange(dla, "(layer head) -> layer head", layer=model.cfg.n_layers)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `cache.stack_head_results` gives every head's output at the last position, layer by layer (`L0H0, L0H1, …`).
# Pass it through `residual_stack_to_logit_diff` and reshape the flat `[layer * head]` result into `[layer,
# head]`: the layer is the outer factor.

# %%
head_dla = expect(head_direct_logit_attribution(model, ioi_cache, logit_diff_directions),
                  "head_direct_logit_attribution", shape=(model.cfg.n_layers, model.cfg.n_heads), names="layer head")
layer_head_heatmap(head_dla, color="logit diff",
                   title="Direct logit attribution of each head (mean over the IOI prompts)").show()
print("sum over heads:", f"{head_dla.sum():.3f}", " layers' attn_out:", dec_diff[2:].numpy().round(3))
top_layer, top_head = divmod(int(head_dla.argmax()), model.cfg.n_heads)
print(f"of the total {dec_diff.sum():.2f}: the last layer's attn_out {dec_diff[-1]:.2f}; the largest head, "
      f"{top_layer}.{top_head}, {head_dla.max():.2f}")

# %% [markdown]
# A layer's heads plus its output bias `b_O` (which belongs to no head) add up to that layer's `attn_out`
# contribution. On the shipped model almost all of the logit difference comes directly from the last layer,
# the largest share from one of its heads (both printed above). A head that writes a name into the logits
# should *attend* to that name from the last token. Where do the last layer's heads look from the final
# ` to`, in the first two prompts?

# %%
last = model.cfg.n_layers - 1
for i in range(2):
    prompt_tokens = model.to_str_tokens(prompts[i])
    last_row = ioi_cache["pattern", last][i, :, -1].detach().cpu()  # [head, src]
    fig = px.bar(x=[f"{j}:{t}" for j, t in enumerate(prompt_tokens)], y=list(last_row), barmode="group",
                 labels=dict(x="source token", value="attention from the last token"),
                 title=f"Layer {last} attention from the last token: {prompts[i]!r} (answer{answers[i][0]})")
    for head, trace in enumerate(fig.data):
        trace.name = f"head {last}.{head}"
    fig.show()
    io, s = answers[i]
    for head in range(model.cfg.n_heads):
        on_io = sum(last_row[head, j].item() for j, t in enumerate(prompt_tokens) if t == io)
        on_s = sum(last_row[head, j].item() for j, t in enumerate(prompt_tokens) if t == s)
        print(f"prompt {i}, head {last}.{head}: {on_io:.2f} of its attention on{io} (the answer), {on_s:.2f} "
              f"on{s} (the subject, both times)")

# %% [markdown]
# On the shipped model both last-layer heads look more at the **correct** name than at the subject, in both
# prompts (the printed attention: the answer is ` Mary` in the first prompt and ` John` in the second). They
# behave like the *name mover heads* of the IOI circuit found in GPT-2 small: attend to the
# indirect object, copy it to the output. How they know *which* name to attend to is a question about
# their queries and keys (and about layer 0), for the chapters on hooks and patching.
#
# Finally, split the table by name order (`ioi_cache` holds ABBA prompts at even and BABA prompts at odd
# indices). Do the same heads do the work in both orders?

# %%
print("all prompts\n", head_dla.detach().cpu().numpy().round(2))
for order, rows in [("ABBA", slice(0, None, 2)), ("BABA", slice(1, None, 2))]:
    _, order_cache = model.run_with_cache(ioi_tokens[rows])
    dla = head_direct_logit_attribution(model, order_cache, logit_diff_directions[rows]).detach().cpu()
    print(order, "\n", dla.numpy().round(2))

# %% [markdown]
# On the shipped model both last-layer heads help in both orders: on ABBA prompts one of them does most of
# the work, on BABA prompts the two share it, and there the model is also less sure (smaller bars in section
# 4). Layer 0 contributes less *directly* (its row of each table): each of its heads less than either
# last-layer head, in both orders. Less is not nothing, though: one layer-0 head pushes towards the answer in
# one order and away from it in the other, by similar amounts, so that it almost vanishes in the table over
# all prompts (printed first). An average can hide effects that cancel; split by condition before you conclude that a
# component does nothing. And a small *direct* effect does not mean that layer 0 does not matter: its job may
# be to prepare what the layer-1 heads attend to.
#
# ## Summary
#
# - `logits, cache = model.run_with_cache(tokens)` keeps every activation; `names_filter` keeps only some.
#   `cache["pattern", layer]` is shorthand for `cache[get_act_name("pattern", layer)]`.
# - The residual stream is a sum: `resid_post = resid_pre + attn_out` (+ `mlp_out` in models with MLPs).
#   `decompose_resid` gives the pieces, `accumulated_resid` the partial sums, `stack_head_results` each head's
#   piece (`cache["result", layer]` needs `model.set_use_attn_result(True)` before the run).
# - Cached activations let you *re-derive* the model's computations (the attention pattern from `q` and `k`)
#   and summarise heads (current / previous / first-token detectors).
# - The **logit lens** normalizes each partial sum (`accumulated_resid(..., apply_ln=True)`) and reads it
#   with `W_U`. **Direct logit attribution** divides every piece by the *same* cached final LayerNorm scale
#   (`apply_ln_to_stack`), which keeps the read-out linear, so the pieces add up to the total logit
#   difference.
# - Direct attribution only measures what a component writes *directly* to the logits. A head that helps
#   through a later head shows nothing here; Chapter 3 (hooks) and Chapter 5 (activation patching) measure
#   such effects by *changing* activations instead of reading them.
