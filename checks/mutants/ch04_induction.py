"""Known mistakes for chapter 4 (induction heads). Each one is a mistake learners really make; its description is
shown to a learner whose output matches it."""

import einops
import torch
from transformer_lens import FactoredMatrix
from transformer_lens.utilities import get_act_name

from utils.checking import Mutant, Status
from utils.data import non_special_ids

# Messages the structural check of generate_repeated_tokens prints itself (random outputs cannot be matched).
IGNORES_GENERATOR = "ignoring the generator argument (torch.randint without generator=generator)"
SAME_ROW = "using the same random sequence for every row of the batch"
NOT_REPEATED = "drawing a fresh random sequence for the second copy instead of repeating the first"
SPECIAL = ("drawing from the whole vocabulary (torch.randint(0, d_vocab)): the special tokens "
           "(model.tokenizer.all_special_ids) are drawn too")
RUN_IGNORES_GENERATOR = ("not passing the generator on to generate_repeated_tokens: the tokens are no longer "
                         "reproducible from the seed")
NO_CHANGE = "your ablation changed nothing: the score is the one without ablation"
NO_EPS = ("leaving out LayerNorm's eps: the model's ln1 divides by sqrt(mean of squares + model.cfg.eps), "
          "eps = 1e-05 here")
QUERIES_ONE_EARLY = ("an off-by-one in the query positions (arange(seq_len, 2 * seq_len)): the second copy is "
                     "positions seq_len + 1 to 2 * seq_len")
FIXED = "ignoring the prev_layer / ind_layer arguments (always layers 0 and 1): wrong for deeper models like mlp4l"


# ---------------------------------------------------------------------------------------------- repeated tokens
def _draw(model, batch_size, seq_len, generator):
    allowed = non_special_ids(model)
    return allowed[torch.randint(0, len(allowed), (batch_size, seq_len), generator=generator)]


def _bos(model, batch_size):
    return torch.full((batch_size, 1), model.tokenizer.bos_token_id)


def gen_no_bos(model, seq_len, batch_size=1, *, generator=None):
    r = _draw(model, batch_size, seq_len, generator)
    return torch.cat([r, r], dim=1).to(model.cfg.device)


def gen_fresh_second_copy(model, seq_len, batch_size=1, *, generator=None):
    r1, r2 = _draw(model, batch_size, seq_len, generator), _draw(model, batch_size, seq_len, generator)
    return torch.cat([_bos(model, batch_size), r1, r2], dim=1).to(model.cfg.device)


def gen_same_row(model, seq_len, batch_size=1, *, generator=None):
    r = _draw(model, 1, seq_len, generator).expand(batch_size, seq_len)
    return torch.cat([_bos(model, batch_size), r, r], dim=1).to(model.cfg.device)


def gen_ignores_generator(model, seq_len, batch_size=1, *, generator=None):
    allowed = non_special_ids(model)
    r = allowed[torch.randint(0, len(allowed), (batch_size, seq_len))]
    return torch.cat([_bos(model, batch_size), r, r], dim=1).to(model.cfg.device)


def gen_includes_special(model, seq_len, batch_size=1, *, generator=None):
    r = torch.randint(0, model.cfg.d_vocab, (batch_size, seq_len), generator=generator)
    return torch.cat([_bos(model, batch_size), r, r], dim=1).to(model.cfg.device)


def gen_on_cpu(model, seq_len, batch_size=1, *, generator=None):
    r = _draw(model, batch_size, seq_len, generator)
    return torch.cat([_bos(model, batch_size), r, r], dim=1)


# ---------------------------------------------------------------------------------------------- run and cache
def _gen(model, seq_len, batch_size, generator):
    r = _draw(model, batch_size, seq_len, generator)
    return torch.cat([_bos(model, batch_size), r, r], dim=1).to(model.cfg.device)


def run_generates_twice(model, seq_len, batch_size=1, *, generator=None):
    tokens = _gen(model, seq_len, batch_size, generator)
    logits, cache = model.run_with_cache(_gen(model, seq_len, batch_size, generator))
    return tokens, logits, cache


def run_wrong_order(model, seq_len, batch_size=1, *, generator=None):
    tokens = _gen(model, seq_len, batch_size, generator)
    logits, cache = model.run_with_cache(tokens)
    return logits, tokens, cache


