# %% [markdown]
# # Chapter 0 — PyTorch, einops & jaxtyping: the warm-up
#
# Interpretability code is mostly *tensor surgery*: splitting the residual stream into heads, computing
# attention scores, masking the future, reading off the log-probability of the right next token. This chapter
# drills those moves on small random tensors, so that in later chapters you can think about *circuits*
# instead of about `.transpose(1, 2)`.
#
# You will use three tools throughout the course:
#
# - **einops** — `rearrange`, `reduce`, `repeat` and `einsum` name every dimension, so the code says what it does:
#   `einops.rearrange(x, "batch pos (head d_head) -> batch pos head d_head", head=12)`.
# - **jaxtyping** — annotations like `Float[Tensor, "batch pos d_model"]` document the shape of every argument.
#   TransformerLens uses the same names: `batch`, `pos`, `head`, `d_model`, `d_head`, `d_vocab`.
# - **check cells** — under every exercise, `check(your_function)` compares your function with the reference
#   on several inputs and tells you what is wrong: type, shape, dtype, device, NaN, or which values differ.
#   When your output matches a *known* mistake (say, forgetting the `1/sqrt(d_head)` scale), it names it.

# %% [markdown] tags=["learner"]
# **How to work:** replace each `raise NotImplementedError()` with your code, run the cell, then run the
# check cell under it. Hints and solutions are in the dropdowns below each check.

# %% tags=["module"]
import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

# %% [markdown]
# ## 1. Splitting and merging attention heads
#
# A transformer with `n_heads` heads of size `d_head` computes queries as one big vector of size
# `n_heads * d_head` per position. TransformerLens keeps heads as a separate dimension
# (`cache["q", 0]` has shape `[batch, pos, head, d_head]`). `einops.rearrange` splits (or merges) a dimension
# by writing its factors in parentheses: `"(head d_head)"`. Note the order: the *head* index varies slowest.

# %%
def split_heads(x: Float[Tensor, "batch pos d_model"], n_heads: int) -> Float[Tensor, "batch pos head d_head"]:
    """Split the last dimension into `n_heads` heads of size `d_head = d_model // n_heads`.

    Head `h` takes the features `h * d_head : (h + 1) * d_head`.
    """
    # SOLUTION
    return einops.rearrange(x, "batch pos (head d_head) -> batch pos head d_head", head=n_heads)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `einops.rearrange(x, "batch pos (head d_head) -> batch pos head d_head", head=n_heads)`: einops works out
# `d_head` from the size of the last dimension. Writing `(d_head head)` instead gives the right shape but puts
# the features in the wrong heads.

# %%
def merge_heads(z: Float[Tensor, "batch pos head d_head"]) -> Float[Tensor, "batch pos d_model"]:
    """The inverse of `split_heads`: concatenate the heads along the last dimension (head-major)."""
    # SOLUTION
    return einops.rearrange(z, "batch pos head d_head -> batch pos (head d_head)")
    # END SOLUTION


# %% [markdown] tags=["hint"]
# One `einops.rearrange` call: `"batch pos head d_head -> batch pos (head d_head)"`. A `.reshape` also works,
# but only if the head dimension comes before `d_head`, which is exactly what the einops pattern says.

# %% [markdown]
# ## 2. Attention scores with `einops.einsum`
#
# Each head compares every query position with every key position. With queries `q[batch, posQ, head, d_head]`
# and keys `k[batch, posK, head, d_head]`, the score of query `i` on key `j` is the dot product of the two
# `d_head`-vectors, divided by `sqrt(d_head)` so that scores do not grow with the head size. `einops.einsum`
# names the dimensions: any dimension that appears in the inputs but not in the output is summed over.

# %%
def attention_scores(
    q: Float[Tensor, "batch posQ head d_head"], k: Float[Tensor, "batch posK head d_head"]
) -> Float[Tensor, "batch head posQ posK"]:
    """Scaled dot-product attention scores `q · k / sqrt(d_head)`, before masking and softmax."""
    # SOLUTION
    d_head = q.shape[-1]
    scores = einops.einsum(q, k, "batch posQ head d_head, batch posK head d_head -> batch head posQ posK")
    return scores / d_head**0.5
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `einops.einsum(q, k, "batch posQ head d_head, batch posK head d_head -> batch head posQ posK")`, then divide
# by `q.shape[-1] ** 0.5`. The output order matters: `head` comes before the positions.

