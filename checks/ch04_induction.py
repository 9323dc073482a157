"""Checkers for chapter 4 (induction heads), plus tests that the shipped model tells the chapter's story.

Cases are built from the shipped ``attn2l`` model (loaded once per device), real ``[BOS] + r + r`` tokens from
seeded generators, real caches, and seeded random tensors; ``tests/framework.py`` compares the learner's
function with ``solutions.ch04_induction`` and ``checks/mutants/ch04_induction.py`` holds the known mistakes.
Exercises whose outputs are random (the repeated tokens) or objects (``FactoredMatrix``, caches) are checked
by custom checks or through a transform into plain tensors.
"""

import functools
from pathlib import Path

import torch
from transformer_lens import ActivationCache, FactoredMatrix
from transformer_lens.utilities import get_act_name

from checks.helpers import LOGITS, PATTERNS, chapter_model, seeded, shipped_model
from checks.mutants.ch04_induction import (
    IGNORES_GENERATOR,
    MUTANTS,
    NOT_REPEATED,
    RUN_IGNORES_GENERATOR,
    SAME_ROW,
    SPECIAL,
)
from utils.checkers import Chapter
from utils.checking import Case, CheckFailure, Status, compare
from utils.data import cache_patterns, induction_scores_of_patterns, non_special_ids, repeat_losses, repeated_tokens

chapter = Chapter("ch04_induction", mutants=MUTANTS)
ROOT = Path(__file__).resolve().parents[1]

# Logits, scores and products of several weight matrices accumulate float32 rounding over d_model (128) or
# d_vocab (2048) terms, in an order a learner may change: 1e-4 absolute is enough on CPU; other devices reorder
# reductions (and may use TF32), hence looser bounds there.



def _deep(device):
    """The 4-layer model and layer arguments that are not the defaults (0, 1): catches hard-coded layers."""
    model = shipped_model("mlp4l", device)
    return model, dict(prev_layer=model.cfg.n_layers - 2, ind_layer=model.cfg.n_layers - 1)


def _kw(kwargs):
    """Keyword arguments for a case label: ``prev_layer=2, ind_layer=3``."""
    return ", ".join(f"{k}={v}" for k, v in kwargs.items())


@functools.cache
def _rep(device, seq_len, batch, seed, name="attn2l"):
    """Reference ``[BOS] + r + r`` tokens and their cache (batch dimension kept)."""
    model = shipped_model(name, device)
    tokens = repeated_tokens(model, seq_len, batch, seed=seed)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return tokens, cache


def _single(device, seq_len, seed, name="attn2l"):
    """A one-sequence cache without batch dimension."""
    _, cache = _rep(device, seq_len, 1, seed, name)
    return ActivationCache({k: v[0] for k, v in cache.items()}, cache.model, has_batch_dim=False)


def _induction_scores(cache):
    """[layer, head] induction scores of a cache's patterns: the course's one definition (``utils.data``)."""
    return induction_scores_of_patterns(cache_patterns(cache))


def _prev_scores(cache):
    out = []
    for layer in range(cache.model.cfg.n_layers):
        out.append(cache["pattern", layer].diagonal(-1, -2, -1)[..., 1:].mean(dim=(0, 2)))
    return torch.stack(out)


def _key_heads(device):
    """(top previous-token head of layer 0, top induction head of layer 1), computed, never hard-coded."""
    _, cache = _rep(device, 50, 10, 0)
    return int(_prev_scores(cache)[0].argmax()), int(_induction_scores(cache)[1].argmax())


