# %% [markdown]
# # Chapter 4 — Induction heads: from attention patterns to weights and composition
#
# An **induction head** completes patterns: having seen `... A B ... A`, it predicts `B`. It is the simplest
# circuit that needs *two* attention layers working together, and the first one found to do in-context
# learning in real language models. In this chapter you will:
#
# 1. **find** it by its attention pattern, on sequences of random tokens repeated twice;
# 2. **confirm** it causally, by ablating heads and watching the loss on the second repeat;
# 3. **explain** it from the weights: the OV circuit that *copies*, the positional QK circuit of the
#    *previous-token head*, and the **K-composition** that wires the two together.
#
# We use the course's shipped 2-layer **attention-only** model `attn2l` (a few heads per layer, printed below;
# `d_model` 128, a context of 128 tokens, a 2048-token byte-level BPE vocabulary). It was trained offline on
# synthetic English-like text (people, places, objects, "When Mary and John went to the store, John gave a
# drink to" sentences) plus rows of random tokens repeated to fill the context — the data that makes
# induction general.
#
# **One setting, three models.** `MODEL_NAME` below picks the model; every other cell works unchanged. Try
# `"mlp4l"` (the shipped 4-layer model with MLPs, trained on the same data) and, when you are online,
# `"gpt2-small"` (12 layers; its induction heads sit in layers 5–7). In a deeper model the previous-token head
# and the induction head need not be in layers 0 and 1: the notebook finds their layers (`prev_layer`,
# `ind_layer`) and passes them to the functions that take them.
#
# Nothing in this chapter hard-codes a head: every head index is *computed* from the model.

# %% [markdown] tags=["learner"]
# **How to work:** replace each `raise NotImplementedError()` with your code, run the cell, then run the
# check cell under it. Hints and solutions are in the dropdowns below each check.

# %% tags=["module"]
import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, FactoredMatrix, HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

# %% [markdown]
# ## 0. The model
#
# `load_model` returns a `HookedTransformer` with the default processing of `from_pretrained`: the
# LayerNorm weights are folded into the next layer (`fold_ln`), the writing weights are centred, and the
# value biases are folded into `b_O`. So each LayerNorm is a plain "centre and divide by the norm", whose
# divisor is stored at `hook_scale`.

# %%
import circuitsvis as cv
import plotly.express as px
from IPython.display import display

from utils.models import load_model
from utils.plotting import expect, layer_head_heatmap

# %% tags=["parameters"]
MODEL_NAME = "attn2l"  # or "mlp4l" (shipped, 4 layers with MLPs), or "gpt2-small" when you are online

# %%
torch.set_grad_enabled(False)  # we only read the model in this chapter
model = load_model(MODEL_NAME, device=device)
print(model.cfg.n_layers, "layers,", model.cfg.n_heads, "heads of d_head", model.cfg.d_head,
      "| d_model", model.cfg.d_model, "| d_vocab", model.cfg.d_vocab, "| n_ctx", model.cfg.n_ctx)

prompt = "When Mary and John went to the store, John gave a drink to"
print(repr(model.generate(prompt, max_new_tokens=6, do_sample=False, verbose=False)))

# %% [markdown]
# ## 1. Repeated random tokens
#
# On ordinary text a model can predict many tokens from grammar and facts. To isolate *induction*, we feed
# it a sequence of **uniformly random tokens `r` followed by the same sequence again**, with a BOS token in
# front: `[BOS] + r + r`. On the first copy nothing is predictable: a uniform guess would lose `log(d_vocab)` nats
# per token; on the second copy, a model with induction heads predicts each next token by looking it up in the
# first copy.
#
# Draw `r` from the **non-special** tokens (skip `model.tokenizer.all_special_ids`, here `<|endoftext|>`)
# with `torch.randint(..., generator=generator)` so that a seeded generator makes the result reproducible,
# and return the tokens on the model's device (`model.cfg.device`) as `int64`.

# %%
def generate_repeated_tokens(
    model: HookedTransformer, seq_len: int, batch_size: int = 1, *, generator: torch.Generator | None = None
) -> Int[Tensor, "batch full_seq_len"]:
    """`[BOS] + r + r` for `batch_size` independent random sequences `r` of `seq_len` non-special tokens.

    Returns int64 tokens of shape `[batch_size, 1 + 2 * seq_len]` on `model.cfg.device`.
    """
    # SOLUTION
    special = set(model.tokenizer.all_special_ids)
    allowed = torch.tensor([t for t in range(model.cfg.d_vocab) if t not in special])
    r = allowed[torch.randint(0, len(allowed), (batch_size, seq_len), generator=generator)]
    bos = torch.full((batch_size, 1), model.tokenizer.bos_token_id)
    return torch.cat([bos, r, r], dim=1).to(model.cfg.device)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Make a tensor of the allowed ids (every id except `model.tokenizer.all_special_ids`), draw random *indices*
# into it with `torch.randint(..., generator=generator)`, and concatenate a BOS column, `r` and `r` again
# along the positions; move the result to `model.cfg.device`. The check verifies the structure (BOS column,
# repeated halves, no special tokens, rows that differ, the generator used), not particular values.

# %% [markdown]
# Now run the model on such tokens and keep the logits and the activation cache.

# %%
def run_and_cache_model_repeated_tokens(
    model: HookedTransformer, seq_len: int, batch_size: int = 1, *, generator: torch.Generator | None = None
) -> tuple[Int[Tensor, "batch full_seq_len"], Float[Tensor, "batch full_seq_len d_vocab"], ActivationCache]:
    """Generate `[BOS] + r + r` (with `generate_repeated_tokens` and the same `generator`), run the model with a
    cache.

    Returns `(tokens, logits, cache)`.
    """
    # SOLUTION
    tokens = generate_repeated_tokens(model, seq_len, batch_size, generator=generator)
    logits, cache = model.run_with_cache(tokens)
    return tokens, logits, cache
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Call `generate_repeated_tokens` once, passing `generator` on (the seed must still decide the tokens), and
# `model.run_with_cache` on the tokens it returned: the logits and the cache must belong to the tokens you return.

