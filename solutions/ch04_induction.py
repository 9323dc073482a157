"""Reference solutions for chapter ch04_induction.

Generated from chapters/src/04_induction.py by `make build`: do not edit; edit the source and rebuild.
"""


import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, FactoredMatrix, HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name


def generate_repeated_tokens(
    model: HookedTransformer, seq_len: int, batch_size: int = 1, *, generator: torch.Generator | None = None
) -> Int[Tensor, "batch full_seq_len"]:
    """`[BOS] + r + r` for `batch_size` independent random sequences `r` of `seq_len` non-special tokens.

    Returns int64 tokens of shape `[batch_size, 1 + 2 * seq_len]` on `model.cfg.device`.
    """
    special = set(model.tokenizer.all_special_ids)
    allowed = torch.tensor([t for t in range(model.cfg.d_vocab) if t not in special])
    r = allowed[torch.randint(0, len(allowed), (batch_size, seq_len), generator=generator)]
    bos = torch.full((batch_size, 1), model.tokenizer.bos_token_id)
    return torch.cat([bos, r, r], dim=1).to(model.cfg.device)


def run_and_cache_model_repeated_tokens(
    model: HookedTransformer, seq_len: int, batch_size: int = 1, *, generator: torch.Generator | None = None
) -> tuple[Int[Tensor, "batch full_seq_len"], Float[Tensor, "batch full_seq_len d_vocab"], ActivationCache]:
    """Generate `[BOS] + r + r` (with `generate_repeated_tokens`), run the model with a cache.

    Returns `(tokens, logits, cache)`.
    """
    tokens = generate_repeated_tokens(model, seq_len, batch_size, generator=generator)
    logits, cache = model.run_with_cache(tokens)
    return tokens, logits, cache