def run_probabilities(model, seq_len, batch_size=1, *, generator=None):
    tokens = _gen(model, seq_len, batch_size, generator)
    logits, cache = model.run_with_cache(tokens)
    return tokens, logits.softmax(-1), cache


def run_ignores_generator(model, seq_len, batch_size=1, *, generator=None):
    tokens = _gen(model, seq_len, batch_size, None)
    logits, cache = model.run_with_cache(tokens)
    return tokens, logits, cache


def run_without_bos(model, seq_len, batch_size=1, *, generator=None):
    tokens = _gen(model, seq_len, batch_size, generator)[:, 1:]
    logits, cache = model.run_with_cache(tokens, prepend_bos=False)
    return tokens, logits, cache


# ---------------------------------------------------------------------------------------------- detector
def _detector(cache, threshold, offset=1, all_positions=False, below=False, as_tuples=False, whole_diagonal=False):
    found = []
    for layer in range(cache.model.cfg.n_layers):
        pattern = cache["pattern", layer]
        seq_len = (pattern.shape[-1] - 1) // 2
        if offset == "prev":
            q = torch.arange(1, pattern.shape[-1], device=pattern.device)
            scores = pattern[:, :, q, q - 1].mean(dim=(0, 2))
        elif whole_diagonal:  # ARENA's detector: the diagonal includes two queries before the second copy
            scores = pattern.diagonal(-(seq_len - 1), -2, -1).mean(dim=(0, 2))
        elif all_positions:
            scores = pattern.diagonal(-(seq_len - offset), -2, -1).sum(-1).mean(0) / pattern.shape[-1]
        else:
            q = torch.arange(seq_len + 1, 2 * seq_len + 1, device=pattern.device)
            scores = pattern[:, :, q, q - seq_len + offset].mean(dim=(0, 2))
        for head in range(cache.model.cfg.n_heads):
            if (scores[head] < threshold) if below else (scores[head] > threshold):
                found.append((layer, head) if as_tuples else f"{layer}.{head}")
    return found


def detector_duplicate_offset(cache, threshold=0.4):
    return _detector(cache, threshold, offset=0)


def detector_previous_token(cache, threshold=0.4):
    return _detector(cache, threshold, offset="prev")


def detector_all_positions(cache, threshold=0.4):
    return _detector(cache, threshold, all_positions=True)


def detector_whole_diagonal(cache, threshold=0.4):
    return _detector(cache, threshold, whole_diagonal=True)


def detector_below_threshold(cache, threshold=0.4):
    return _detector(cache, threshold, below=True)


def detector_tuples(cache, threshold=0.4):
    return _detector(cache, threshold, as_tuples=True)


# ---------------------------------------------------------------------------------------------- induction scores
def _scores(model, tokens, seq_len, *, offset=1, whole_diagonal=False, same_row=False, reduce="mean", query_shift=0):
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)
    q = torch.arange(seq_len + 1 - query_shift, 2 * seq_len + 1 - query_shift, device=tokens.device)

    def hook_fn(pattern, hook):
        if whole_diagonal:
            value = pattern.diagonal(-(seq_len - 1), -2, -1).mean(dim=(0, 2))
        elif reduce == "sum":
            value = pattern[:, :, q, q - seq_len + offset].mean(dim=2).sum(0)
        else:
            value = pattern[:, :, q, q - seq_len + offset].mean(dim=(0, 2))
        if same_row:
            scores[:] = value
        else:
            scores[hook.layer()] = value

    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), hook_fn)])
    return scores


def scores_duplicate_offset(model, tokens, seq_len):
    return _scores(model, tokens, seq_len, offset=0)


def scores_queries_one_early(model, tokens, seq_len):
    return _scores(model, tokens, seq_len, query_shift=1)


def scores_whole_diagonal(model, tokens, seq_len):
    return _scores(model, tokens, seq_len, whole_diagonal=True)


def scores_same_row(model, tokens, seq_len):
    return _scores(model, tokens, seq_len, same_row=True)


def scores_sum_over_batch(model, tokens, seq_len):
    return _scores(model, tokens, seq_len, reduce="sum")