# %% [markdown]
# Let's look at the loss per position. Position `p` predicts token `p + 1`.

# %%
SEQ_LEN, BATCH = 50, 10
rep_tokens, rep_logits, rep_cache = run_and_cache_model_repeated_tokens(
    model, SEQ_LEN, BATCH, generator=torch.Generator().manual_seed(0))
log_probs = rep_logits.log_softmax(-1)[:, :-1].gather(-1, rep_tokens[:, 1:, None])[..., 0]
loss_by_pos = -log_probs.mean(0)
first_loss, second_loss = loss_by_pos[: SEQ_LEN].mean().item(), loss_by_pos[SEQ_LEN + 1:].mean().item()
log_d_vocab = torch.log(torch.tensor(model.cfg.d_vocab)).item()
first_entropy = -(rep_logits.softmax(-1) * rep_logits.log_softmax(-1)).sum(-1)[:, :SEQ_LEN].mean().item()
print(f"mean loss on the first copy: {first_loss:.2f} nats (a uniform guess: log d_vocab = {log_d_vocab:.2f}; "
      f"the entropy of the model's predictions there: {first_entropy:.2f})")
print(f"mean loss on the second copy: {second_loss:.2f} nats")
px.line(y=loss_by_pos.cpu(), labels=dict(x="position (predicting the next token)", y="loss (nats)"),
        title="Loss per position on [BOS] + r + r: the second copy is predictable").show()

# %% [markdown]
# The first copy costs *more* than a uniform guess. The model was trained on text: even on random tokens it
# spreads its bets less evenly than uniform (the entropy of its predictions is below `log(d_vocab)`), on tokens
# that would be plausible in text, so the random token that comes gets less than `1/d_vocab` on average. Being
# confidently wrong costs more than knowing nothing.

# %% [markdown]
# ## 2. Finding induction heads by their attention
#
# An induction head at a token in the second copy (position `q`, the same token as position `q - seq_len`)
# attends to the token *after* its earlier copy: position `q - seq_len + 1`. In the attention pattern
# `[query, key]` this is a **stripe parallel to the diagonal**, `seq_len - 1` below it. Look for it in
# the circuitsvis view below (hover a head), then measure it.

# %%
layer_for_view = model.cfg.n_layers - 1
display(cv.attention.attention_patterns(
    tokens=model.to_str_tokens(rep_tokens[0]), attention=rep_cache["pattern", layer_for_view][0]))

# %% [markdown]
# The **induction score** of a head is its mean attention, over the batch and over the query positions of
# the second copy (`q = seq_len + 1, ..., 2 * seq_len`), to the key `q - seq_len + 1`. Write a detector that
# returns the heads whose score is above `threshold`, as strings `"layer.head"` (e.g. `"1.3"`), layer by
# layer, in increasing head order. Read `seq_len` off the pattern's size.