def induction_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads (as `"layer.head"`) whose mean attention from each second-copy token to the token after its
    earlier copy is above `threshold`. `cache` comes from a run on `[BOS] + r + r` (with a batch dimension)."""
    n_layers, n_heads = cache.model.cfg.n_layers, cache.model.cfg.n_heads
    found = []
    for layer in range(n_layers):
        pattern = cache["pattern", layer]  # [batch, head, query, key]
        seq_len = (pattern.shape[-1] - 1) // 2
        q = torch.arange(seq_len + 1, 2 * seq_len + 1, device=pattern.device)
        scores = pattern[:, :, q, q - seq_len + 1].mean(dim=(0, 2))
        found += [f"{layer}.{head}" for head in range(n_heads) if scores[head] > threshold]
    return found


def induction_scores(
    model: HookedTransformer, tokens: Int[Tensor, "batch full_seq_len"], seq_len: int
) -> Float[Tensor, "layer head"]:
    """The induction score of every head on `tokens = [BOS] + r + r` (`r` of length `seq_len`)."""
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)
    q = torch.arange(seq_len + 1, 2 * seq_len + 1, device=tokens.device)

    def hook_fn(pattern: Float[Tensor, "batch head query key"], hook: HookPoint) -> None:
        scores[hook.layer()] = pattern[:, :, q, q - seq_len + 1].mean(dim=(0, 2))

    model.run_with_hooks(tokens, return_type=None,
                         fwd_hooks=[(lambda name: name.endswith("hook_pattern"), hook_fn)])
    return scores


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
    W_U_correct = W_U[:, tokens[1:]]  # [d_model, seq - 1]
    direct = einops.einsum(embed[:-1], W_U_correct, "seq d_model, d_model seq -> seq")
    l1 = einops.einsum(l1_results[:-1], W_U_correct, "seq head d_model, d_model seq -> seq head")
    l2 = einops.einsum(l2_results[:-1], W_U_correct, "seq head d_model, d_model seq -> seq head")
    return torch.cat([direct[:, None], l1, l2], dim=-1)


def full_ov_circuit(model: HookedTransformer, layer: int, head: int) -> FactoredMatrix:
    """`W_E @ W_V[layer, head] @ W_O[layer, head] @ W_U` as a FactoredMatrix (never materialised).

    Row `i`, column `j`: how much attending to token `i` raises the logit of token `j`.
    """
    return FactoredMatrix(model.W_E @ model.W_V[layer, head], model.W_O[layer, head] @ model.W_U)


def top_1_acc(full_OV_circuit: FactoredMatrix, batch_size: int = 1000) -> float:
    """Fraction of rows `i` whose largest entry is in column `i`."""
    n_rows = full_OV_circuit.shape[-2]
    correct = 0
    for start in range(0, n_rows, batch_size):
        rows = full_OV_circuit[start: start + batch_size].AB
        idx = torch.arange(start, start + rows.shape[0], device=rows.device)
        correct += (rows.argmax(dim=-1) == idx).sum().item()
    return correct / n_rows


def pos_by_pos_pattern(model: HookedTransformer, layer: int, head: int) -> Float[Tensor, "n_ctx n_ctx"]:
    """Attention pattern `[query_pos, key_pos]` of `head` from the LayerNorm-normalised rows of `W_pos` alone."""
    x = model.W_pos - model.W_pos.mean(-1, keepdim=True)
    x = x / x.pow(2).mean(-1, keepdim=True).sqrt()
    scores = (x @ model.QK[layer, head] @ x.T).AB / model.cfg.d_head**0.5
    n_ctx = x.shape[0]
    future = torch.triu(torch.ones(n_ctx, n_ctx, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def decompose_qk_input(
    cache: ActivationCache, *, prev_layer: int = 0, ind_layer: int = 1
) -> Float[Tensor, "n_heads_plus_2 posn d_model"]:
    """`[embed, pos_embed, output of head prev_layer.0, ..., of head prev_layer.(n_heads-1)]`, each divided by
    layer `ind_layer`'s ln1 scale. `cache` has no batch dimension.
    """
    W_O = cache.model.W_O[prev_layer]
    results = einops.einsum(cache["z", prev_layer], W_O, "posn head d_head, head d_head d_model -> head posn d_model")
    pieces = torch.cat([cache["embed"][None], cache["pos_embed"][None], results], dim=0)
    return pieces / cache["scale", ind_layer, "ln1"]


def decompose_q(
    decomposed_qk_input: Float[Tensor, "n_heads_plus_2 posn d_model"],
    ind_head_index: int,
    model: HookedTransformer,
    *,
    ind_layer: int = 1,
) -> Float[Tensor, "n_heads_plus_2 posn d_head"]:
    """Each piece's contribution to the query of head `ind_layer.ind_head_index` (no bias)."""
    W_Q = model.W_Q[ind_layer, ind_head_index]
    return einops.einsum(decomposed_qk_input, W_Q, "n posn d_model, d_model d_head -> n posn d_head")


def decompose_k(
    decomposed_qk_input: Float[Tensor, "n_heads_plus_2 posn d_model"],
    ind_head_index: int,
    model: HookedTransformer,
    *,
    ind_layer: int = 1,
) -> Float[Tensor, "n_heads_plus_2 posn d_head"]:
    """Each piece's contribution to the key of head `ind_layer.ind_head_index` (no bias)."""
    W_K = model.W_K[ind_layer, ind_head_index]
    return einops.einsum(decomposed_qk_input, W_K, "n posn d_model, d_model d_head -> n posn d_head")


def decompose_attn_scores(
    decomposed_q: Float[Tensor, "q_comp posn_q d_head"],
    decomposed_k: Float[Tensor, "k_comp posn_k d_head"],
    model: HookedTransformer,
) -> Float[Tensor, "q_comp k_comp posn_q posn_k"]:
    """Attention-score contribution of each (query piece, key piece) pair, divided by sqrt(d_head)."""
    scores = einops.einsum(decomposed_q, decomposed_k,
                           "q_comp posn_q d_head, k_comp posn_k d_head -> q_comp k_comp posn_q posn_k")
    return scores / model.cfg.d_head**0.5


