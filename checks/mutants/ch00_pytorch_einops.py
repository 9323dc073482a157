"""Known mistakes for chapter 0. Each one is a mistake learners really make; its description is shown to a
learner whose output matches it."""

import einops
import torch
import torch.nn.functional as F
from torch import nn

from utils.checking import Mutant, Status


def split_heads_head_minor(x, n_heads):
    return einops.rearrange(x, "batch pos (d_head head) -> batch pos head d_head", head=n_heads)


def split_heads_d_head_as_heads(x, n_heads):
    return einops.rearrange(x, "batch pos (head d_head) -> batch pos head d_head", d_head=n_heads)


def split_heads_plain_view(x, n_heads):
    return x.view(x.shape[0], x.shape[1], n_heads, -1).transpose(-1, -2)


def merge_heads_head_minor(z):
    return einops.rearrange(z, "batch pos head d_head -> batch pos (d_head head)")


def merge_heads_sum(z):
    return z.sum(dim=2)


def merge_heads_mean(z):
    return einops.reduce(z, "batch pos head d_head -> batch pos d_head", "mean")


def scores_no_scale(q, k):
    return einops.einsum(q, k, "b qp h d, b kp h d -> b h qp kp")


def scores_scale_by_d_head(q, k):
    return einops.einsum(q, k, "b qp h d, b kp h d -> b h qp kp") / q.shape[-1]


def scores_transposed(q, k):
    return einops.einsum(q, k, "b qp h d, b kp h d -> b h kp qp") / q.shape[-1] ** 0.5


def scores_head_last(q, k):
    return einops.einsum(q, k, "b qp h d, b kp h d -> b qp kp h") / q.shape[-1] ** 0.5


def mask_diagonal_too(scores):
    n = scores.shape[-1]
    return scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool, device=scores.device)), float("-inf"))


def mask_the_past(scores):
    n = scores.shape[-1]
    past = torch.tril(torch.ones(n, n, dtype=torch.bool, device=scores.device), diagonal=-1)
    return scores.masked_fill(past, float("-inf"))


def mask_with_zero(scores):
    n = scores.shape[-1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, 0.0)


def mask_on_cpu(scores):
    n = scores.shape[-1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return scores.cpu().masked_fill(future, float("-inf"))


def _pattern(q, k, *, scale=True, mask=True, dim=-1):
    scores = einops.einsum(q, k, "b qp h d, b kp h d -> b h qp kp")
    if scale:
        scores = scores / q.shape[-1] ** 0.5
    if mask:
        n = scores.shape[-1]
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool, device=q.device), 1), float("-inf"))
    return scores.softmax(dim=dim)


def pattern_no_scale(q, k):
    return _pattern(q, k, scale=False)


def pattern_no_mask(q, k):
    return _pattern(q, k, mask=False)


def pattern_softmax_over_queries(q, k):
    return _pattern(q, k, dim=-2)


def log_probs_no_shift(logits, tokens):
    return logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)[:, 1:]


def log_probs_probabilities(logits, tokens):
    return logits[:, :-1].softmax(-1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)


def log_probs_raw_logits(logits, tokens):
    return logits[:, :-1].gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)


def log_probs_all_positions(logits, tokens):
    return logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def top_k_first_position(logits, k):
    return logits[:, 0].topk(k, dim=-1).indices


def top_k_smallest(logits, k):
    return logits[:, -1].topk(k, dim=-1, largest=False).indices


def top_k_values(logits, k):
    return logits[:, -1].topk(k, dim=-1).values


def masked_mean_over_all_positions(x, mask):
    return (x * mask.unsqueeze(-1)).mean(dim=1)


def masked_mean_ignores_mask(x, mask):
    return x.mean(dim=1)


def masked_mean_no_clamp(x, mask):
    return (x * mask.unsqueeze(-1)).sum(1) / mask.sum(-1, keepdim=True)


def pos_embed_whole_table(W_pos, batch, seq_len):
    return einops.repeat(W_pos, "n d -> batch n d", batch=batch)


def pos_embed_off_by_one(W_pos, batch, seq_len):
    return einops.repeat(W_pos[1 : seq_len + 1], "n d -> batch n d", batch=batch)


def pos_embed_batch_second(W_pos, batch, seq_len):
    return einops.repeat(W_pos[:seq_len], "n d -> n batch d", batch=batch)


def _probe(acts, labels, n_classes, n_steps=100, lr=0.05, seed=0, *, step=True, sign=1.0, zero_grad=True,
           seed_first=True):
    if seed_first:
        torch.manual_seed(seed)
    probe = nn.Linear(acts.shape[-1], n_classes).to(acts.device)
    if not seed_first:
        torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr)
    for _ in range(n_steps):
        loss = sign * F.cross_entropy(probe(acts), labels)
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if step:
            optimizer.step()
    return probe


def probe_never_steps(acts, labels, n_classes, n_steps=100, lr=0.05, seed=0):
    return _probe(acts, labels, n_classes, n_steps, lr, seed, step=False)


def probe_gradient_ascent(acts, labels, n_classes, n_steps=100, lr=0.05, seed=0):
    return _probe(acts, labels, n_classes, n_steps, lr, seed, sign=-1.0)


def probe_returns_weights(acts, labels, n_classes, n_steps=100, lr=0.05, seed=0):
    return _probe(acts, labels, n_classes, n_steps, lr, seed).weight