# ------------------------------------------------------------------------------------------------ repeated tokens
def _check_repeated_tokens(got, model, seq_len, batch_size):
    """Structure of [BOS] + r + r; raises CheckFailure with a learner-facing message."""
    expected_like = torch.zeros(batch_size, 1 + 2 * seq_len, dtype=torch.long, device=model.cfg.device)
    compare(got, expected_like, name="tokens", dims="batch full_seq_len", values=False)
    got = got.detach().as_subclass(torch.Tensor).cpu()
    bos = model.tokenizer.bos_token_id
    if not bool((got[:, 0] == bos).all()):
        raise CheckFailure(Status.WRONG_VALUES, f"tokens[:, 0] should be the BOS token (id {bos}) in "
                           f"every row, got {got[:, 0].tolist()[:8]}")
    first, second = got[:, 1: 1 + seq_len], got[:, 1 + seq_len:]
    if not bool((first == second).all()):
        raise CheckFailure(Status.WRONG_VALUES, f"the second copy tokens[:, 1 + seq_len:] differs from "
                           f"the first tokens[:, 1:1 + seq_len] (typical cause: {NOT_REPEATED})")
    if bool(((first < 0) | (first >= model.cfg.d_vocab)).any()):
        raise CheckFailure(Status.WRONG_VALUES, f"r contains ids outside [0, d_vocab = {model.cfg.d_vocab})")
    drawn = ~torch.isin(first, non_special_ids(model))
    if bool(drawn.any()):
        raise CheckFailure(Status.WRONG_VALUES, f"r contains the special token id {int(first[drawn][0])} "
                           f"({int(drawn.sum())} of {drawn.numel()} draws are special; typical cause: {SPECIAL})")
    if batch_size > 1 and seq_len > 2 and bool((first == first[:1]).all()):
        raise CheckFailure(Status.WRONG_VALUES, f"every row is the same sequence (typical "
                           f"cause: {SAME_ROW})")
    n_draws = batch_size * seq_len
    if n_draws >= 200:  # uniform draws from ~2000 ids: far more distinct values than this
        distinct = len(torch.unique(first))
        expected_distinct = model.cfg.d_vocab * (1 - (1 - 1 / model.cfg.d_vocab) ** n_draws)
        if distinct < 0.7 * expected_distinct:
            raise CheckFailure(Status.WRONG_VALUES, f"only {distinct} distinct tokens in {n_draws} draws "
                               f"(uniform draws give about {expected_distinct:.0f}): draw uniformly from the whole "
                               "vocabulary")


def _check_seeded(attempt, tokens_of, cause):
    """The generator (and only it) drives the tokens: the same seed gives the same tokens, another seed others."""
    seq_len = attempt.case.args[1]
    again = tokens_of(attempt.call_again())
    other = tokens_of(attempt.call_again(generator=seeded(1000 + seq_len)))
    got, again, other = (_plain(t) for t in (tokens_of(attempt.raw), again, other))
    if not torch.equal(got, again) or torch.equal(got, other):
        raise CheckFailure(Status.WRONG_VALUES, "identically seeded generators must give the same tokens and "
                           f"differently seeded ones different tokens (typical cause: {cause})")


def _judge_repeated_tokens(attempt):
    """The output is random: check its structure, and that the generator (and only it) drives it."""
    model, seq_len, batch_size = attempt.case.args
    _check_repeated_tokens(attempt.got, model, seq_len, batch_size)
    _check_seeded(attempt, lambda tokens: tokens, IGNORES_GENERATOR)


@chapter.exercise(dims="batch full_seq_len", judge=_judge_repeated_tokens)
def generate_repeated_tokens(device):
    model = chapter_model(chapter, device)
    yield Case((model, 50, 8), {"generator": seeded(0)}, label="seq_len=50, batch_size=8")
    yield Case((model, 5, 1), {"generator": seeded(1)}, label="seq_len=5, batch_size=1")
    yield Case((model, 30, 4), {"generator": seeded(2)}, label="seq_len=30, batch_size=4")
    # 32,000 draws: each of the ~2,000 ids is drawn about 16 times, so a special id that can be drawn is drawn (the
    # chance that a given id never is: e^-16). The model is not run, so seq_len may exceed n_ctx.
    yield Case((model, 1000, 32), {"generator": seeded(3)}, label="seq_len=1000, batch_size=32 (32,000 draws)")


def _cache_tensor(cache, name):
    """One activation of a returned cache (an ActivationCache or a dict), as a plain tensor."""
    if hasattr(cache, "cache_dict"):
        return cache.cache_dict[name]
    return cache[name]


def _flatten_run(out):
    """(tokens, logits, cache) -> plain tensors (tokens, logits, layer-0 pattern, layer-1 pattern)."""
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailure(Status.WRONG_TYPE, f"returned {type(out).__name__}, expected a tuple (tokens, logits, "
                           "cache)")
    tokens, logits, cache = out
    patterns = []
    for name in ("blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"):
        try:
            patterns.append(_cache_tensor(cache, name))
        except Exception:
            raise CheckFailure(Status.WRONG_TYPE, f"cache is {type(cache).__name__} and cache[{name!r}] failed: return "
                               "the ActivationCache of model.run_with_cache(tokens)") from None
    return (tokens, logits, *patterns)