def find_K_comp_full_circuit(
    model: HookedTransformer, prev_token_head_index: int, ind_head_index: int, *, prev_layer: int = 0,
    ind_layer: int = 1,
) -> FactoredMatrix:
    """`W_E W_Q[ind_layer, ind] (W_E W_V[prev_layer, prev] W_O[prev_layer, prev] W_K[ind_layer, ind])^T` as a
    FactoredMatrix. Rows are query tokens, columns key tokens (the token the previous-token head saw).
    """
    W_E = model.W_E
    Q = W_E @ model.W_Q[ind_layer, ind_head_index]
    W_OV = model.W_V[prev_layer, prev_token_head_index] @ model.W_O[prev_layer, prev_token_head_index]
    K = W_E @ W_OV @ model.W_K[ind_layer, ind_head_index]
    return FactoredMatrix(Q, K.T)


def get_comp_score(W_A: Float[Tensor, "in_A out_A"], W_B: Float[Tensor, "out_A out_B"]) -> float:
    """`||W_A @ W_B||_F / (||W_A||_F * ||W_B||_F)`, as a Python float."""
    return ((W_A @ W_B).norm() / (W_A.norm() * W_B.norm())).item()


def get_batched_comp_scores(W_As: FactoredMatrix, W_Bs: FactoredMatrix) -> Float[Tensor, "heads_A heads_B"]:
    """Composition score of every pair: `W_As` `[heads_A, d_model, d_model]`, `W_Bs` `[heads_B, d_model, d_model]`."""
    W_As = FactoredMatrix(W_As.A[:, None], W_As.B[:, None])
    W_Bs = FactoredMatrix(W_Bs.A[None], W_Bs.B[None])
    return (W_As @ W_Bs).norm() / (W_As.norm() * W_Bs.norm())


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