# %% [markdown]
# ## 3. The causal mask
#
# A language model must not look at the future: query position `i` may only attend to key positions `j <= i`.
# We set the scores of the future positions (`j > i`, strictly above the diagonal) to `-inf`, so that the
# softmax gives them exactly zero weight. `torch.triu(..., diagonal=1)` builds the mask and
# `masked_fill` applies it. Create the mask on the same device as the scores (`device=scores.device`),
# or your code will fail on a GPU.

# %%
def apply_causal_mask(scores: Float[Tensor, "batch head posQ posK"]) -> Float[Tensor, "batch head posQ posK"]:
    """Return a copy of `scores` with every future position (`posK > posQ`) set to `-inf`."""
    # SOLUTION
    n_q, n_k = scores.shape[-2:]
    future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf"))
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device), diagonal=1)`, then
# `scores.masked_fill(future, float("-inf"))`. With `diagonal=0` you would also hide the current token, and
# `torch.tril` hides the past instead of the future.

# %% [markdown]
# ## 4. The attention pattern
#
# Put the three steps together: scores, causal mask, softmax **over the key positions** (the last
# dimension), so that each query's attention weights sum to 1. This is exactly what TransformerLens stores
# as `cache["pattern", layer]`. Write it in one self-contained function (you may copy lines from above).

# %%
def attention_pattern(
    q: Float[Tensor, "batch posQ head d_head"], k: Float[Tensor, "batch posK head d_head"]
) -> Float[Tensor, "batch head posQ posK"]:
    """Causal attention pattern: softmax over `posK` of the scaled, masked scores."""
    # SOLUTION
    d_head, n_q, n_k = q.shape[-1], q.shape[1], k.shape[1]
    scores = einops.einsum(q, k, "batch posQ head d_head, batch posK head d_head -> batch head posQ posK")
    future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=q.device), diagonal=1)
    return (scores / d_head**0.5).masked_fill(future, float("-inf")).softmax(dim=-1)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `scores.masked_fill(future, float("-inf")).softmax(dim=-1)`. If every row of your pattern sums to 1 but
# the values are off, check the scale; if the columns sum to 1, you took the softmax over the wrong dimension.

# %% [markdown]
# Let's look at one. Each row is a query position; the upper triangle is zero because of the mask.

# %%
import plotly.express as px

torch.manual_seed(0)
q_demo, k_demo = torch.randn(1, 8, 2, 16), torch.randn(1, 8, 2, 16)
pattern_demo = attention_pattern(q_demo, k_demo)
px.imshow(pattern_demo[0, 0], labels=dict(x="key position", y="query position"), color_continuous_scale="Blues",
          title="A causal attention pattern (random q, k)").show()
print("Row sums:", pattern_demo[0, 0].sum(-1))

# %% [markdown]
# ## 5. Log-probabilities of the correct next tokens with `gather`
#
# A model outputs `logits[batch, pos, d_vocab]`: at position `p` it predicts token `p + 1`. The loss is
# built from the log-probability it gives to the token that actually comes next. Two things go wrong
# constantly: forgetting the **shift** (the prediction at `p` is about `tokens[:, p + 1]`, so there are
# `pos - 1` predictions), and indexing with the wrong shape. `log_softmax` over the vocabulary, then
# `gather` along the last dimension with an index of shape `[batch, pos - 1, 1]`.

# %%
def next_token_log_probs(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos_minus_1"]:
    """log P(tokens[:, p + 1] | tokens[:, :p + 1]) for every position p except the last."""
    # SOLUTION
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return log_probs.gather(dim=-1, index=tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]`. The mean of the negative of
# this is the cross-entropy loss that `model(tokens, return_type="loss")` returns.

# %% [markdown]
# ## 6. Top-k predictions
#
# What does the model think comes next? `torch.topk` returns the `k` largest values and their indices,
# sorted from largest to smallest. We want the token ids the model ranks highest at the **last** position.

# %%
def top_k_next_tokens(logits: Float[Tensor, "batch pos d_vocab"], k: int) -> Int[Tensor, "batch k"]:
    """The ids of the `k` most likely next tokens after the last position, most likely first."""
    # SOLUTION
    return logits[:, -1].topk(k, dim=-1).indices
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `logits[:, -1].topk(k, dim=-1).indices`. Softmax does not change the ranking, so there is no need for it.