# ---------------------------------------------------------------------------------------------- logit attribution
def _attr(embed, l1, l2, W_U, targets, keep_last=False, order=("e", "1", "2")):
    W = W_U[:, targets]
    n = len(targets)
    e = einops.einsum(embed[:n], W, "s d, d s -> s")[:, None]
    a = einops.einsum(l1[:n], W, "s h d, d s -> s h")
    b = einops.einsum(l2[:n], W, "s h d, d s -> s h")
    parts = {"e": e, "1": a, "2": b}
    return torch.cat([parts[k] for k in order], dim=-1)


def attr_no_shift(embed, l1_results, l2_results, W_U, tokens):
    return _attr(embed, l1_results, l2_results, W_U, tokens[:-1])


def attr_drops_first_position(embed, l1_results, l2_results, W_U, tokens):
    return _attr(embed[1:], l1_results[1:], l2_results[1:], W_U, tokens[1:])


def attr_layers_swapped(embed, l1_results, l2_results, W_U, tokens):
    return _attr(embed, l1_results, l2_results, W_U, tokens[1:], order=("e", "2", "1"))


def attr_no_direct_path(embed, l1_results, l2_results, W_U, tokens):
    return _attr(embed, l1_results, l2_results, W_U, tokens[1:], order=("1", "2"))


def attr_all_positions(embed, l1_results, l2_results, W_U, tokens):
    W = W_U[:, tokens]
    e = einops.einsum(embed, W, "s d, d s -> s")[:, None]
    return torch.cat([e, einops.einsum(l1_results, W, "s h d, d s -> s h"),
                      einops.einsum(l2_results, W, "s h d, d s -> s h")], dim=-1)


# ---------------------------------------------------------------------------------------------- OV circuit
def ov_no_unembed(model, layer, head):
    return FactoredMatrix(model.W_E @ model.W_V[layer, head], model.W_O[layer, head])


def ov_transposed(model, layer, head):
    return FactoredMatrix(model.W_E @ model.W_V[layer, head], model.W_O[layer, head] @ model.W_U).T


def ov_layer_zero(model, layer, head):
    return FactoredMatrix(model.W_E @ model.W_V[0, head], model.W_O[0, head] @ model.W_U)


def ov_qk_instead(model, layer, head):
    return FactoredMatrix(model.W_E @ model.W_Q[layer, head], model.W_K[layer, head].T @ model.W_E.T)


def ov_materialised(model, layer, head):
    return model.W_E @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U


# ---------------------------------------------------------------------------------------------- top-1 accuracy
def _top1(fm, batch_size, *, dim=-1, offset=True, as_tensor=False):
    n_rows = fm.shape[-2]
    correct = torch.tensor(0)
    for start in range(0, n_rows, batch_size):
        block = fm[start: start + batch_size].AB
        first = start if offset else 0
        idx = torch.arange(first, first + block.shape[0], device=block.device)
        if dim == 0:  # argmax down the columns of the block
            correct += (block.argmax(dim=0)[: block.shape[0]] == idx).sum().cpu()
        else:
            correct += (block.argmax(dim=-1) == idx).sum().cpu()
    acc = correct / n_rows
    return acc if as_tensor else acc.item()


def top1_argmax_over_rows(full_OV_circuit, batch_size=1000):
    return _top1(full_OV_circuit, batch_size, dim=0)


def top1_no_offset(full_OV_circuit, batch_size=1000):
    return _top1(full_OV_circuit, batch_size, offset=False)


def top1_returns_tensor(full_OV_circuit, batch_size=1000):
    return _top1(full_OV_circuit, batch_size, as_tensor=True)


def top1_first_block_only(full_OV_circuit, batch_size=1000):
    block = full_OV_circuit[:batch_size].AB
    idx = torch.arange(block.shape[0], device=block.device)
    return (block.argmax(-1) == idx).float().mean().item()