# The hint of each exercise, from its hint cell: shown by the checker when a failure matches no known
# mistake.
HINTS = {
    'generate_repeated_tokens': (
        'Keep a tensor `allowed` of the non-special ids, draw *indices* into it with\n`torch.randint'
        '(0, len(allowed), (batch_size, seq_len), generator=generator)`, then\n`torch.cat([bos, r, r'
        '], dim=1)` with `bos = torch.full((batch_size, 1), model.tokenizer.bos_token_id)`.\nThe che'
        'ck verifies the structure (BOS column, second half equal to the first, no special tokens, '
        'rows that\ndiffer, the generator really used), not particular random values.'
    ),
    'run_and_cache_model_repeated_tokens': (
        '`tokens = generate_repeated_tokens(model, seq_len, batch_size, generator=generator)`, then'
        '\n`logits, cache = model.run_with_cache(tokens)`. Generate the tokens *once*: the logits an'
        'd the cache must\nbelong to the tokens you return.'
    ),
    'induction_attn_detector': (
        'For each layer: `pattern = cache["pattern", layer]` (`[batch, head, query, key]`),\n`seq_le'
        'n = (pattern.shape[-1] - 1) // 2`, `q = torch.arange(seq_len + 1, 2 * seq_len + 1)`, and t'
        'he score is\n`pattern[:, :, q, q - seq_len + 1].mean(dim=(0, 2))`. The key is one *after* t'
        'he earlier copy: `q - seq_len`\nwould be the copy itself (a "duplicate-token" head).'
    ),
    'induction_scores': (
        'Inside `hook_fn(pattern, hook)`: `scores[hook.layer()] = pattern[:, :, q, q - seq_len + 1]'
        '.mean(dim=(0, 2))`\nwhere `q = torch.arange(seq_len + 1, 2 * seq_len + 1)`. Only the second'
        ' copy counts: the whole diagonal\n(`pattern.diagonal(-(seq_len - 1), -2, -1)`) also include'
        's two positions before it.'
    ),
    'logit_attribution': (
        '`W_U_correct = W_U[:, tokens[1:]]` (one column per prediction), then\n`einops.einsum(l1_res'
        'ults[:-1], W_U_correct, "seq head d_model, d_model seq -> seq head")` and the same for\n`em'
        'bed[:-1]` and `l2_results[:-1]`; `torch.cat([direct[:, None], l1, l2], dim=-1)`. The last '
        'position\npredicts nothing we know, so it is dropped.'
    ),
    'full_ov_circuit': (
        '`FactoredMatrix(model.W_E @ model.W_V[layer, head], model.W_O[layer, head] @ model.W_U)`: '
        'the left factor is\n`[d_vocab, d_head]`, the right `[d_head, d_vocab]`. `model.W_E @ model.'
        'OV[layer, head] @ model.W_U` works too.'
    ),
    'top_1_acc': (
        'Loop `start` over `range(0, n_rows, batch_size)`; `rows = full_OV_circuit[start:start + ba'
        'tch_size].AB`;\ncompare `rows.argmax(dim=-1)` with `torch.arange(start, start + len(rows))`'
        ' (row `i` of the block is token\n`start + i`). Divide by the number of rows and return a Py'
        'thon float.'
    ),
    'pos_by_pos_pattern': (
        'Normalise: `x = W_pos - W_pos.mean(-1, keepdim=True)`; `x = x / x.pow(2).mean(-1, keepdim='
        'True).sqrt()`. Then\n`scores = (x @ model.QK[layer, head] @ x.T).AB / model.cfg.d_head ** 0'
        '.5`, mask strictly above\nthe diagonal with `-inf` (`torch.triu(..., diagonal=1)`) and `sof'
        "tmax(dim=-1)`: exactly chapter 0's\nattention pattern."
    ),
    'decompose_qk_input': (
        '`results = einops.einsum(cache["z", prev_layer], cache.model.W_O[prev_layer], "posn head d'
        '_head, head d_head\nd_model -> head posn d_model")`, then `torch.cat([cache["embed"][None],'
        ' cache["pos_embed"][None], results])`\ndivided by `cache["scale", ind_layer, "ln1"]` (shape'
        ' `[posn, 1]`, it broadcasts).'
    ),
    'decompose_q': (
        '`einops.einsum(decomposed_qk_input, model.W_Q[ind_layer, ind_head_index], "n posn d_model,'
        ' d_model d_head ->\nn posn d_head")`: the induction head\'s layer `ind_layer` (1 in `attn2l`'
        '), not layer 0.'
    ),
    'decompose_k': 'The same as `decompose_q` with `model.W_K[ind_layer, ind_head_index]`.',
    'decompose_attn_scores': (
        '`einops.einsum(decomposed_q, decomposed_k, "q_comp posn_q d_head, k_comp posn_k d_head -> '
        'q_comp k_comp\nposn_q posn_k")` divided by `model.cfg.d_head ** 0.5`.'
    ),
    'find_K_comp_full_circuit': (
        '`Q = W_E @ model.W_Q[ind_layer, ind]` (`[d_vocab, d_head]`), `K = W_E @ model.W_V[prev_lay'
        'er, prev] @\nmodel.W_O[prev_layer, prev] @ model.W_K[ind_layer, ind]` (`[d_vocab, d_head]`)'
        ", and `FactoredMatrix(Q, K.T)`.\nThe OV matrices of the previous-token head's layer (0 by d"
        "efault) feed the key of the induction head's (1)."
    ),
    'get_comp_score': (
        '`((W_A @ W_B).norm() / (W_A.norm() * W_B.norm())).item()`: `Tensor.norm()` with no argumen'
        'ts is the\nFrobenius norm.'
    ),
    'get_batched_comp_scores': (
        '`FactoredMatrix(W_As.A[:, None], W_As.B[:, None])` and `FactoredMatrix(W_Bs.A[None], W_Bs.'
        'B[None])`; then\n`(W_As @ W_Bs).norm() / (W_As.norm() * W_Bs.norm())` broadcasts to `[heads'
        '_A, heads_B]`.'
    ),
    'ablation_induction_score': (
        '`ablation_hook(z, hook)`: `z[:, :, prev_head_index] = 0.0; return z` (skip when `prev_head'
        '_index is None`).\n`score_hook(pattern, hook)`: store `pattern[:, ind_head_index, q, q - se'
        'q_len + 1].mean().item()` in a dict\nof your function. Hook names: `get_act_name("z", prev_'
        'layer)` and `get_act_name("pattern", ind_layer)`.'
    ),
}