def _judge_run_and_cache(attempt):
    """The tokens are random: they must be [BOS] + r + r drawn with the generator given, and the logits and the
    cache the model's on the tokens returned."""
    model, seq_len, batch_size = attempt.case.args
    tokens, logits, *patterns = attempt.got
    _check_repeated_tokens(tokens, model, seq_len, batch_size)  # first: the model cannot run on invalid ids
    tokens = _plain(tokens)
    with torch.no_grad():
        exp_logits, exp_cache = model.run_with_cache(tokens)
    attempt.compare(logits, exp_logits, name="logits", dims="batch pos d_vocab")
    for layer, pattern in enumerate(patterns):
        name = get_act_name("pattern", layer)
        attempt.compare(pattern, exp_cache[name], name=f"cache[{name!r}]", dims="batch head query key")
    _check_seeded(attempt, lambda out: out[0], RUN_IGNORES_GENERATOR)


@chapter.exercise(tol=LOGITS, transform=_flatten_run, judge=_judge_run_and_cache)
def run_and_cache_model_repeated_tokens(device):
    model = chapter_model(chapter, device)
    yield Case((model, 20, 3), {"generator": seeded(0)}, label="seq_len=20, batch_size=3")
    yield Case((model, 6, 1), {"generator": seeded(1)}, label="seq_len=6, batch_size=1")


# ------------------------------------------------------------------------------------------------ detector
def _heads_mask(heads, model):
    mask = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    for name in heads:
        layer, head = (int(x) for x in name.split("."))
        mask[layer, head] = True
    return mask


def _mask_of(device):
    """The transform of induction_attn_detector: a list of 'layer.head' strings -> a [layer, head] mask, so the
    order of the heads does not matter."""
    model = chapter_model(chapter, device)

    def to_mask(heads):
        if not isinstance(heads, (list, tuple)) or not all(isinstance(h, str) for h in heads):
            raise CheckFailure(Status.WRONG_TYPE, f"returned {heads!r:.200}, expected a list of strings like "
                               "['1.0', '1.3']")
        try:
            return _heads_mask(heads, model)
        except (ValueError, IndexError):
            raise CheckFailure(Status.WRONG_TYPE, f"returned {heads!r:.200}; write each head as 'layer.head', "
                               "e.g. '1.3'") from None

    return to_mask


def _judge_heads(attempt):
    def named(mask):
        return sorted(f"{layer}.{head}" for layer, head in mask.nonzero().tolist())

    try:
        attempt.compare(name="detected heads")
    except CheckFailure as failure:
        raise failure.with_context(f"(True = detected; got {named(attempt.got)}, expected "
                                   f"{named(attempt.expected)}) ") from None


def _made_up_cache(device, seq_len=10, batch=2):
    """A cache of made-up attention patterns for attn2l's shape (uniform causal attention) in which the second
    copy and the two queries before it disagree: layer 1 head 0 puts 0.45 on the induction key in the second copy
    and nothing before it (an induction head at threshold 0.4), head 1 puts 0.35 there and 1.0 on the same diagonal
    before it (not one). Averaging the whole diagonal seq_len - 1 below the main one gets both wrong."""
    model = chapter_model(chapter, device)
    n = 1 + 2 * seq_len
    causal = torch.tril(torch.ones(n, n))
    patterns = []
    for layer in range(model.cfg.n_layers):
        pattern = (causal / causal.sum(-1, keepdim=True)).repeat(batch, model.cfg.n_heads, 1, 1)
        if layer == 1:
            for head, (second_copy, before) in enumerate([(0.45, 0.0), (0.35, 1.0)][:model.cfg.n_heads]):
                for q in range(seq_len - 1, n):
                    key, stripe = q - seq_len + 1, second_copy if q > seq_len else before
                    others = causal[q].clone()
                    others[key] = 0
                    pattern[:, head, q] = others / others.sum() * (1 - stripe)
                    pattern[:, head, q, key] = stripe
        patterns.append(pattern.to(device))
    return ActivationCache({get_act_name("pattern", layer): p for layer, p in enumerate(patterns)}, model)