# %%
def induction_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads (as `"layer.head"`) whose mean attention from each second-copy token to the token after its
    earlier copy is above `threshold`. `cache` comes from a run on `[BOS] + r + r` (with a batch dimension)."""
    # SOLUTION
    n_layers, n_heads = cache.model.cfg.n_layers, cache.model.cfg.n_heads
    found = []
    for layer in range(n_layers):
        pattern = cache["pattern", layer]  # [batch, head, query, key]
        seq_len = (pattern.shape[-1] - 1) // 2
        q = torch.arange(seq_len + 1, 2 * seq_len + 1, device=pattern.device)
        scores = pattern[:, :, q, q - seq_len + 1].mean(dim=(0, 2))
        found += [f"{layer}.{head}" for head in range(n_heads) if scores[head] > threshold]
    return found
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `seq_len` follows from the pattern's size (`1 + 2 * seq_len` positions). For the second copy's query
# positions, `seq_len + 1` to `2 * seq_len`, take the key one *after* the earlier copy, `q - seq_len + 1`
# (advanced indexing with two index tensors), and average over batch and queries. The key `q - seq_len` would
# be the copy itself: a duplicate-token head.

# %%
print("Induction heads (score > 0.4):", induction_attn_detector(rep_cache))

# %% [markdown]
# ## 3. Induction scores with hooks
#
# A cache stores *every* activation. When we only need one number per head, a **hook** is lighter: a
# function called on `hook_pattern` during the forward pass, which reads the pattern and writes the score
# into a tensor of our own. Use `model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(name_filter,
# hook_fn)])` where `name_filter = lambda name: name.endswith("hook_pattern")`; the hook gets
# `hook.layer()`. Keep the scores in a local tensor (no global store), created on the model's device.

# %%
def induction_scores(
    model: HookedTransformer, tokens: Int[Tensor, "batch full_seq_len"], seq_len: int
) -> Float[Tensor, "layer head"]:
    """The induction score of every head on `tokens = [BOS] + r + r` (`r` of length `seq_len`)."""
    # SOLUTION
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)
    q = torch.arange(seq_len + 1, 2 * seq_len + 1, device=tokens.device)

    def hook_fn(pattern: Float[Tensor, "batch head query key"], hook: HookPoint) -> None:
        scores[hook.layer()] = pattern[:, :, q, q - seq_len + 1].mean(dim=(0, 2))

    model.run_with_hooks(tokens, return_type=None,
                         fwd_hooks=[(lambda name: name.endswith("hook_pattern"), hook_fn)])
    return scores
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The detector's score, computed inside a hook on every `hook_pattern` (a name filter): the hook writes one
# score per head into row `hook.layer()` of a tensor created in your function. Only the second copy's queries
# count; the whole diagonal also holds two positions before it.

# %% [markdown]
# The heatmap shows which heads are induction heads. The previous-token score (attention from each
# position to the one before it) is computed the same way with a different offset; we compute it inline.

# %%
ind_scores = expect(induction_scores(model, rep_tokens, SEQ_LEN), "induction_scores",
                    shape=(model.cfg.n_layers, model.cfg.n_heads), names="layer head")
prev_pattern_scores = torch.stack([rep_cache["pattern", layer].diagonal(-1, -2, -1)[..., 1:].mean(dim=(0, 2))
                                   for layer in range(model.cfg.n_layers)]).cpu()
score_scale = dict(midpoint=None, colorscale="Blues", zmin=0, zmax=1)
layer_head_heatmap(ind_scores, title="Induction scores", **score_scale).show()
layer_head_heatmap(prev_pattern_scores, title="Previous-token scores", **score_scale).show()

# Computed, never hard-coded: the best induction head, and the best previous-token head in an earlier layer
# (the induction head can only read what earlier layers wrote).
ind_layer, ind_head = divmod(int(ind_scores.argmax()), model.cfg.n_heads)
assert ind_layer > 0, f"{MODEL_NAME}'s best induction score is in layer 0: this model has no induction circuit"
prev_layer, prev_head = divmod(int(prev_pattern_scores[:ind_layer].argmax()), model.cfg.n_heads)
print(f"top induction head: {ind_layer}.{ind_head} (score {ind_scores.max():.2f}); top previous-token head "
      f"before it: {prev_layer}.{prev_head} (score {prev_pattern_scores[prev_layer, prev_head]:.2f})")

# %% [markdown]
# Zoom into the two heads: the previous-token head draws the line just below the diagonal, the induction
# head the stripe `seq_len - 1` below it.

# %%
short = torch.cat([rep_tokens[:1, :16], rep_tokens[:1, 1:16]], dim=1)  # [BOS] + r[:15] + r[:15]
_, short_cache = model.run_with_cache(short)
display(cv.attention.attention_heads(
    tokens=model.to_str_tokens(short[0]),
    attention=torch.stack([short_cache["pattern", prev_layer][0, prev_head],
                           short_cache["pattern", ind_layer][0, ind_head]]),
    attention_head_names=[f"{prev_layer}.{prev_head} previous-token", f"{ind_layer}.{ind_head} induction"]))

# %% [markdown]
# ## 4. Causal evidence: ablating heads
#
# Attention patterns are correlational. To see which heads *matter*, zero one head's output (`hook_z`) and
# measure the loss on the second copy. A demo, with a small hook:

# %%
def second_copy_loss(model, tokens, seq_len, fwd_hooks=()):
    logits = model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks))
    logp = logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    return -logp[:, seq_len + 1:].mean().item()


def zero_head_hook(head):
    def hook(z, hook):
        z[:, :, head] = 0.0
        return z
    return hook


ablated = torch.tensor([[second_copy_loss(model, rep_tokens, SEQ_LEN, [(get_act_name("z", layer), zero_head_hook(h))])
                         for h in range(model.cfg.n_heads)] for layer in range(model.cfg.n_layers)])
print(f"second-copy loss, clean: {second_loss:.2f}")
layer_head_heatmap(ablated - second_loss, color="Δ loss", midpoint=None, colorscale="Reds",
                   title="Increase in second-copy loss when one head is zero-ablated").show()

# %% [markdown]
# Which heads matter? The induction heads, as expected, and the previous-token head before them: without it
# the induction heads have nothing to look for, and the second copy becomes as unpredictable as the first.
# In `attn2l` the *other* layer-0 head matters too; sections 7–8 show what it contributes. Where several
# induction heads share the work, ablating one hurts much less than ablating all of them together.
# (Zero-ablation pushes the model off its usual activations, so a loss *above* the first copy's is possible;
# what matters is that the second copy's advantage is gone.)

# %%
induction_heads = [tuple(map(int, name.split("."))) for name in induction_attn_detector(rep_cache)]
hooks = [(get_act_name("z", layer), zero_head_hook(h)) for layer, h in induction_heads]
all_ablated = second_copy_loss(model, rep_tokens, SEQ_LEN, hooks)
print(f"all detected induction heads ablated: second-copy loss {all_ablated:.2f} "
      f"(clean {second_loss:.2f}, first copy {first_loss:.2f})")
print(f"previous-token head {prev_layer}.{prev_head} ablated: second-copy loss {ablated[prev_layer, prev_head]:.2f}")
print("heads whose ablation adds more than 1 nat:",
      [f"{layer}.{h}" for layer, h in (ablated - second_loss > 1).nonzero().tolist()])

# %% [markdown]
# ## 5. Direct logit attribution
#
# In an attention-only model the final residual stream is a **sum**: the embeddings, plus each head's
# output. The logits are linear in it (after the final LayerNorm's division by its scale), so each term's
# contribution to the logit of the *correct next token* can be read off with a dot product with the
# unembedding column `W_U[:, tokens[p + 1]]`.
#
# Write `logit_attribution`: for each position `p < seq - 1`, the contribution of the direct path (`embed`)
# and of each head of the two layers to the logit of `tokens[p + 1]`. Output columns: `[direct, layer-0
# heads..., layer-1 heads...]`.

# %%
def logit_attribution(
    embed: Float[Tensor, "seq d_model"],
    l1_results: Float[Tensor, "seq n_heads d_model"],
    l2_results: Float[Tensor, "seq n_heads d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
    tokens: Int[Tensor, "seq"],
) -> Float[Tensor, "seq_minus_1 n_components"]:
    """Contribution of the direct path and of each head to the logit of the correct next token.

    Returns `[seq - 1, 1 + 2 * n_heads]`: column 0 the direct path, then layer 0's heads, then layer 1's.
    """
    # SOLUTION
    W_U_correct = W_U[:, tokens[1:]]  # [d_model, seq - 1]
    direct = einops.einsum(embed[:-1], W_U_correct, "seq d_model, d_model seq -> seq")
    l1 = einops.einsum(l1_results[:-1], W_U_correct, "seq head d_model, d_model seq -> seq head")
    l2 = einops.einsum(l2_results[:-1], W_U_correct, "seq head d_model, d_model seq -> seq head")
    return torch.cat([direct[:, None], l1, l2], dim=-1)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Position `p` is scored on `tokens[p + 1]`: take the `W_U` columns of `tokens[1:]` and drop the last position
# of every input. Then one dot product over `d_model` per position (an einsum that keeps `seq`, and `head` for
# the head results), with the direct path as the first column.

# %% [markdown]
# To make the attributions add up *exactly* to the logits, feed the function the pieces of the final
# residual stream divided by the final LayerNorm's scale, with the attention biases `b_O` in the direct path
# (`center_writing_weights` made the stream mean-zero, so the centring does nothing). Each head's output is
# `z @ W_O` for that head. We pass the heads of the previous-token head's layer and of the induction head's
# layer: in a 2-layer attention-only model that is everything; in a model with MLPs or more layers the other
# pieces are left out, so the columns show the two layers' heads but no longer sum to the logits.

# %%
def head_results(cache, layer):
    return einops.einsum(cache["z", layer], model.W_O[layer],
                         "... head d_head, head d_head d_model -> ... head d_model")


scale = rep_cache["ln_final.hook_scale"][0]  # [pos, 1]
direct_path = (rep_cache["embed"][0] + rep_cache["pos_embed"][0] + model.b_O.sum(0)) / scale
attr = logit_attribution(direct_path, head_results(rep_cache, prev_layer)[0] / scale[..., None],
                         head_results(rep_cache, ind_layer)[0] / scale[..., None], model.W_U, rep_tokens[0])
if model.cfg.attn_only and model.cfg.n_layers == 2:  # the pieces are the whole residual stream
    correct_logits = rep_logits[0, :-1].gather(-1, rep_tokens[0, 1:, None])[:, 0]
    print("attributions + b_U sum to the logits:",
          torch.allclose(attr.sum(-1) + model.b_U[rep_tokens[0, 1:]], correct_logits, atol=1e-3))
else:
    print(f"{MODEL_NAME}: columns for the direct path and layers {prev_layer} and {ind_layer} only "
          "(other layers and MLPs left out)")

names = ["direct"] + [f"{layer}.{h}" for layer in (prev_layer, ind_layer) for h in range(model.cfg.n_heads)]
px.imshow(attr.T.cpu(), y=names, color_continuous_scale="RdBu", color_continuous_midpoint=0,
          labels=dict(x="position", y="component"),
          title="Logit attribution on [BOS] + r + r: the induction heads light up on the second copy").show()

# %% [markdown]
# ## 6. The OV circuit: does the induction head copy?
#
# If the induction head attends to token `B` (the one after the earlier `A`), it should *raise the logit of
# `B`*. The path "token `B` at the attended position → through the head's value and output → logits" is the
# **full OV circuit** `W_E W_V W_O W_U`, a `[d_vocab, d_vocab]` matrix. It would be big for a real vocabulary,
# so keep it as a `FactoredMatrix`: TransformerLens's low-rank product that never multiplies out.
# `model.OV[layer, head]` is `W_V W_O` as a `FactoredMatrix`, and `FactoredMatrix @ tensor` stays factored.

# %%
def full_ov_circuit(model: HookedTransformer, layer: int, head: int) -> FactoredMatrix:
    """`W_E @ W_V[layer, head] @ W_O[layer, head] @ W_U` as a FactoredMatrix (never materialised).

    Row `i`, column `j`: how much attending to token `i` raises the logit of token `j`.
    """
    # SOLUTION
    return FactoredMatrix(model.W_E @ model.W_V[layer, head], model.W_O[layer, head] @ model.W_U)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# A `FactoredMatrix(A, B)` with `A` = `W_E` times that head's `W_V` (`[d_vocab, d_head]`) and `B` = its `W_O`
# times `W_U` (`[d_head, d_vocab]`): never multiply the two vocabulary-sized ends together.

# %% [markdown]
# A copying head's circuit has its largest entry of each row on the **diagonal**: attending to token `i`
# raises the logit of `i` more than any other. Measure the fraction of rows where that holds. Materialise
# at most `batch_size` rows at a time (`full_OV_circuit[start:stop]` slices rows and stays factored;
# `.AB` multiplies out).

# %%
def top_1_acc(full_OV_circuit: FactoredMatrix, batch_size: int = 1000) -> float:
    """Fraction of rows `i` whose largest entry is in column `i`."""
    # SOLUTION
    n_rows = full_OV_circuit.shape[-2]
    correct = 0
    for start in range(0, n_rows, batch_size):
        rows = full_OV_circuit[start: start + batch_size].AB
        idx = torch.arange(start, start + rows.shape[0], device=rows.device)
        correct += (rows.argmax(dim=-1) == idx).sum().item()
    return correct / n_rows
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Loop over blocks of `batch_size` rows: slice the factored matrix and materialise the block with `.AB`. Row
# `i` of the block is token `start + i`, so compare the argmax over columns with `start + arange(...)`. Return
# a Python float.

# %%
ov_acc = top_1_acc(full_ov_circuit(model, ind_layer, ind_head))
print(f"induction head {ind_layer}.{ind_head}: top-1 copying accuracy {ov_acc:.1%} "
      f"(chance: {1 / model.cfg.d_vocab:.2%})")
ov_accs = torch.tensor([[top_1_acc(full_ov_circuit(model, layer, h)) for h in range(model.cfg.n_heads)]
                        for layer in range(model.cfg.n_layers)])
layer_head_heatmap(ov_accs, title="OV-circuit top-1 copying accuracy of every head", **score_scale).show()

# %% [markdown]
# The BPE vocabulary contains intermediate merge tokens the corpus never uses; their embeddings stayed close to
# initialisation, which pulls the accuracy down a little. Accuracy well above chance is the point: the
# induction head's OV circuit is a **copying** circuit.
#
# ## 7. The previous-token head's positional QK circuit
#
# How does a head in layer 0 know where the *previous* token is? Through the positional embeddings: if
# query position `i`'s `W_pos[i]` lines up with key position `i - 1`'s `W_pos[i - 1]` under the head's
# `W_QK = W_Q W_K^T`, the head attends there whatever the tokens are. Compute the attention pattern the head
# would have from positional embeddings alone. The head does not see `W_pos` itself but the residual stream
# after LayerNorm, which (with the weights folded) centres each vector and divides it by its root mean square, so
# that its rows have a root mean square of 1, while the entries of `W_pos` are much smaller (printed below, with
# the token embeddings' for comparison). So normalise the rows of `W_pos` as the layer's LayerNorm would, `eps`
# included (this is what `model.blocks[layer].ln1` computes):
#
# `x = W_pos - W_pos.mean(-1, keepdim=True)`, then `x = x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()`.
#
# Then: scores `x W_QK x^T / sqrt(d_head)`, causal mask, softmax over keys. (We leave out the token embeddings
# and the query/key biases: a simplification. For a previous-token head in a later layer, as in deeper models, the
# earlier layers' outputs are left out too, so the picture is rougher.)

# %%
def pos_by_pos_pattern(model: HookedTransformer, layer: int, head: int) -> Float[Tensor, "n_ctx n_ctx"]:
    """Attention pattern `[query_pos, key_pos]` of `head` from the rows of `W_pos` alone, normalised as the layer's
    LayerNorm does (centred, divided by `sqrt(mean of squares + model.cfg.eps)`)."""
    # SOLUTION
    x = model.W_pos - model.W_pos.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
    scores = (x @ model.QK[layer, head] @ x.T).AB / model.cfg.d_head**0.5
    n_ctx = x.shape[0]
    future = torch.triu(torch.ones(n_ctx, n_ctx, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Normalise the rows of `W_pos` as the text says, with `model.cfg.eps` inside the square root (or apply
# `model.blocks[layer].ln1` to `W_pos`); the scores are `x W_QK xᵀ` with `model.QK[layer, head]` (a
# FactoredMatrix: `.AB` materialises it), divided by `sqrt(d_head)`. Then chapter 0's causal mask (strictly
# above the diagonal) and softmax over the keys.

# %%
rms = {name: W.pow(2).mean().sqrt().item() for name, W in [("W_pos", model.W_pos), ("W_E", model.W_E)]}
print(f"root mean square of the entries: W_pos {rms['W_pos']:.3f}, W_E {rms['W_E']:.3f}; after LayerNorm: 1")
pos_pattern = expect(pos_by_pos_pattern(model, prev_layer, prev_head), "pos_by_pos_pattern",
                     shape=(model.cfg.n_ctx, model.cfg.n_ctx), names="n_ctx n_ctx")
for h in range(model.cfg.n_heads):
    p = pos_by_pos_pattern(model, prev_layer, h)
    print(f"head {prev_layer}.{h}: mean positional attention to the previous position {p.diagonal(-1).mean():.2f}, "
          f"to its own position {p.diagonal(0).mean():.2f}; OV copying accuracy {ov_accs[prev_layer, h]:.2%}")
px.imshow(pos_pattern[:40, :40].cpu(), color_continuous_scale="Blues",
          labels=dict(x="key position", y="query position"),
          title=f"Positional attention pattern of head {prev_layer}.{prev_head} (first 40 positions)").show()

# %% [markdown]
# The previous-token head's positional pattern sits just below the diagonal: position alone tells it where
# to look. In `attn2l` the other layer-0 head attends mostly to **its own position**: it re-writes the current
# token into the residual stream. Not in a form the unembedding reads — its OV copying accuracy (section 6's
# heatmap, printed above) is at chance, so it does not raise the current token's logit — but, as the next
# section shows, in one that the induction head's *query* reads.

# %% [markdown]
# ## 8. Decomposing the induction head's attention scores
#
# The induction head's query and key are read from the residual stream *before its layer*. In `attn2l` that
# is a sum of `n_heads + 2` pieces: the token embedding, the positional embedding, and each layer-0 head's
# output. Because queries and keys are linear in the (normalised) residual stream, the attention score splits
# into a sum over (query piece, key piece) pairs. If induction works by K-composition, the dominant key piece
# should be **the previous-token head's output** ("the token before me was A"), paired with a query piece that
# says "I am A": the token embedding itself, or an earlier head that attends to the current token and
# re-writes it (as in `attn2l`).
#
# First, the pieces: the embeddings and the outputs of every head in layer `prev_layer` (the previous-token
# head's layer; 0 by default). Divide each by the LayerNorm scale of layer `ind_layer` (the induction head's
# layer; 1 by default), `cache["scale", ind_layer, "ln1"]`, so that they are on the scale of the normalised
# input. (In `attn2l` the pieces add up to that input apart from the bias `b_O` of layer 0; in a deeper model
# the other layers' outputs are left out.) The cache has **no batch dimension** here
# (`cache.remove_batch_dim()`), and each head's output is `z @ W_O` (the weights are `cache.model.W_O`).

# %%
def decompose_qk_input(
    cache: ActivationCache, *, prev_layer: int = 0, ind_layer: int = 1
) -> Float[Tensor, "n_heads_plus_2 posn d_model"]:
    """`[embed, pos_embed, output of head prev_layer.0, ..., of head prev_layer.(n_heads-1)]`, each divided by
    layer `ind_layer`'s ln1 scale. `cache` has no batch dimension.
    """
    # SOLUTION
    W_O = cache.model.W_O[prev_layer]
    results = einops.einsum(cache["z", prev_layer], W_O, "posn head d_head, head d_head d_model -> head posn d_model")
    pieces = torch.cat([cache["embed"][None], cache["pos_embed"][None], results], dim=0)
    return pieces / cache["scale", ind_layer, "ln1"]
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Each head's output is `z` times `W_O` of the previous-token head's layer (an einsum over `d_head` that puts
# `head` first). Stack `embed`, `pos_embed` and the head outputs along a new first dimension, and divide by
# layer `ind_layer`'s `ln1` scale (`[posn, 1]`, it broadcasts).

# %% [markdown]
# Now project every piece with the induction head's query and key weights.

# %%
def decompose_q(
    decomposed_qk_input: Float[Tensor, "n_heads_plus_2 posn d_model"],
    ind_head_index: int,
    model: HookedTransformer,
    *,
    ind_layer: int = 1,
) -> Float[Tensor, "n_heads_plus_2 posn d_head"]:
    """Each piece's contribution to the query of head `ind_layer.ind_head_index` (no bias)."""
    # SOLUTION
    W_Q = model.W_Q[ind_layer, ind_head_index]
    return einops.einsum(decomposed_qk_input, W_Q, "n posn d_model, d_model d_head -> n posn d_head")
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Project every piece with the query weights of the *induction* head, `model.W_Q[ind_layer, ind_head_index]`:
# an einsum over `d_model`, no bias.