def probe_single_step(acts, labels, n_classes, n_steps=100, lr=0.05, seed=0):
    return _probe(acts, labels, n_classes, 1, lr, seed)


def probe_ignores_n_steps(acts, labels, n_classes, n_steps=100, lr=0.05, seed=0):
    return _probe(acts, labels, n_classes, 100, lr, seed)


def probe_ignores_lr(acts, labels, n_classes, n_steps=100, lr=0.05, seed=0):
    return _probe(acts, labels, n_classes, n_steps, 0.05, seed)


def probe_ignores_seed(acts, labels, n_classes, n_steps=100, lr=0.05, seed=0):
    return _probe(acts, labels, n_classes, n_steps, lr, 0)


def probe_seeds_after_creating(acts, labels, n_classes, n_steps=100, lr=0.05, seed=0):
    return _probe(acts, labels, n_classes, n_steps, lr, seed, seed_first=False)


MUTANTS = {
    "split_heads": [
        Mutant(split_heads_head_minor, "splitting as (d_head head) instead of (head d_head): right shape, features "
               "in the wrong heads"),
        Mutant(split_heads_d_head_as_heads, "passing n_heads as d_head (d_head=n_heads instead of head=n_heads)",
               Status.WRONG_SHAPE),
        Mutant(split_heads_plain_view, "transposing head and d_head after a view", Status.WRONG_SHAPE),
    ],
    "merge_heads": [
        Mutant(merge_heads_head_minor, "merging as (d_head head) instead of (head d_head)"),
        Mutant(merge_heads_sum, "summing over heads instead of concatenating them", Status.WRONG_SHAPE),
        Mutant(merge_heads_mean, "averaging over heads instead of concatenating them", Status.WRONG_SHAPE),
    ],
    "attention_scores": [
        Mutant(scores_no_scale, "forgetting the 1/sqrt(d_head) scale"),
        Mutant(scores_scale_by_d_head, "dividing by d_head instead of sqrt(d_head)"),
        Mutant(scores_transposed, "swapping query and key positions in the output (posK before posQ)"),
        Mutant(scores_head_last, "putting the head dimension last", Status.WRONG_SHAPE),
    ],
    "apply_causal_mask": [
        Mutant(mask_diagonal_too, "masking the diagonal too (triu with diagonal=0): a token cannot see itself"),
        Mutant(mask_the_past, "masking the past instead of the future (tril instead of triu)"),
        Mutant(mask_with_zero, "filling masked scores with 0 instead of -inf (softmax still gives them weight)"),
        Mutant(mask_on_cpu, "building the mask on the CPU and moving the scores there", Status.WRONG_DEVICE,
               only_on=("cuda", "mps")),
    ],
    "attention_pattern": [
        Mutant(pattern_no_scale, "forgetting the 1/sqrt(d_head) scale before the softmax"),
        Mutant(pattern_no_mask, "forgetting the causal mask"),
        Mutant(pattern_softmax_over_queries, "taking the softmax over query positions (dim=-2) instead of keys"),
    ],
    "next_token_log_probs": [
        Mutant(log_probs_no_shift, "forgetting the shift: comparing position p's prediction with token p, not p+1"),
        Mutant(log_probs_probabilities, "returning probabilities (softmax) instead of log-probabilities"),
        Mutant(log_probs_raw_logits, "returning raw logits instead of log_softmax"),
        Mutant(log_probs_all_positions, "keeping all positions (no shift): one prediction too many",
               Status.WRONG_SHAPE),
    ],
    "top_k_next_tokens": [
        Mutant(top_k_first_position, "reading the first position instead of the last"),
        Mutant(top_k_smallest, "taking the k smallest logits (largest=False)"),
        Mutant(top_k_values, "returning the top-k logit values instead of the token ids", Status.WRONG_DTYPE),
    ],
    "masked_mean": [
        Mutant(masked_mean_over_all_positions, "dividing by pos instead of the number of real tokens"),
        Mutant(masked_mean_ignores_mask, "ignoring the mask"),
        Mutant(masked_mean_no_clamp, "not clamping the count: a row with no real tokens gives 0/0 = NaN",
               Status.NAN),
    ],
    "batch_positional_embeddings": [
        Mutant(pos_embed_whole_table, "repeating the whole W_pos table instead of its first seq_len rows",
               Status.WRONG_SHAPE),
        Mutant(pos_embed_off_by_one, "starting at position 1 instead of 0 (W_pos[1:seq_len+1])"),
        Mutant(pos_embed_batch_second, "putting the batch dimension second", Status.WRONG_SHAPE),
    ],
    "train_linear_probe": [
        Mutant(probe_never_steps, "never calling optimizer.step(): the probe stays at its random initialisation"),
        Mutant(probe_gradient_ascent, "maximising the loss (a minus sign on the loss)"),
        Mutant(probe_single_step, "training for a single step instead of n_steps"),
        Mutant(probe_ignores_n_steps, "ignoring the n_steps argument (always 100 steps)"),
        Mutant(probe_ignores_lr, "ignoring the lr argument (always lr=0.05)"),
        Mutant(probe_ignores_seed, "ignoring the seed argument (torch.manual_seed(0) whatever the seed)"),
        Mutant(probe_seeds_after_creating, "calling torch.manual_seed(seed) after creating the probe: its "
               "initial weights do not depend on the seed"),
        Mutant(probe_returns_weights, "returning the weight tensor instead of the nn.Linear probe",
               Status.WRONG_TYPE),
    ],
}