@chapter.exercise(dims="layer head", transform_for=_mask_of, judge=_judge_heads)
def induction_attn_detector(device):
    _, cache = _rep(device, 50, 10, 0)
    top = float(_induction_scores(cache).max())
    yield Case((cache,), {"threshold": 0.2}, label="seq_len=50, batch=10, threshold=0.2")
    yield Case((cache,), {"threshold": 0.75 * top},
               label=f"seq_len=50, batch=10, threshold={0.75 * top:.3f} (3/4 of the best score)")
    yield Case((_rep(device, 20, 4, 1)[1],), label="seq_len=20, batch=4, default threshold 0.4")
    yield Case((_made_up_cache(device),), label="made-up patterns, seq_len=10: layer 1's heads attend differently to "
               "the induction key in the second copy and in the two queries before it")


# ------------------------------------------------------------------------------------------------ induction scores
@chapter.exercise(dims="layer head")
def induction_scores(device):
    model = chapter_model(chapter, device)
    for seq_len, batch, seed in [(20, 4, 1), (50, 10, 0), (7, 1, 2)]:
        tokens, _ = _rep(device, seq_len, batch, seed)
        yield Case((model, tokens, seq_len), label=f"[BOS] + r + r, seq_len={seq_len}, batch={batch}")


# ------------------------------------------------------------------------------------------------ logit attribution
def _randn(*shape, device, seed=0, scale=1.0):
    return (torch.randn(*shape, generator=seeded(seed)) * scale).to(device)


@chapter.exercise(dims="seq_minus_1 n_components", tol=LOGITS)
def logit_attribution(device):
    yield Case((_randn(6, 16, device=device), _randn(6, 3, 16, device=device, seed=1),
                _randn(6, 3, 16, device=device, seed=2), _randn(16, 50, device=device, seed=3),
                torch.randint(0, 50, (6,), generator=seeded(4)).to(device)),
               label="random: seq=6, 3 heads, d_model=16, d_vocab=50")
    model = chapter_model(chapter, device)
    cache = _single(device, 10, 3)
    tokens, _ = _rep(device, 10, 1, 3)
    results = [torch.einsum("phd,hdm->phm", cache["z", layer], model.W_O[layer]).detach() for layer in range(2)]
    yield Case((cache["embed"] + cache["pos_embed"], results[0], results[1], model.W_U.detach(), tokens[0]),
               label="attn2l on [BOS] + r + r with seq_len=10 (unscaled residual pieces)")


# ------------------------------------------------------------------------------------------------ OV circuit
ROWS = torch.arange(0, 2048, 37)  # a sample of rows: enough to tell circuits apart, cheap to multiply out


def _plain(t):
    return t.detach().as_subclass(torch.Tensor)


def _fm_rows(out):
    """A FactoredMatrix -> some of its rows multiplied out (a plain tensor); anything else unchanged."""
    if isinstance(out, FactoredMatrix):
        A = _plain(out.A)
        return A[ROWS.to(A.device)[ROWS < A.shape[-2]]] @ _plain(out.B)
    return out


@chapter.exercise(dims="row d_vocab", tol=LOGITS, transform=_fm_rows)
def full_ov_circuit(device):
    model = chapter_model(chapter, device)
    _, ind = _key_heads(device)
    yield Case((model, 1, ind), label=f"layer 1, head {ind} (rows 0, 37, 74, ... of the circuit)")
    last = model.cfg.n_heads - 1
    yield Case((model, 0, last), label=f"layer 0, head {last}")
    other = (ind + 1) % model.cfg.n_heads
    yield Case((model, 1, other), label=f"layer 1, head {other}")


# ------------------------------------------------------------------------------------------------ top-1 accuracy
def _random_fm(n, rank, device, seed, noise=1.0):
    """A FactoredMatrix with a diagonal-heavy product (some rows' argmax on the diagonal, some not)."""
    A = torch.randn(n, rank, generator=seeded(seed))
    B = A.T + noise * torch.randn(rank, n, generator=seeded(seed + 1))
    return FactoredMatrix(A.to(device), B.to(device))