# %%
def decompose_k(
    decomposed_qk_input: Float[Tensor, "n_heads_plus_2 posn d_model"],
    ind_head_index: int,
    model: HookedTransformer,
    *,
    ind_layer: int = 1,
) -> Float[Tensor, "n_heads_plus_2 posn d_head"]:
    """Each piece's contribution to the key of head `ind_layer.ind_head_index` (no bias)."""
    # SOLUTION
    W_K = model.W_K[ind_layer, ind_head_index]
    return einops.einsum(decomposed_qk_input, W_K, "n posn d_model, d_model d_head -> n posn d_head")
    # END SOLUTION


# %% [markdown] tags=["hint"]
# As `decompose_q`, with the key weights `W_K` of the same head.

# %% [markdown]
# Finally the scores: every (query piece, key piece) pair, for every (query position, key position), scaled by
# `1/sqrt(d_head)` like the real scores. (No mask: we look at the raw scores.)

# %%
def decompose_attn_scores(
    decomposed_q: Float[Tensor, "q_comp posn_q d_head"],
    decomposed_k: Float[Tensor, "k_comp posn_k d_head"],
    model: HookedTransformer,
) -> Float[Tensor, "q_comp k_comp posn_q posn_k"]:
    """Attention-score contribution of each (query piece, key piece) pair, divided by sqrt(d_head)."""
    # SOLUTION
    scores = einops.einsum(decomposed_q, decomposed_k,
                           "q_comp posn_q d_head, k_comp posn_k d_head -> q_comp k_comp posn_q posn_k")
    return scores / model.cfg.d_head**0.5
    # END SOLUTION