# ---------------------------------------------------------------------------------------------- positional pattern
def _pos(model, layer, head, *, normalise=True, eps=True, scale=True, mask=True, dim=-1, diagonal=1):
    x = model.W_pos
    if normalise:
        x = x - x.mean(-1, keepdim=True)
        x = x / (x.pow(2).mean(-1, keepdim=True) + (model.cfg.eps if eps else 0.0)).sqrt()
    scores = x @ model.W_Q[layer, head] @ model.W_K[layer, head].T @ x.T
    if scale:
        scores = scores / model.cfg.d_head**0.5
    if mask:
        n = scores.shape[-1]
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool, device=scores.device), diagonal),
                                    float("-inf"))
    return scores.softmax(dim=dim)


def pos_no_layernorm(model, layer, head):
    return _pos(model, layer, head, normalise=False)


def pos_no_eps(model, layer, head):
    return _pos(model, layer, head, eps=False)


def pos_no_scale(model, layer, head):
    return _pos(model, layer, head, scale=False)


def pos_no_mask(model, layer, head):
    return _pos(model, layer, head, mask=False)


def pos_mask_diagonal_too(model, layer, head):
    return _pos(model, layer, head, diagonal=0)


def pos_softmax_over_queries(model, layer, head):
    return _pos(model, layer, head, dim=-2)


# ---------------------------------------------------------------------------------------------- decompositions
# The correct functions take keyword-only prev_layer=0 / ind_layer=1; each mutant honours them except where ignoring
# them is the mistake (caught by the checker's case on mlp4l, whose layers are not 0 and 1).
def _qk_input(cache, *, prev_layer=0, ind_layer=1, scale_layer=None, results_layer=None, pos=True, scale=True):
    results_layer = prev_layer if results_layer is None else results_layer
    W_O = cache.model.W_O[results_layer]
    results = einops.einsum(cache["z", results_layer], W_O, "p h d, h d m -> h p m")
    parts = [cache["embed"][None]] + ([cache["pos_embed"][None]] if pos else []) + [results]
    pieces = torch.cat(parts, dim=0)
    return pieces / cache["scale", ind_layer if scale_layer is None else scale_layer, "ln1"] if scale else pieces


def qk_input_no_scale(cache, *, prev_layer=0, ind_layer=1):
    return _qk_input(cache, prev_layer=prev_layer, ind_layer=ind_layer, scale=False)


def qk_input_prev_layer_scale(cache, *, prev_layer=0, ind_layer=1):
    return _qk_input(cache, prev_layer=prev_layer, ind_layer=ind_layer, scale_layer=prev_layer)


def qk_input_ind_layer_heads(cache, *, prev_layer=0, ind_layer=1):
    return _qk_input(cache, prev_layer=prev_layer, ind_layer=ind_layer, results_layer=ind_layer)


def qk_input_no_pos(cache, *, prev_layer=0, ind_layer=1):
    return _qk_input(cache, prev_layer=prev_layer, ind_layer=ind_layer, pos=False)


def qk_input_fixed_layers(cache, *, prev_layer=0, ind_layer=1):
    return _qk_input(cache)


def _project(x, W, bias=None):
    out = einops.einsum(x, W, "n p m, m d -> n p d")
    return out if bias is None else out + bias


def q_layer_zero(decomposed_qk_input, ind_head_index, model, *, ind_layer=1):
    return _project(decomposed_qk_input, model.W_Q[0, ind_head_index])


def q_fixed_layer(decomposed_qk_input, ind_head_index, model, *, ind_layer=1):
    return _project(decomposed_qk_input, model.W_Q[1, ind_head_index])


def q_uses_keys(decomposed_qk_input, ind_head_index, model, *, ind_layer=1):
    return _project(decomposed_qk_input, model.W_K[ind_layer, ind_head_index])


def q_with_bias(decomposed_qk_input, ind_head_index, model, *, ind_layer=1):
    return _project(decomposed_qk_input, model.W_Q[ind_layer, ind_head_index], model.b_Q[ind_layer, ind_head_index])


def k_layer_zero(decomposed_qk_input, ind_head_index, model, *, ind_layer=1):
    return _project(decomposed_qk_input, model.W_K[0, ind_head_index])


def k_fixed_layer(decomposed_qk_input, ind_head_index, model, *, ind_layer=1):
    return _project(decomposed_qk_input, model.W_K[1, ind_head_index])


def k_uses_queries(decomposed_qk_input, ind_head_index, model, *, ind_layer=1):
    return _project(decomposed_qk_input, model.W_Q[ind_layer, ind_head_index])


