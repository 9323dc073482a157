"""Known mistakes for chapter 2 (activation caching). Each one is a mistake learners really make; its
description is shown to a learner whose output matches it."""

import einops
import torch

from utils.checking import Mutant, Status


# --------------------------------------------------------------------------------------------------------
# attention_pattern_from_qk
# --------------------------------------------------------------------------------------------------------
def _pattern(q, k, *, scale=None, fill=float("-inf"), diagonal=1, dim=-1):
    d_head, n_pos = q.shape[-1], q.shape[1]
    scores = einops.einsum(q, k, "b dest h d, b src h d -> b h dest src")
    scores = scores / (d_head**0.5 if scale is None else scale)
    future = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool, device=q.device), diagonal=diagonal)
    return scores.masked_fill(future, fill).softmax(dim=dim)


def pattern_no_scale(q, k):
    return _pattern(q, k, scale=1.0)


def pattern_scale_by_d_head(q, k):
    return _pattern(q, k, scale=q.shape[-1])


def pattern_softmax_over_dest(q, k):
    return _pattern(q, k, dim=-2)


def pattern_mask_with_zero(q, k):
    return _pattern(q, k, fill=0.0)


def pattern_mask_diagonal_too(q, k):
    return _pattern(q, k, diagonal=0)


# --------------------------------------------------------------------------------------------------------
# current / previous / first-token detectors
# --------------------------------------------------------------------------------------------------------
def _detect(cache, threshold, score, name="{layer}.{head}"):
    heads = []
    for layer in range(cache.model.cfg.n_layers):
        pattern = cache["pattern", layer]
        for head in range(cache.model.cfg.n_heads):
            if score(pattern[:, head]) > threshold:
                heads.append(name.format(layer=layer, head=head))
    return heads


def current_above_diagonal(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p.diagonal(offset=1, dim1=-2, dim2=-1).mean())


def current_first_prompt_only(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p[0].diagonal(dim1=-2, dim2=-1).mean())


def current_mean_over_whole_pattern(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: (p * torch.eye(p.shape[-1], device=p.device)).mean())


def current_named_head_layer(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p.diagonal(dim1=-2, dim2=-1).mean(), name="{head}.{layer}")


def current_diagonal_without_dims(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p.diagonal().mean())


def prev_above_diagonal(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p.diagonal(offset=1, dim1=-2, dim2=-1).mean())


def prev_main_diagonal(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p.diagonal(dim1=-2, dim2=-1).mean())


def prev_first_prompt_only(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p[0].diagonal(offset=-1, dim1=-2, dim2=-1).mean())


def prev_named_head_layer(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).mean(), name="{head}.{layer}")


def prev_diagonal_without_dims(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p.diagonal(-1).mean())


def prev_divides_by_pos(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean() / p.shape[-1])


def first_row_not_column(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p[:, 0, :].mean())


def first_max_not_mean(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p[:, :, 0].max())


def first_first_prompt_only(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p[0, :, 0].mean())


def first_skips_destination_0(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p[:, 1:, 0].mean())


def first_named_head_layer(cache, threshold=0.4):
    return _detect(cache, threshold, lambda p: p[:, :, 0].mean(), name="{head}.{layer}")


# --------------------------------------------------------------------------------------------------------
# logits_to_ave_logit_diff
# --------------------------------------------------------------------------------------------------------
def _diff(logits, answer_tokens, per_prompt):
    answer_logits = logits.gather(-1, answer_tokens)
    diff = answer_logits[:, 0] - answer_logits[:, 1]
    return diff if per_prompt else diff.mean()


def diff_sign_flipped(logits, answer_tokens, per_prompt=False):
    return -_diff(logits[:, -1], answer_tokens, per_prompt)


def diff_first_position(logits, answer_tokens, per_prompt=False):
    return _diff(logits[:, 0], answer_tokens, per_prompt)


def diff_mean_over_positions(logits, answer_tokens, per_prompt=False):
    return _diff(logits.mean(dim=1), answer_tokens, per_prompt)


def diff_of_probabilities(logits, answer_tokens, per_prompt=False):
    return _diff(logits[:, -1].softmax(dim=-1), answer_tokens, per_prompt)


def diff_sum_over_batch(logits, answer_tokens, per_prompt=False):
    diff = _diff(logits[:, -1], answer_tokens, per_prompt=True)
    return diff if per_prompt else diff.sum()


def diff_ignores_per_prompt(logits, answer_tokens, per_prompt=False):
    return _diff(logits[:, -1], answer_tokens, per_prompt=False)


# --------------------------------------------------------------------------------------------------------
# logit_lens
# --------------------------------------------------------------------------------------------------------
def _unembed_answer(model, resid, answer_tokens, bias=True):
    logits = einops.einsum(resid, model.W_U[:, answer_tokens], "c batch d, d batch -> c batch")
    return logits + model.b_U[answer_tokens] if bias else logits