# %% [markdown] tags=["hint"]
# An einsum over `d_head` that keeps both piece dimensions and both position dimensions, in the order `q_comp
# k_comp posn_q posn_k`, divided by `sqrt(d_head)`.

# %% [markdown]
# Which pairs matter? Take the standard deviation of each pair's scores over the (query, key) positions in the
# causal triangle: a pair that barely varies cannot move the attention.

# %%
single_cache = ActivationCache({k: v[:1] for k, v in rep_cache.items()}, model).remove_batch_dim()
qk_input = decompose_qk_input(single_cache, prev_layer=prev_layer, ind_layer=ind_layer)
dq = decompose_q(qk_input, ind_head, model, ind_layer=ind_layer)
dk = decompose_k(qk_input, ind_head, model, ind_layer=ind_layer)
pair_scores = decompose_attn_scores(dq, dk, model)
causal = torch.tril(torch.ones(pair_scores.shape[-2:], dtype=torch.bool, device=pair_scores.device))
pair_std = pair_scores[..., causal].std(-1)
pieces = ["embed", "pos"] + [f"{prev_layer}.{h}" for h in range(model.cfg.n_heads)]
px.imshow(pair_std.cpu(), x=pieces, y=pieces, text_auto=".1f", color_continuous_scale="Blues",
          labels=dict(x="key piece", y="query piece"),
          title=f"Std of attention-score contributions, head {ind_layer}.{ind_head}").show()