def k_with_bias(decomposed_qk_input, ind_head_index, model, *, ind_layer=1):
    return _project(decomposed_qk_input, model.W_K[ind_layer, ind_head_index], model.b_K[ind_layer, ind_head_index])


def scores_decomp_no_scale(decomposed_q, decomposed_k, model):
    return einops.einsum(decomposed_q, decomposed_k, "a q d, b k d -> a b q k")


def scores_decomp_scale_d_head(decomposed_q, decomposed_k, model):
    return einops.einsum(decomposed_q, decomposed_k, "a q d, b k d -> a b q k") / model.cfg.d_head


def scores_decomp_components_swapped(decomposed_q, decomposed_k, model):
    return einops.einsum(decomposed_q, decomposed_k, "a q d, b k d -> b a q k") / model.cfg.d_head**0.5


def scores_decomp_positions_swapped(decomposed_q, decomposed_k, model):
    return einops.einsum(decomposed_q, decomposed_k, "a q d, b k d -> a b k q") / model.cfg.d_head**0.5


# ---------------------------------------------------------------------------------------------- K-composition
def _kcomp(model, prev, ind, *, prev_layer=0, ind_layer=1, q_side=False, with_prev=True):
    Q = model.W_E @ model.W_Q[ind_layer, ind]
    K = model.W_E @ model.W_K[ind_layer, ind]
    OV = model.OV[prev_layer, prev].AB
    if with_prev and q_side:
        Q = model.W_E @ OV @ model.W_Q[ind_layer, ind]
    elif with_prev:
        K = model.W_E @ OV @ model.W_K[ind_layer, ind]
    return FactoredMatrix(Q, K.T)