# %% [markdown]
# ## 7. A masked mean with `einops.reduce`
#
# Prompts in a batch often have different lengths, padded to the same `pos`. To average an activation over
# the *real* tokens only, multiply by the mask and divide by the number of real tokens per prompt, not by
# `pos`. A prompt with no real tokens at all must give zeros, not NaN: clamp the count to at least 1.

# %%
def masked_mean(
    x: Float[Tensor, "batch pos d_model"], mask: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "batch d_model"]:
    """Mean of `x` over the positions where `mask` is True (zeros for a row with no True position)."""
    # SOLUTION
    total = einops.reduce(x * mask.unsqueeze(-1), "batch pos d_model -> batch d_model", "sum")
    count = einops.reduce(mask.float(), "batch pos -> batch", "sum").clamp(min=1)
    return total / count.unsqueeze(-1)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `einops.reduce(x * mask[..., None], "batch pos d_model -> batch d_model", "sum")` divided by
# `mask.sum(-1, keepdim=True).clamp(min=1)`.

# %% [markdown]
# ## 8. Broadcasting with `einops.repeat`
#
# The positional embedding matrix `W_pos[n_ctx, d_model]` holds one vector per position. A forward pass on a
# batch of `seq_len` tokens adds the first `seq_len` rows to every prompt. `einops.repeat` makes the batch
# dimension explicit (PyTorch would also broadcast, but naming it avoids silent shape bugs).

# %%
def batch_positional_embeddings(
    W_pos: Float[Tensor, "n_ctx d_model"], batch: int, seq_len: int
) -> Float[Tensor, "batch seq_len d_model"]:
    """The positional embeddings of positions `0 .. seq_len - 1`, repeated for each of `batch` prompts."""
    # SOLUTION
    return einops.repeat(W_pos[:seq_len], "seq_len d_model -> batch seq_len d_model", batch=batch)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `einops.repeat(W_pos[:seq_len], "seq_len d_model -> batch seq_len d_model", batch=batch)`.

# %% [markdown]
# ## 9. A tiny training loop: a linear probe
#
# A *probe* is a small classifier trained on a model's activations to test whether some information is
# linearly readable from them. Here the activations are synthetic clusters; in later chapters they come from
# the residual stream. Write the standard loop: `nn.Linear`, `torch.optim.AdamW`, `F.cross_entropy`, and per
# step `zero_grad` → `backward` → `step`. Seed with `torch.manual_seed(seed)` *before* creating the probe so
# the result is reproducible. Full-batch training: every step uses all the examples.

# %%
def train_linear_probe(
    acts: Float[Tensor, "n d_model"],
    labels: Int[Tensor, "n"],
    n_classes: int,
    n_steps: int = 100,
    lr: float = 0.05,
    seed: int = 0,
) -> nn.Linear:
    """Train `nn.Linear(d_model, n_classes)` with AdamW on cross-entropy; return the trained probe."""
    # SOLUTION
    torch.manual_seed(seed)
    probe = nn.Linear(acts.shape[-1], n_classes).to(acts.device)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr)
    for _ in range(n_steps):
        loss = F.cross_entropy(probe(acts), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return probe
    # END SOLUTION


# %% [markdown] tags=["hint"]
# ```python
# torch.manual_seed(seed)
# probe = nn.Linear(acts.shape[-1], n_classes).to(acts.device)
# optimizer = torch.optim.AdamW(probe.parameters(), lr=lr)
# for _ in range(n_steps):
#     loss = F.cross_entropy(probe(acts), labels)
#     optimizer.zero_grad(); loss.backward(); optimizer.step()
# ```

# %% [markdown]
# ## Summary
#
# - `rearrange` splits and merges dimensions (`"(head d_head)"`), `einsum` contracts named dimensions,
#   `reduce` aggregates, `repeat` broadcasts explicitly.
# - Attention = scaled scores → causal mask (`-inf` strictly above the diagonal) → softmax over keys.
# - Log-probs of the right next token need the shift by one and `gather`.
# - Create new tensors on the input's device; mask before you average.
#
# Next: **Chapter 1**, where these tensors come out of a real transformer.