def lens_no_layernorm(model, cache, answer_tokens):
    return _unembed_answer(model, cache.accumulated_resid(layer=None, pos_slice=-1, apply_ln=False), answer_tokens)


def lens_no_bias(model, cache, answer_tokens):
    resid = cache.accumulated_resid(layer=None, pos_slice=-1, apply_ln=True)
    return _unembed_answer(model, resid, answer_tokens, bias=False)


def lens_drops_final_layer(model, cache, answer_tokens):
    resid = cache.accumulated_resid(layer=model.cfg.n_layers - 1, pos_slice=-1, apply_ln=True)
    return _unembed_answer(model, resid, answer_tokens)


def lens_position_zero(model, cache, answer_tokens):
    resid = cache.accumulated_resid(layer=None, apply_ln=True)[:, :, 0]
    return _unembed_answer(model, resid, answer_tokens)


def lens_cached_final_scale(model, cache, answer_tokens):
    resid = cache.accumulated_resid(layer=None, pos_slice=-1, apply_ln=False)
    return _unembed_answer(model, cache.apply_ln_to_stack(resid, layer=-1, pos_slice=-1), answer_tokens)


def lens_decompose_resid(model, cache, answer_tokens):
    resid = cache.decompose_resid(layer=None, pos_slice=-1, apply_ln=True)
    return _unembed_answer(model, resid, answer_tokens)


def lens_every_answer(model, cache, answer_tokens):
    resid = cache.accumulated_resid(layer=None, pos_slice=-1, apply_ln=True)
    return resid @ model.W_U[:, answer_tokens] + model.b_U[answer_tokens]


# --------------------------------------------------------------------------------------------------------
# residual_stack_to_logit_diff
# --------------------------------------------------------------------------------------------------------
def _project(stack, directions, reduce="mean"):
    total = einops.einsum(stack, directions, "... batch d, batch d -> ...")
    return total / stack.shape[-2] if reduce == "mean" else total


def stack_no_layernorm(residual_stack, cache, logit_diff_directions):
    return _project(residual_stack, logit_diff_directions)


def stack_sum_over_batch(residual_stack, cache, logit_diff_directions):
    scaled = cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)
    return _project(scaled, logit_diff_directions, reduce="sum")


def stack_first_direction_only(residual_stack, cache, logit_diff_directions):
    scaled = cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)
    return einops.einsum(scaled, logit_diff_directions[0], "... batch d, d -> ... batch").mean(-1)


def stack_recomputed_layernorm(residual_stack, cache, logit_diff_directions):
    return _project(cache.model.ln_final(residual_stack), logit_diff_directions)


# --------------------------------------------------------------------------------------------------------
# head_direct_logit_attribution
# --------------------------------------------------------------------------------------------------------
def _head_dla(model, cache, directions, *, ln=True, reduce="mean", pos=-1, split="(layer head) -> layer head"):
    per_head = cache.stack_head_results(layer=-1, pos_slice=pos)
    if ln:
        per_head = cache.apply_ln_to_stack(per_head, layer=-1, pos_slice=pos)
    return einops.rearrange(_project(per_head, directions, reduce), split, layer=model.cfg.n_layers)


def heads_split_head_major(model, cache, logit_diff_directions):
    return _head_dla(model, cache, logit_diff_directions, split="(head layer) -> layer head")


def heads_no_layernorm(model, cache, logit_diff_directions):
    return _head_dla(model, cache, logit_diff_directions, ln=False)


def heads_sum_over_batch(model, cache, logit_diff_directions):
    return _head_dla(model, cache, logit_diff_directions, reduce="sum")


def heads_position_zero(model, cache, logit_diff_directions):
    return _head_dla(model, cache, logit_diff_directions, pos=0)


DIAGONAL_WITHOUT_DIMS = ("calling .diagonal() without dim1=-2, dim2=-1: it then takes the diagonal of the first two "
                         "dimensions (batch and dest), not of dest and src")