def kcomp_transposed(model, prev_token_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _kcomp(model, prev_token_head_index, ind_head_index, prev_layer=prev_layer, ind_layer=ind_layer).T


def kcomp_no_prev_head(model, prev_token_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _kcomp(model, prev_token_head_index, ind_head_index, prev_layer=prev_layer, ind_layer=ind_layer,
                  with_prev=False)


def kcomp_layers_swapped(model, prev_token_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _kcomp(model, prev_token_head_index, ind_head_index, prev_layer=ind_layer, ind_layer=prev_layer)


def kcomp_q_composition(model, prev_token_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _kcomp(model, prev_token_head_index, ind_head_index, prev_layer=prev_layer, ind_layer=ind_layer,
                  q_side=True)


def kcomp_fixed_layers(model, prev_token_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _kcomp(model, prev_token_head_index, ind_head_index)


# ---------------------------------------------------------------------------------------------- composition scores
def comp_unnormalised(W_A, W_B):
    return (W_A @ W_B).norm().item()


def comp_only_W_A_norm(W_A, W_B):
    return ((W_A @ W_B).norm() / W_A.norm()).item()


def comp_wrong_order(W_A, W_B):
    return ((W_B @ W_A).norm() / (W_A.norm() * W_B.norm())).item()


def comp_returns_tensor(W_A, W_B):
    return (W_A @ W_B).norm() / (W_A.norm() * W_B.norm())


def batched_one_index_dim_only(W_As, W_Bs):
    W_As = FactoredMatrix(W_As.A[:, None], W_As.B[:, None])
    W_Bs = FactoredMatrix(W_Bs.A[None], W_Bs.B[None])
    return (W_As @ W_Bs).norm() / (W_As.norm() * W_Bs.norm())


def batched_no_broadcast(W_As, W_Bs):
    return (W_As @ W_Bs).norm() / (W_As.norm() * W_Bs.norm())


def batched_axes_swapped(W_As, W_Bs):
    W_As = FactoredMatrix(W_As.A[None], W_As.B[None])
    W_Bs = FactoredMatrix(W_Bs.A[:, None], W_Bs.B[:, None])
    return (W_Bs @ W_As).norm() / (W_As.norm() * W_Bs.norm())


def batched_unnormalised(W_As, W_Bs):
    W_As = FactoredMatrix(W_As.A[:, None], W_As.B[:, None])
    W_Bs = FactoredMatrix(W_Bs.A[None], W_Bs.B[None])
    return (W_As @ W_Bs).norm()


def batched_squared_norms(W_As, W_Bs):
    W_As = FactoredMatrix(W_As.A[:, None], W_As.B[:, None])
    W_Bs = FactoredMatrix(W_Bs.A[None], W_Bs.B[None])
    return (W_As @ W_Bs).norm() / (W_As.norm() ** 2 * W_Bs.norm() ** 2)


# ---------------------------------------------------------------------------------------------- ablation
def _ablation(model, tokens, seq_len, prev_head_index, ind_head_index, *, prev_layer=0, ind_layer=1, ablate_layer=None,
              offset=1, all_heads=False, truthy_test=False, on_a_copy=False):
    q = torch.arange(seq_len + 1, 2 * seq_len + 1, device=tokens.device)
    result = {}

    def ablation_hook(z, hook):
        if on_a_copy:  # zeroes a copy and returns nothing: TransformerLens keeps the original z
            z = z.clone()
            if prev_head_index is not None:
                z[:, :, prev_head_index] = 0.0
            return None
        if (prev_head_index if truthy_test else prev_head_index is not None):  # `if prev_head_index:` skips head 0
            z[:, :, prev_head_index] = 0.0
        return z

    def score_hook(pattern, hook):
        heads = slice(None) if all_heads else ind_head_index
        result["score"] = pattern[:, heads, q, q - seq_len + offset].mean().item()

    ablate_layer = prev_layer if ablate_layer is None else ablate_layer
    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(get_act_name("z", ablate_layer), ablation_hook),
                                                              (get_act_name("pattern", ind_layer), score_hook)])
    return result["score"]


def ablation_too_late(model, tokens, seq_len, prev_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _ablation(model, tokens, seq_len, prev_head_index, ind_head_index, prev_layer=prev_layer,
                     ind_layer=ind_layer, ablate_layer=ind_layer)


def ablation_duplicate_offset(model, tokens, seq_len, prev_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _ablation(model, tokens, seq_len, prev_head_index, ind_head_index, prev_layer=prev_layer,
                     ind_layer=ind_layer, offset=0)


def ablation_all_heads_score(model, tokens, seq_len, prev_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _ablation(model, tokens, seq_len, prev_head_index, ind_head_index, prev_layer=prev_layer,
                     ind_layer=ind_layer, all_heads=True)


def ablation_skips_head_zero(model, tokens, seq_len, prev_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _ablation(model, tokens, seq_len, prev_head_index, ind_head_index, prev_layer=prev_layer,
                     ind_layer=ind_layer, truthy_test=True)


def ablation_hook_on_a_copy(model, tokens, seq_len, prev_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _ablation(model, tokens, seq_len, prev_head_index, ind_head_index, prev_layer=prev_layer,
                     ind_layer=ind_layer, on_a_copy=True)


def ablation_fixed_layers(model, tokens, seq_len, prev_head_index, ind_head_index, *, prev_layer=0, ind_layer=1):
    return _ablation(model, tokens, seq_len, prev_head_index, ind_head_index)


MUTANTS = {
    "generate_repeated_tokens": [
        Mutant(gen_no_bos, "forgetting the BOS token at the start", Status.WRONG_SHAPE),
        Mutant(gen_fresh_second_copy, NOT_REPEATED),
        Mutant(gen_same_row, SAME_ROW),
        Mutant(gen_ignores_generator, IGNORES_GENERATOR),
        Mutant(gen_includes_special, SPECIAL),
        Mutant(gen_on_cpu, "leaving the tokens on the CPU (.to(model.cfg.device) missing)", Status.WRONG_DEVICE,
               only_on=("cuda", "mps")),
    ],
    "run_and_cache_model_repeated_tokens": [
        Mutant(run_generates_twice, "generating the tokens twice: the logits and cache belong to other tokens than "
               "the ones returned"),
        Mutant(run_wrong_order, "returning (logits, tokens, cache) instead of (tokens, logits, cache)",
               Status.WRONG_SHAPE),
        Mutant(run_probabilities, "returning probabilities (softmax) instead of logits"),
        Mutant(run_without_bos, "dropping the BOS token before running the model", Status.WRONG_SHAPE),
        Mutant(run_ignores_generator, RUN_IGNORES_GENERATOR),
    ],
    "induction_attn_detector": [
        Mutant(detector_all_positions, "averaging over all query positions instead of the second copy only"),
        Mutant(detector_duplicate_offset, "looking at the earlier copy of the same token (key q - seq_len) instead "
               "of the token after it (q - seq_len + 1)"),
        Mutant(detector_previous_token, "measuring attention to the previous token (a previous-token detector)"),
        Mutant(detector_whole_diagonal, "averaging the whole diagonal seq_len - 1 below the main one, which includes "
               "two queries before the second copy (positions seq_len - 1 and seq_len)"),
        Mutant(detector_below_threshold, "keeping the heads below the threshold (< instead of >)"),
        Mutant(detector_tuples, "returning (layer, head) tuples instead of 'layer.head' strings", Status.WRONG_TYPE),
    ],
    "induction_scores": [
        Mutant(scores_duplicate_offset, "looking at the earlier copy of the same token (key q - seq_len) instead of "
               "the token after it (q - seq_len + 1)"),
        Mutant(scores_whole_diagonal, "averaging the whole diagonal, which includes two positions before the second "
               "copy"),
        Mutant(scores_queries_one_early, QUERIES_ONE_EARLY),
        Mutant(scores_same_row, "writing every layer's scores into all rows (scores[:] = ... instead of "
               "scores[hook.layer()] = ...)"),
        Mutant(scores_sum_over_batch, "summing over the batch instead of averaging"),
    ],
    "logit_attribution": [
        Mutant(attr_no_shift, "not shifting the targets: using tokens[:-1] (the current token) instead of "
               "tokens[1:] (the next one)"),
        Mutant(attr_drops_first_position, "dropping the first position instead of the last: position p is scored on "
               "tokens[p + 1], so keep positions :-1 and targets tokens[1:]"),
        Mutant(attr_layers_swapped, "putting layer 1's heads before layer 0's"),
        Mutant(attr_no_direct_path, "leaving out the direct path (embed) column", Status.WRONG_SHAPE),
        Mutant(attr_all_positions, "keeping the last position (seq instead of seq - 1 rows)", Status.WRONG_SHAPE),
    ],
    "full_ov_circuit": [
        Mutant(ov_no_unembed, "forgetting W_U at the end (the circuit must end in logits)", Status.WRONG_SHAPE),
        Mutant(ov_transposed, "returning the transpose (rows must be the attended token, columns the logits)"),
        Mutant(ov_layer_zero, "always using layer 0's weights instead of the given layer"),
        Mutant(ov_qk_instead, "using the QK matrices (W_Q W_K^T) instead of the OV matrices (W_V W_O)"),
        Mutant(ov_materialised, "multiplying everything out into a dense tensor instead of a FactoredMatrix",
               Status.WRONG_SHAPE),
    ],
    "top_1_acc": [
        Mutant(top1_argmax_over_rows, "taking the argmax over rows (dim 0) instead of over each row's columns"),
        Mutant(top1_no_offset, "comparing each block with arange(len(block)) instead of arange(start, start + "
               "len(block))"),
        Mutant(top1_first_block_only, "only looking at the first batch_size rows"),
        Mutant(top1_returns_tensor, "returning a tensor instead of a Python float (.item())", Status.WRONG_TYPE),
    ],
    "pos_by_pos_pattern": [
        Mutant(pos_no_layernorm, "using the raw W_pos without the LayerNorm normalisation"),
        Mutant(pos_no_eps, NO_EPS, only_on=("cpu", "cuda")),  # within MPS's looser tolerance
        Mutant(pos_no_scale, "forgetting the 1/sqrt(d_head) scale"),
        Mutant(pos_no_mask, "forgetting the causal mask"),
        Mutant(pos_mask_diagonal_too, "masking the diagonal too (torch.triu without diagonal=1): query 0 then has "
               "no key left", Status.NAN),
        Mutant(pos_softmax_over_queries, "taking the softmax over queries (dim -2) instead of keys"),
    ],
    "decompose_qk_input": [
        Mutant(qk_input_no_scale, "forgetting to divide by layer ind_layer's LayerNorm scale"),
        Mutant(qk_input_prev_layer_scale, "dividing by the LayerNorm scale of prev_layer instead of ind_layer (the "
               "induction head's layer)"),
        Mutant(qk_input_ind_layer_heads, "using the head outputs of ind_layer (the induction head reads the "
               "previous-token head's layer, prev_layer)"),
        Mutant(qk_input_no_pos, "leaving out the positional embedding", Status.WRONG_SHAPE),
        Mutant(qk_input_fixed_layers, FIXED),
    ],
    "decompose_q": [
        Mutant(q_layer_zero, "using layer 0's W_Q instead of the induction head's layer (ind_layer)"),
        Mutant(q_fixed_layer, FIXED),
        Mutant(q_uses_keys, "using W_K instead of W_Q"),
        Mutant(q_with_bias, "adding the bias b_Q to every piece (the bias is not part of any piece)"),
    ],
    "decompose_k": [
        Mutant(k_layer_zero, "using layer 0's W_K instead of the induction head's layer (ind_layer)"),
        Mutant(k_fixed_layer, FIXED),
        Mutant(k_uses_queries, "using W_Q instead of W_K"),
        Mutant(k_with_bias, "adding the bias b_K to every piece (the bias is not part of any piece)"),
    ],
    "decompose_attn_scores": [
        Mutant(scores_decomp_no_scale, "forgetting the 1/sqrt(d_head) scale"),
        Mutant(scores_decomp_scale_d_head, "dividing by d_head instead of sqrt(d_head)"),
        Mutant(scores_decomp_components_swapped, "putting the key pieces before the query pieces"),
        Mutant(scores_decomp_positions_swapped, "putting key positions before query positions"),
    ],
    "find_K_comp_full_circuit": [
        Mutant(kcomp_transposed, "returning the transpose (rows must be query tokens, columns key tokens)"),
        Mutant(kcomp_no_prev_head, "leaving out the previous-token head's W_V W_O on the key side"),
        Mutant(kcomp_layers_swapped, "swapping the layers (the previous-token head is in prev_layer, the "
               "induction head in ind_layer)"),
        Mutant(kcomp_q_composition, "putting the previous-token head on the query side (Q-composition)"),
        Mutant(kcomp_fixed_layers, FIXED),
    ],
    "get_comp_score": [
        Mutant(comp_unnormalised, "forgetting to divide by ||W_A|| ||W_B||"),
        Mutant(comp_only_W_A_norm, "dividing by ||W_A|| only"),
        Mutant(comp_wrong_order, "multiplying W_B @ W_A instead of W_A @ W_B"),
        Mutant(comp_returns_tensor, "returning a tensor instead of a Python float (.item())", Status.WRONG_TYPE),
    ],
    "get_batched_comp_scores": [
        Mutant(batched_one_index_dim_only, "handling exactly one index dimension on each side (W_As.A[:, None]): "
               "[layer, head] grids or a single matrix need one new axis per index dimension of the other side",
               Status.WRONG_SHAPE),
        Mutant(batched_no_broadcast, "not adding the new axes: pairs head i with head i only", Status.WRONG_SHAPE),
        Mutant(batched_axes_swapped, "adding the new axes the other way round (rows must be W_As' heads)"),
        Mutant(batched_unnormalised, "forgetting to divide by the norms"),
        Mutant(batched_squared_norms, "dividing by the squared norms"),
    ],
    "ablation_induction_score": [
        Mutant(ablation_too_late, "ablating the head in the induction head's layer (its hook_z comes after its "
               "pattern)", symptom=NO_CHANGE),
        Mutant(ablation_skips_head_zero, "testing `if prev_head_index:`, which is False for head 0 too (test `is not "
               "None`)", symptom=NO_CHANGE),
        Mutant(ablation_hook_on_a_copy, "zeroing a copy of z (z = z.clone()) in a hook that returns nothing: "
               "TransformerLens then keeps the original z", symptom=NO_CHANGE),
        Mutant(ablation_duplicate_offset, "measuring attention to the earlier copy of the same token (q - seq_len) "
               "instead of the token after it"),
        Mutant(ablation_all_heads_score, "averaging the score over all heads of ind_layer instead of "
               "ind_head_index"),
        Mutant(ablation_fixed_layers, FIXED),
    ],
}