for rank, flat in enumerate(pair_std.flatten().argsort(descending=True)[:3].tolist()):
    q_piece, k_piece = divmod(flat, len(pieces))
    print(f"pair #{rank + 1}: query = {pieces[q_piece]}, key = {pieces[k_piece]} (std {pair_std.flatten()[flat]:.2f})")
print(f"(the previous-token head is {prev_layer}.{prev_head})")

# %% [markdown]
# ## 9. K-composition from the weights
#
# Put the two heads together without running the model. A query token `A` at the induction head scores a key
# position whose *previous-token head output* carries token `A'` by
#
# $$ x_A\, W_Q^{1.h}\, (x_{A'}\, W_V^{0.p} W_O^{0.p}\, W_K^{1.h})^T ,$$
#
# so the **full K-composition circuit** is `W_E W_Q^{1.h} (W_E W_V^{0.p} W_O^{0.p} W_K^{1.h})^T`, a
# `[d_vocab, d_vocab]` matrix of (query token, previous token) scores. For an induction circuit it should
# be large on the diagonal: a token attends to positions whose previous token is itself. `top_1_acc` measures that
# row by row (for each query token, is its best key token itself?); on the transpose it measures the columns. (Here
# `0` and `1` are `prev_layer` and `ind_layer`, the defaults; in a deeper model pass the layers you found. There
# the path through earlier layers and MLPs is left out: the circuit is the direct K-composition only.)

# %%
def find_K_comp_full_circuit(
    model: HookedTransformer, prev_token_head_index: int, ind_head_index: int, *, prev_layer: int = 0,
    ind_layer: int = 1,
) -> FactoredMatrix:
    """`W_E W_Q[ind_layer, ind] (W_E W_V[prev_layer, prev] W_O[prev_layer, prev] W_K[ind_layer, ind])^T` as a
    FactoredMatrix. Rows are query tokens, columns key tokens (the token the previous-token head saw).
    """
    # SOLUTION
    W_E = model.W_E
    Q = W_E @ model.W_Q[ind_layer, ind_head_index]
    W_OV = model.W_V[prev_layer, prev_token_head_index] @ model.W_O[prev_layer, prev_token_head_index]
    K = W_E @ W_OV @ model.W_K[ind_layer, ind_head_index]
    return FactoredMatrix(Q, K.T)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Query side: `W_E` through the induction head's `W_Q`. Key side: `W_E` through the previous-token head's