MUTANTS = {
    "attention_pattern_from_qk": [
        Mutant(pattern_no_scale, "forgetting the 1/sqrt(d_head) scale"),
        Mutant(pattern_scale_by_d_head, "dividing by d_head instead of sqrt(d_head)"),
        Mutant(pattern_softmax_over_dest, "taking the softmax over the destination dimension (dim=-2) instead of "
               "the source positions"),
        Mutant(pattern_mask_with_zero, "masking the future with 0 instead of -inf (future tokens still get weight)"),
        Mutant(pattern_mask_diagonal_too, "masking the diagonal too (torch.triu without diagonal=1): a token must "
               "be able to attend to itself", Status.NAN),
    ],
    "current_attn_detector": [
        Mutant(current_above_diagonal, "taking the diagonal above the main one (offset=1), which the causal mask "
               "makes zero"),
        Mutant(current_first_prompt_only, "scoring only the first prompt (pattern[0]) instead of averaging over the "
               "batch"),
        Mutant(current_mean_over_whole_pattern, "averaging over the whole dest x src pattern instead of over the "
               "diagonal's positions"),
        Mutant(current_named_head_layer, "naming heads 'head.layer' instead of 'layer.head'"),
        Mutant(current_diagonal_without_dims, DIAGONAL_WITHOUT_DIMS),
    ],
    "prev_attn_detector": [
        Mutant(prev_above_diagonal, "taking offset=+1 (above the diagonal, always zero) instead of offset=-1"),
        Mutant(prev_main_diagonal, "using the main diagonal (the current token) instead of the one below it"),
        Mutant(prev_first_prompt_only, "scoring only the first prompt (pattern[0]) instead of averaging over the "
               "batch"),
        Mutant(prev_named_head_layer, "naming heads 'head.layer' instead of 'layer.head'"),
        Mutant(prev_diagonal_without_dims, DIAGONAL_WITHOUT_DIMS),
        Mutant(prev_divides_by_pos, "dividing the sub-diagonal's sum by pos instead of taking its mean (it has "
               "pos - 1 entries)"),
    ],
    "first_attn_detector": [
        Mutant(first_row_not_column, "taking row 0 (where the first token looks) instead of column 0 (attention "
               "paid to the first token)"),
        Mutant(first_max_not_mean, "taking the max of column 0 instead of its mean (the first token always "
               "attends only to itself, so the max is always 1)"),
        Mutant(first_first_prompt_only, "scoring only the first prompt (pattern[0]) instead of averaging over the "
               "batch"),
        Mutant(first_named_head_layer, "naming heads 'head.layer' instead of 'layer.head'"),
        Mutant(first_skips_destination_0, "leaving out destination 0 (pattern[:, 1:, 0]): the mean is over every "
               "destination, BOS attending to itself included"),
    ],
    "logits_to_ave_logit_diff": [
        Mutant(diff_sign_flipped, "subtracting the correct logit from the incorrect one (sign flipped)"),
        Mutant(diff_first_position, "reading position 0 instead of the last position (-1)"),
        Mutant(diff_mean_over_positions, "averaging the logits over all positions instead of taking the last one"),
        Mutant(diff_of_probabilities, "taking the difference of probabilities (softmax) instead of logits"),
        Mutant(diff_sum_over_batch, "summing over the batch instead of averaging"),
        Mutant(diff_ignores_per_prompt, "ignoring per_prompt (always returning the mean)", Status.WRONG_SHAPE),
    ],
    "logit_lens": [
        Mutant(lens_no_layernorm, "not applying the final LayerNorm (apply_ln=False)"),
        Mutant(lens_no_bias, "forgetting the unembedding bias b_U"),
        Mutant(lens_drops_final_layer, "an off-by-one in accumulated_resid: layer=n_layers - 1 stops before the "
               "last layer (layer=None, or -1, includes the final stream)", Status.WRONG_SHAPE),
        Mutant(lens_position_zero, "reading position 0 instead of the last position (pos_slice=-1)"),
        Mutant(lens_cached_final_scale, "dividing every partial sum by the final stream's cached LayerNorm scale "
               "(apply_ln_to_stack) instead of normalizing each one (accumulated_resid(..., apply_ln=True))"),
        Mutant(lens_decompose_resid, "using decompose_resid (the pieces) instead of accumulated_resid (the partial "
               "sums)", Status.WRONG_SHAPE),
        Mutant(lens_every_answer, "projecting every prompt on every prompt's answer ([component, batch, batch]) "
               "instead of each prompt on its own answer", Status.WRONG_SHAPE),
    ],
    "residual_stack_to_logit_diff": [
        Mutant(stack_no_layernorm, "not applying the final LayerNorm scale (cache.apply_ln_to_stack)"),
        Mutant(stack_sum_over_batch, "summing over the batch instead of averaging"),
        Mutant(stack_first_direction_only, "projecting every prompt on the first prompt's direction"),
        Mutant(stack_recomputed_layernorm, "recomputing the LayerNorm of each piece with model.ln_final instead of "
               "using the cached final scale (apply_ln_to_stack)"),
    ],
    "head_direct_logit_attribution": [
        Mutant(heads_split_head_major, "splitting the stack as '(head layer)' instead of '(layer head)'"),
        Mutant(heads_no_layernorm, "not applying the final LayerNorm scale (cache.apply_ln_to_stack)"),
        Mutant(heads_sum_over_batch, "summing over the batch instead of averaging"),
        Mutant(heads_position_zero, "reading position 0 instead of the last position (pos_slice=-1)"),
    ],
}