@chapter.exercise()
def top_1_acc(device):
    with torch.no_grad():
        model = chapter_model(chapter, device)
        _, ind = _key_heads(device)
        W_E, W_U = model.W_E.detach(), model.W_U.detach()
        real = FactoredMatrix(W_E @ model.W_V[1, ind].detach(), model.W_O[1, ind].detach() @ W_U)
    yield Case((real,), label=f"the full OV circuit of head 1.{ind} (2048 rows, default batch_size=1000)")
    yield Case((_random_fm(300, 16, device, 0), 64), label="a random 300 x 300 FactoredMatrix, batch_size=64")
    yield Case((_random_fm(50, 8, device, 2, noise=0.5), 1000), label="50 x 50, batch_size larger than the matrix")


# ------------------------------------------------------------------------------------------------ positional pattern
# The spec names eps (the model's LayerNorm adds model.cfg.eps = 1e-5 to the mean of squares): it moves the pattern by
# up to ~1e-3, far more than float32 rounding, so the formula without it is a known mistake that names eps.
@chapter.exercise(dims="query_pos key_pos", tol=PATTERNS)
def pos_by_pos_pattern(device):
    model = chapter_model(chapter, device)
    prev, _ = _key_heads(device)
    yield Case((model, 0, prev), label=f"layer 0, head {prev}")
    yield Case((model, 1, 1), label="layer 1, head 1")


# ------------------------------------------------------------------------------------------------ decompositions
@chapter.exercise(dims="piece posn d_model")
def decompose_qk_input(device):
    yield Case((_single(device, 10, 3),), label="one [BOS] + r + r sequence, seq_len=10 (no batch dimension)")
    yield Case((_single(device, 30, 5),), label="one sequence, seq_len=30")
    _, layers = _deep(device)
    yield Case((_single(device, 10, 3, "mlp4l"),), layers, label=f"mlp4l, seq_len=10, {_kw(layers)}")


def _decompose_cases(device, seed):
    """Cases for decompose_q / decompose_k: random pieces, real attn2l pieces, real mlp4l pieces in a later layer."""
    from solutions.ch04_induction import decompose_qk_input as ref_input

    model = chapter_model(chapter, device)
    _, ind = _key_heads(device)
    yield Case((_randn(6, 9, model.cfg.d_model, device=device, seed=seed), ind, model),
               label=f"random pieces [6, 9, d_model], head {ind}")
    pieces = ref_input(_single(device, 10, 3)).detach()
    other = (ind + 1) % model.cfg.n_heads
    yield Case((pieces, other, model), label=f"real pieces, head {other}")
    deep, layers = _deep(device)
    pieces = ref_input(_single(device, 10, 3, "mlp4l"), **layers).detach()
    yield Case((pieces, 1, deep), {"ind_layer": layers["ind_layer"]},
               label=f"mlp4l pieces, head 1, ind_layer={layers['ind_layer']}")


@chapter.exercise(dims="piece posn d_head")
def decompose_q(device):
    yield from _decompose_cases(device, seed=0)


@chapter.exercise(dims="piece posn d_head")
def decompose_k(device):
    yield from _decompose_cases(device, seed=5)


@chapter.exercise(dims="q_comp k_comp posn_q posn_k", tol=LOGITS)
def decompose_attn_scores(device):
    model = chapter_model(chapter, device)
    yield Case((_randn(6, 7, 32, device=device), _randn(6, 7, 32, device=device, seed=1), model),
               label="6 pieces, 7 positions, d_head=32")
    yield Case((_randn(3, 4, 32, device=device, seed=2), _randn(5, 6, 32, device=device, seed=3), model),
               label="3 query pieces x 5 key pieces, 4 query x 6 key positions")


# ------------------------------------------------------------------------------------------------ K-composition
@chapter.exercise(dims="row d_vocab", tol=LOGITS, transform=_fm_rows)
def find_K_comp_full_circuit(device):
    model = chapter_model(chapter, device)
    prev, ind = _key_heads(device)
    yield Case((model, prev, ind), label=f"previous-token head 0.{prev}, induction head 1.{ind}")
    n = model.cfg.n_heads
    yield Case((model, (prev + 1) % n, (ind + 1) % n), label=f"heads 0.{(prev + 1) % n} and 1.{(ind + 1) % n}")
    deep, layers = _deep(device)
    yield Case((deep, 0, 1), layers, label=f"mlp4l, heads 0 and 1, {_kw(layers)}")