# `W_V` and `W_O` (layer `prev_layer`), then the induction head's `W_K` (layer `ind_layer`). Both sides are
# `[d_vocab, d_head]`; the circuit is query side times key side transposed, as a `FactoredMatrix`.

# %%
k_comp_circuit = find_K_comp_full_circuit(model, prev_head, ind_head, prev_layer=prev_layer, ind_layer=ind_layer)
print(f"K-composition circuit {prev_layer}.{prev_head} -> {ind_layer}.{ind_head} (chance {1 / model.cfg.d_vocab:.2%}):")
print(f"  for {top_1_acc(k_comp_circuit):.1%} of query tokens, the key token scored highest is the query token "
      "(rows: top_1_acc(circuit))")
print(f"  for {top_1_acc(k_comp_circuit.T):.1%} of key tokens, the query token that scores it highest is the key "
      "token (columns: top_1_acc(circuit.T))")

# %% [markdown]
# ## 10. Composition scores
#
# Which heads of the previous-token head's layer compose with which heads of the induction head's layer, and
# how strongly? A **composition score** measures how
# much of the output space of `W_A` (an earlier head's `W_OV`) is read by `W_B` (a later head's `W_QK` or
# `W_OV`): `||W_A W_B||_F / (||W_A||_F ||W_B||_F)`. Write it for two plain matrices.

# %%
def get_comp_score(W_A: Float[Tensor, "in_A out_A"], W_B: Float[Tensor, "out_A out_B"]) -> float:
    """`||W_A @ W_B||_F / (||W_A||_F * ||W_B||_F)`, as a Python float."""
    # SOLUTION
    return ((W_A @ W_B).norm() / (W_A.norm() * W_B.norm())).item()
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `Tensor.norm()` with no arguments is the Frobenius norm: divide the norm of the product by the product of
# the two norms, and return a Python float.

# %% [markdown]
# Looping over all pairs is slow for big models. `FactoredMatrix` broadcasts over leading dimensions: give
# `W_As` a new axis 1 and `W_Bs` a new axis 0 (on both factors, `A` and `B`), multiply, and take norms
# (`FactoredMatrix.norm()` computes the Frobenius norm without materialising). The result must equal the loop.

# %%
def get_batched_comp_scores(W_As: FactoredMatrix, W_Bs: FactoredMatrix) -> Float[Tensor, "..."]:
    """Composition score of every pair: `W_As` `[*A_idx, d_model, d_model]` and `W_Bs` `[*B_idx, d_model, d_model]`
    (any number of leading index dimensions on either side, e.g. `[head]` or `[layer, head]`) give
    `[*A_idx, *B_idx]`."""
    # SOLUTION
    n_a, n_b = W_As.A.dim() - 2, W_Bs.A.dim() - 2
    W_As = FactoredMatrix(*(m.reshape(*m.shape[:-2], *[1] * n_b, *m.shape[-2:]) for m in (W_As.A, W_As.B)))
    W_Bs = FactoredMatrix(*(m.reshape(*[1] * n_a, *m.shape) for m in (W_Bs.A, W_Bs.B)))
    return (W_As @ W_Bs).norm() / (W_As.norm() * W_Bs.norm())
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Make the index dimensions line up for broadcasting: give both factors (`A` and `B`) of `W_As` one extra axis of
# size 1 for each index dimension of `W_Bs` (after their own index dimensions), and the factors of `W_Bs` one for
# each index dimension of `W_As` (in front). Then `@` and `FactoredMatrix.norm()` broadcast to every pair, as in
# `get_comp_score`.

# %% [markdown]
# What score would *unrelated* matrices get? In `d_model` dimensions two random low-rank matrices overlap a
# little by chance, so we compare with a **random baseline**: the mean score of random matrices of the same
# shapes (`d_model x d_head` factors, like a head's).

# %% tags=["module"]
def random_comp_scores(d_model: int, d_head: int, n_samples: int = 200,
                       generator: torch.Generator | None = None) -> Float[Tensor, "n_samples"]:
    """Composition scores of `n_samples` pairs of random rank-`d_head` matrices `W = L R` in `d_model` dimensions
    (Gaussian factors): the baseline for unrelated heads."""
    scores = []
    for _ in range(n_samples):
        a_l, b_l = (torch.randn(d_model, d_head, generator=generator) for _ in range(2))
        a_r, b_r = (torch.randn(d_head, d_model, generator=generator) for _ in range(2))
        scores.append(get_comp_score(a_l @ a_r, b_l @ b_r))
    return torch.tensor(scores)


# %%
random_scores = random_comp_scores(model.cfg.d_model, model.cfg.d_head, generator=torch.Generator().manual_seed(0))
baseline, spread = random_scores.mean().item(), random_scores.std().item()
W_OV_prev = model.OV[prev_layer]  # every head of the previous-token head's layer
comp = {"Q": get_batched_comp_scores(W_OV_prev, model.QK[ind_layer]),
        "K": get_batched_comp_scores(W_OV_prev, model.QK[ind_layer].T),
        "V": get_batched_comp_scores(W_OV_prev, model.OV[ind_layer])}
print(f"random baseline: {baseline:.4f} +- {spread:.4f} (mean +- std of {len(random_scores)} random pairs)")
for kind, scores in comp.items():
    layer_head_heatmap(scores - baseline, y_labels=[f"L{prev_layer}H{h}" for h in range(model.cfg.n_heads)],
                       x_labels=[f"L{ind_layer}H{h}" for h in range(model.cfg.n_heads)],
                       y_title="earlier head (writes)", x_title="later head (reads)",
                       title=f"{kind}-composition scores minus the random baseline ({baseline:.3f})").show()
k_score = comp["K"][prev_head, ind_head].item()
print(f"K-composition of {prev_layer}.{prev_head} with {ind_layer}.{ind_head}: {k_score:.3f}, "
      f"{k_score / baseline:.2f} times the random baseline; the largest into {ind_layer}.{ind_head}: "
      f"{prev_layer}.{int(comp['K'][:, ind_head].argmax())}")
