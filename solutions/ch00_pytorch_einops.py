"""Reference solutions for chapter ch00_pytorch_einops.

Generated from chapters/src/00_pytorch_einops.py by `make build`: do not edit; edit the source and rebuild.
"""


import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn


def split_heads(x: Float[Tensor, "batch pos d_model"], n_heads: int) -> Float[Tensor, "batch pos head d_head"]:
    """Split the last dimension into `n_heads` heads of size `d_head = d_model // n_heads`.

    Head `h` takes the features `h * d_head : (h + 1) * d_head`.
    """
    return einops.rearrange(x, "batch pos (head d_head) -> batch pos head d_head", head=n_heads)


def merge_heads(z: Float[Tensor, "batch pos head d_head"]) -> Float[Tensor, "batch pos d_model"]:
    """The inverse of `split_heads`: concatenate the heads along the last dimension (head-major)."""
    return einops.rearrange(z, "batch pos head d_head -> batch pos (head d_head)")


def attention_scores(
    q: Float[Tensor, "batch posQ head d_head"], k: Float[Tensor, "batch posK head d_head"]
) -> Float[Tensor, "batch head posQ posK"]:
    """Scaled dot-product attention scores `q · k / sqrt(d_head)`, before masking and softmax."""
    d_head = q.shape[-1]
    scores = einops.einsum(q, k, "batch posQ head d_head, batch posK head d_head -> batch head posQ posK")
    return scores / d_head**0.5


def apply_causal_mask(scores: Float[Tensor, "batch head posQ posK"]) -> Float[Tensor, "batch head posQ posK"]:
    """Return a copy of `scores` with every future position (`posK > posQ`) set to `-inf`."""
    n_q, n_k = scores.shape[-2:]
    future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf"))


def attention_pattern(
    q: Float[Tensor, "batch posQ head d_head"], k: Float[Tensor, "batch posK head d_head"]
) -> Float[Tensor, "batch head posQ posK"]:
    """Causal attention pattern: softmax over `posK` of the scaled, masked scores."""
    d_head, n_q, n_k = q.shape[-1], q.shape[1], k.shape[1]
    scores = einops.einsum(q, k, "batch posQ head d_head, batch posK head d_head -> batch head posQ posK")
    future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=q.device), diagonal=1)
    return (scores / d_head**0.5).masked_fill(future, float("-inf")).softmax(dim=-1)


def next_token_log_probs(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos_minus_1"]:
    """log P(tokens[:, p + 1] | tokens[:, :p + 1]) for every position p except the last."""
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return log_probs.gather(dim=-1, index=tokens[:, 1:].unsqueeze(-1)).squeeze(-1)


def top_k_next_tokens(logits: Float[Tensor, "batch pos d_vocab"], k: int) -> Int[Tensor, "batch k"]:
    """The ids of the `k` most likely next tokens after the last position, most likely first."""
    return logits[:, -1].topk(k, dim=-1).indices


def masked_mean(
    x: Float[Tensor, "batch pos d_model"], mask: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "batch d_model"]:
    """Mean of `x` over the positions where `mask` is True (zeros for a row with no True position)."""
    total = einops.reduce(x * mask.unsqueeze(-1), "batch pos d_model -> batch d_model", "sum")
    count = einops.reduce(mask.float(), "batch pos -> batch", "sum").clamp(min=1)
    return total / count.unsqueeze(-1)


def batch_positional_embeddings(
    W_pos: Float[Tensor, "n_ctx d_model"], batch: int, seq_len: int
) -> Float[Tensor, "batch seq_len d_model"]:
    """The positional embeddings of positions `0 .. seq_len - 1`, repeated for each of `batch` prompts."""
    return einops.repeat(W_pos[:seq_len], "seq_len d_model -> batch seq_len d_model", batch=batch)


def train_linear_probe(
    acts: Float[Tensor, "n d_model"],
    labels: Int[Tensor, "n"],
    n_classes: int,
    n_steps: int = 100,
    lr: float = 0.05,
    seed: int = 0,
) -> nn.Linear:
    """Train `nn.Linear(d_model, n_classes)` with AdamW on cross-entropy; return the trained probe."""
    torch.manual_seed(seed)
    probe = nn.Linear(acts.shape[-1], n_classes).to(acts.device)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr)
    for _ in range(n_steps):
        loss = F.cross_entropy(probe(acts), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return probe


# The hint of each exercise, from its hint cell: shown by the checker when a failure matches no
# known mistake.
HINTS = {
    'split_heads': (
        '`einops.rearrange(x, "batch pos (head d_head) -> batch pos head d_head", head=n_heads)`:'
        ' einops works out\n`d_head` from the size of the last dimension. Writing `(d_head head)`'
        ' instead gives the right shape but puts\nthe features in the wrong heads.'
    ),
    'merge_heads': (
        'One `einops.rearrange` call: `"batch pos head d_head -> batch pos (head d_head)"`. A `.r'
        'eshape` also works,\nbut only if the head dimension comes before `d_head`, which is exac'
        'tly what the einops pattern says.'
    ),
    'attention_scores': (
        '`einops.einsum(q, k, "batch posQ head d_head, batch posK head d_head -> batch head posQ '
        'posK")`, then divide\nby `q.shape[-1] ** 0.5`. The output order matters: `head` comes be'
        'fore the positions.'
    ),
    'apply_causal_mask': (
        '`future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device), diago'
        'nal=1)`, then\n`scores.masked_fill(future, float("-inf"))`. With `diagonal=0` you would '
        'also hide the current token, and\n`torch.tril` hides the past instead of the future.'
    ),
    'attention_pattern': (
        '`scores.masked_fill(future, float("-inf")).softmax(dim=-1)`. If every row of your patter'
        'n sums to 1 but\nthe values are off, check the scale; if the columns sum to 1, you took '
        'the softmax over the wrong dimension.'
    ),
    'next_token_log_probs': (
        '`logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]`. The mean of th'
        'e negative of\nthis is the cross-entropy loss that `model(tokens, return_type="loss")` r'
        'eturns.'
    ),
    'top_k_next_tokens': (
        '`logits[:, -1].topk(k, dim=-1).indices`. Softmax does not change the ranking, so there i'
        's no need for it.'
    ),
    'masked_mean': (
        '`einops.reduce(x * mask[..., None], "batch pos d_model -> batch d_model", "sum")` divide'
        'd by\n`mask.sum(-1, keepdim=True).clamp(min=1)`.'
    ),
    'batch_positional_embeddings': (
        '`einops.repeat(W_pos[:seq_len], "seq_len d_model -> batch seq_len d_model", batch=batch)'
        '`.'
    ),
    'train_linear_probe': (
        '```python\ntorch.manual_seed(seed)\nprobe = nn.Linear(acts.shape[-1], n_classes).to(acts'
        '.device)\noptimizer = torch.optim.AdamW(probe.parameters(), lr=lr)\nfor _ in range(n_ste'
        'ps):\n    loss = F.cross_entropy(probe(acts), labels)\n    optimizer.zero_grad(); loss.b'
        'ackward(); optimizer.step()\n```'
    ),
}