# ------------------------------------------------------------------------------------------------ composition scores
@chapter.exercise()
def get_comp_score(device):
    yield Case((_randn(8, 8, device=device), _randn(8, 8, device=device, seed=1)), label="random 8 x 8 matrices")
    yield Case((_randn(10, 4, device=device, seed=2) @ _randn(4, 10, device=device, seed=3),
                _randn(10, 10, device=device, seed=4)), label="a rank-4 W_A, 10 x 10")
    model = chapter_model(chapter, device)
    prev, ind = _key_heads(device)
    yield Case((model.OV[0, prev].AB.detach(), model.QK[1, ind].T.AB.detach()),
               label=f"W_OV of head 0.{prev}, W_QK^T of head 1.{ind}")


def _fm_random(n_heads, d_model, rank, device, seed):
    return FactoredMatrix(_randn(n_heads, d_model, rank, device=device, seed=seed),
                          _randn(n_heads, rank, d_model, device=device, seed=seed + 1))


def _detached_fm(fm):
    return FactoredMatrix(fm.A.detach(), fm.B.detach())


def _fm_random_grid(shape, d_model, rank, device, seed):
    return FactoredMatrix(_randn(*shape, d_model, rank, device=device, seed=seed),
                          _randn(*shape, rank, d_model, device=device, seed=seed + 1))


@chapter.exercise()
def get_batched_comp_scores(device):
    model = chapter_model(chapter, device)
    yield Case((_detached_fm(model.OV[0]), _detached_fm(model.QK[1].T)),
               label="W_OV of layer 0 vs W_QK^T of layer 1 (all heads): [head] x [head]")
    yield Case((_fm_random(3, 12, 4, device, 0), _fm_random(5, 12, 4, device, 2)), label="3 x 5 random heads")
    yield Case((_detached_fm(model.OV), _detached_fm(model.QK.T)),
               label="W_OV of every head vs W_QK^T of every head: [layer, head] x [layer, head]")
    yield Case((_fm_random_grid((2, 3), 12, 4, device, 4), _fm_random(5, 12, 4, device, 6)),
               label="random [2, 3] x [5] heads")
    yield Case((_fm_random(3, 12, 4, device, 8), _fm_random_grid((), 12, 4, device, 10)),
               label="random [3] heads x one matrix (no index dimension)")


# ------------------------------------------------------------------------------------------------ ablation
@chapter.exercise()
def ablation_induction_score(device):
    model = chapter_model(chapter, device)
    prev, ind = _key_heads(device)
    tokens, _ = _rep(device, 20, 4, 1)
    yield Case((model, tokens, 20, prev, ind), label=f"ablating 0.{prev}, score of 1.{ind}, seq_len=20, batch=4")
    yield Case((model, tokens, 20, None, ind), label=f"no ablation, score of 1.{ind}")
    n = model.cfg.n_heads
    yield Case((model, tokens, 20, (prev + 1) % n, (ind + 1) % n),
               label=f"ablating 0.{(prev + 1) % n}, score of 1.{(ind + 1) % n}")
    deep, layers = _deep(device)
    deep_tokens, _ = _rep(device, 20, 4, 1, "mlp4l")
    yield Case((deep, deep_tokens, 20, 1, 2), layers, label=f"mlp4l, ablating head 1, score of head 2, {_kw(layers)}")


# ------------------------------------------------------------------------------------------------ the story
# The chapter promises these on the shipped model; the notebook computes the same quantities.
def _second_copy_loss(model, tokens, fwd_hooks=()):
    return repeat_losses(model, tokens, fwd_hooks)[1]


def _top_pair(model, device, prev_layer=0, ind_layer=1):
    """§8's dominant (query piece, key piece) of the induction head's scores, as indices into [embed, pos, heads]."""
    from solutions.ch04_induction import decompose_attn_scores, decompose_k, decompose_q, decompose_qk_input

    _, ind = _key_heads(device)
    pieces = decompose_qk_input(_single(device, 50, 0), prev_layer=prev_layer, ind_layer=ind_layer)
    with torch.no_grad():
        pair_scores = decompose_attn_scores(decompose_q(pieces, ind, model, ind_layer=ind_layer),
                                            decompose_k(pieces, ind, model, ind_layer=ind_layer), model)
    causal = torch.tril(torch.ones(pair_scores.shape[-2:], dtype=torch.bool, device=pair_scores.device))
    return divmod(int(pair_scores[..., causal].std(-1).argmax()), pieces.shape[0])