for kind, scores in comp.items():
    print(f"{kind}-composition: {int((scores < baseline).sum())} of {scores.numel()} pairs below the random baseline")
top_query_piece = pieces[int(pair_std.argmax()) // len(pieces)]  # section 8's dominant pair
if top_query_piece.startswith(f"{prev_layer}."):
    q_head = int(top_query_piece.split(".")[1])
    print(f"Q-composition of {top_query_piece} (section 8's top query piece) with {ind_layer}.{ind_head}: "
          f"{comp['Q'][q_head, ind_head]:.3f}, {comp['Q'][q_head, ind_head] / baseline:.2f} times the baseline")

# %% [markdown]
# The K-composition of the previous-token head with the induction head stands out. But many scores sit
# **below** the random baseline (the counts are printed above) — in `attn2l` even the Q-composition of the
# layer-0 head that section 8 found to be the induction head's main *query* piece. Both are true, and they show
# what a composition score can and cannot say:
#
# - **Below the baseline** means the later head reads the earlier head's output space *less* than a random matrix
#   would. Trained heads are not random matrices: each writes and reads a few directions of its own, and a pair
#   whose directions barely overlap scores below chance.
# - The score is a ratio of Frobenius norms: it weights **every input direction alike**, and divides the sizes
#   out. A head's real effect depends on the inputs it actually gets (the token embeddings, not every direction
#   alike) and on how large its output is next to the other pieces — what section 8 measured on real
#   activations. So a weak overall overlap can still carry the one signal that matters.
# - The baseline's spread describes random Gaussian matrices, not the uncertainty of a head's score: "many
#   standard deviations from the baseline" says that the heads are not random matrices (which the scores below the
#   baseline show as well), not how strongly they compose. Compare pairs with each other, and as a ratio to the
#   baseline.
#
# Weight-based composition scores are a cheap first screen; activations (section 8) and ablations (next) decide.

# %% [markdown]
# ## 11. Ablation: does the induction head need the previous-token head?
#
# The last piece of causal evidence: zero-ablate the previous-token head's output (`hook_z` of layer
# `prev_layer`, 0 by default) and measure the induction score of a head in layer `ind_layer` (1 by default) on
# `[BOS] + r + r`. Use `model.run_with_hooks` with two hooks: one that ablates (returns the modified `z`), one
# on layer `ind_layer`'s `hook_pattern` that records the score (the same score as in section 3, for one head).
# With `prev_head_index=None`, ablate nothing.

# %%
def ablation_induction_score(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch full_seq_len"],
    seq_len: int,
    prev_head_index: int | None,
    ind_head_index: int,
    *,
    prev_layer: int = 0,
    ind_layer: int = 1,
) -> float:
    """Induction score of head `ind_layer.ind_head_index` with head `prev_layer.prev_head_index` zero-ablated
    (None: no ablation)."""
    # SOLUTION
    q = torch.arange(seq_len + 1, 2 * seq_len + 1, device=tokens.device)
    result = {}

    def ablation_hook(
        z: Float[Tensor, "batch pos head d_head"], hook: HookPoint
    ) -> Float[Tensor, "batch pos head d_head"]:
        if prev_head_index is not None:
            z[:, :, prev_head_index] = 0.0
        return z

    def score_hook(pattern: Float[Tensor, "batch head query key"], hook: HookPoint) -> None:
        result["score"] = pattern[:, ind_head_index, q, q - seq_len + 1].mean().item()

    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(get_act_name("z", prev_layer), ablation_hook),
                                                              (get_act_name("pattern", ind_layer), score_hook)])
    return result["score"]
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Two hooks in one `run_with_hooks`: on `hook_z` of `prev_layer`, zero the head's slice (unless
# `prev_head_index` is None) and return `z`; on `hook_pattern` of `ind_layer`, store head `ind_head_index`'s
# induction score (second-copy queries, key `q - seq_len + 1`) in a dict of your function. Return it as a
# float.

# %%
layers = dict(prev_layer=prev_layer, ind_layer=ind_layer)
baseline_score = ablation_induction_score(model, rep_tokens, SEQ_LEN, None, ind_head, **layers)
ablation_scores = torch.tensor([ablation_induction_score(model, rep_tokens, SEQ_LEN, h, ind_head, **layers)
                                for h in range(model.cfg.n_heads)])
px.bar(x=[f"{prev_layer}.{h}" for h in range(model.cfg.n_heads)], y=(ablation_scores - baseline_score).tolist(),
       labels=dict(x=f"ablated layer-{prev_layer} head", y="change in induction score"),
       title=f"Induction score of head {ind_layer}.{ind_head} when one layer-{prev_layer} head is ablated "
             f"(clean: {baseline_score:.2f})").show()
print(f"ablating the previous-token head {prev_layer}.{prev_head}: induction score of {ind_layer}.{ind_head} "
      f"{baseline_score:.2f} -> {ablation_scores[prev_head]:.2f}")

# %% [markdown]
# ## Summary
#
# - **Find:** on `[BOS] + r + r`, induction heads attend from each second-copy token to the token after its
#   earlier copy (a stripe `seq_len - 1` below the diagonal); an earlier head attends to the previous token.
# - **Confirm:** ablating the induction heads (together) or the previous-token head destroys the drop in loss
#   on the second copy; ablating the previous-token head lowers the induction head's score.
# - **Explain:** the induction head's OV circuit copies (its full OV circuit is diagonal-heavy); the
#   previous-token head gets its position from `W_pos`; the two meet through **K-composition**: the
#   induction head's key reads what the previous-token head wrote (the dominant key piece of the score
#   decomposition); from the weights alone, the composition scores single out the same pair (a first screen: scores
#   below the random baseline are common, and a weak overall overlap can still carry the signal that matters).
# - Nothing here was hard-coded: every head and layer index came from a score, so the same cells work on
#   another model: set `MODEL_NAME = "mlp4l"` (or `"gpt2-small"` online) and run the notebook again.
#
# Next: **Chapter 5**, activation patching on the IOI task.
