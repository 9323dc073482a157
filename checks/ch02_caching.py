"""Checkers for chapter 2 (activation caching).

Cases come from the shipped ``attn2l`` model (loaded once per device): real caches of IOI prompts in two
templates, of ordinary sentences and of repeated random tokens, plus random tensors. The detectors are checked
at thresholds placed between the heads' real scores, so every case has a non-empty answer that a wrong
score would change. ``checks/mutants/ch02_caching.py`` holds the known mistakes.
"""

import functools

import torch

from checks.helpers import METRIC, chapter_model, seeded
from checks.mutants.ch02_caching import MUTANTS
from utils.checkers import Chapter
from utils.checking import Case, CheckFailure, Status, clone_inputs
from utils.data import ioi_dataset, repeated_tokens

chapter = Chapter("ch02_caching", mutants=MUTANTS)

# Logits, logit differences and projections on unembedding directions are sums over d_model of values of
# order 1-10: another summation order (matmul vs einsum, summing pieces first) moves them by ~1e-6 on CPU
# and more on GPU kernels (TF32 where enabled), so these exercises use looser tolerances than the default.

IOI_TEMPLATES = [
    "When {N1} and {N2} went to the {place}, {S} gave a {object} to",
    "Then, {N1} and {N2} had a long argument, and afterwards {S} said to",
]
IOI_NAMES = ["Mary", "John", "Tom", "James", "Lisa", "Paul", "Sarah", "Dan"]
SENTENCES = [  # 16 tokens each with BOS: no padding
    "Then, Tom and James went to the park. James gave a ball to",
    "Friends Lisa and Paul found a book at the market. Paul gave it to",
    "The small cat slept on the warm chair in the kitchen.",
    "The old man sat in the garden and read a long letter.",
]



@functools.cache
def _ioi(device, template_index=0):
    """(logits, cache, answer_tokens [batch, 2]) of 8 IOI prompts of one template (4 name pairs, both orders)."""
    model = chapter_model(chapter, device)
    data = ioi_dataset(model, [IOI_TEMPLATES[template_index]], IOI_NAMES, n_pairs=4, seed=template_index)
    with torch.no_grad():
        logits, cache = model.run_with_cache(data.tokens)
    return logits.detach(), cache, data.answer_tokens


@functools.cache
def _sentences(device):
    model = chapter_model(chapter, device)
    with torch.no_grad():
        _, cache = model.run_with_cache(model.to_tokens(SENTENCES))
    return cache


@functools.cache
def _repeated_random(device, batch=4, length=12, seed=0):
    """BOS + a random token sequence + the same sequence again (induction heads light up on the repeat)."""
    model = chapter_model(chapter, device)
    tokens = repeated_tokens(model, length, batch, seed=seed)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    return tokens, logits.detach(), cache


def _caches(device):
    return [(_ioi(device, 0)[1], "a cache of 8 IOI prompts"),
            (_ioi(device, 1)[1], "a cache of 8 IOI prompts (another template)"),
            (_sentences(device), "a cache of 4 ordinary sentences"),
            (_repeated_random(device)[2], "a cache of 4 repeated random-token sequences")]


def _directions(model, answer_tokens):
    dirs = model.tokens_to_residual_directions(answer_tokens)  # [batch, 2, d_model]
    return (dirs[:, 0] - dirs[:, 1]).detach().clone()


# --------------------------------------------------------------------------------------------------------
# attention_pattern_from_qk
# --------------------------------------------------------------------------------------------------------
@chapter.exercise(dims="batch head dest src")
def attention_pattern_from_qk(device):
    n_layers = chapter_model(chapter, device).cfg.n_layers
    for cache, label in _caches(device)[::2] + [_caches(device)[3]]:
        for layer in range(n_layers):
            yield Case((cache["q", layer], cache["k", layer]), label=f"cache['q', {layer}], cache['k', {layer}] from "
                       f"{label}")
    generator = seeded(0)
    q = (torch.randn(2, 6, 3, 8, generator=generator) * 3).to(device)
    k = torch.randn(2, 6, 3, 8, generator=generator).to(device)
    yield Case((q, k), label="random q, k: batch=2, 6 positions, 3 heads, d_head=8")
    yield Case((q[:, :1], k[:, :1]), label="a single position")


# --------------------------------------------------------------------------------------------------------
# Detectors: thresholds between the heads' real scores
# --------------------------------------------------------------------------------------------------------
SCORES = {
    "current": lambda p: p.diagonal(dim1=-2, dim2=-1).mean((0, -1)),
    "prev": lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, -1)),
    "first": lambda p: p[..., 0].mean((0, -1)),
}
# Scores of plausible wrong readings of a detector's spec. A threshold between a head's score and its near miss
# tells the two apart (dividing the sub-diagonal's sum by pos, as other courses' detectors do; leaving out
# destination 0, whose attention to the first token is always 1).
NEAR_MISSES = {
    "prev": lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(0) / p.shape[-1],
    "first": lambda p: p[..., 1:, 0].mean((0, -1)),
}
MIN_GAP = 0.02  # thresholds sit at least 0.01 away from every score: summation order cannot flip a decision


@functools.cache
def _uneven_batch_cache(device):
    """A cache whose patterns differ from prompt to prompt: prompt 0 is the real repeated-random-token prompt,
    the others are random causal patterns, so a detector that reads one prompt (or one head) gives itself away."""
    from transformer_lens import ActivationCache

    real = _repeated_random(device)[2]
    generator = seeded(7)
    patterns = {}
    for layer in range(real.model.cfg.n_layers):
        pattern = real["pattern", layer].clone()
        n = pattern.shape[-1]
        scores = torch.randn(pattern.shape[0] - 1, *pattern.shape[1:], generator=generator).to(pattern.device)
        future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=pattern.device), diagonal=1)
        pattern[1:] = (3 * scores).masked_fill(future, float("-inf")).softmax(-1)
        patterns[f"blocks.{layer}.attn.hook_pattern"] = pattern
    return ActivationCache(patterns, real.model)


def _detector_cases(device, kind):
    caches = _caches(device) + [(_uneven_batch_cache(device), "a batch of 4 prompts with very different patterns")]
    for cache, label in caches:
        n_layers = cache.model.cfg.n_layers
        scores = torch.cat([SCORES[kind](cache["pattern", layer]) for layer in range(n_layers)]).cpu()
        if (scores - 0.4).abs().min() > MIN_GAP / 2:
            yield Case((cache,), label=f"{label}, default threshold")
        ordered = scores.sort().values.tolist()
        thresholds = [(a + b) / 2 for a, b in zip(ordered, ordered[1:]) if b - a > MIN_GAP]
        thresholds.append(ordered[0] - MIN_GAP)
        if cache is _ioi(device, 0)[1]:
            thresholds.append(0.0)  # every head that pays any attention there
        if kind in NEAR_MISSES:
            near = torch.cat([NEAR_MISSES[kind](cache["pattern", layer]) for layer in range(n_layers)]).cpu()
            for middle in ((scores + near) / 2).tolist():
                if min((scores - middle).abs().min(), (near - middle).abs().min()) > MIN_GAP / 2:
                    thresholds.append(middle)
        for threshold in thresholds:
            yield Case((cache,), {"threshold": round(threshold, 4)}, label=f"{label}, threshold={threshold:.4f}")


def _head_list(heads):
    """The transform of the detectors: the answer must be a list of 'layer.head' strings."""
    if not isinstance(heads, (list, tuple)) or not all(isinstance(head, str) for head in heads):
        raise CheckFailure(Status.WRONG_TYPE, f"returned {heads!r:.100}; expected a list of 'layer.head' strings, "
                           "e.g. ['0.1', '1.0']")
    return list(heads)


def _judge_heads(attempt):
    """A different list of heads is WRONG_VALUES, whatever its length."""
    if attempt.got != attempt.expected:
        raise CheckFailure(Status.WRONG_VALUES, f"returned {attempt.got}, expected {attempt.expected}")


# Many wrong detectors return [] on a given case, so the learner answers every case and a mistake is named only
# when it matches the learner's answers on all of them.
DETECTOR = dict(transform=_head_list, judge=_judge_heads, answer_every_case=True)


@chapter.exercise(**DETECTOR)
def current_attn_detector(device):
    yield from _detector_cases(device, "current")


@chapter.exercise(**DETECTOR)
def prev_attn_detector(device):
    yield from _detector_cases(device, "prev")


@chapter.exercise(**DETECTOR)
def first_attn_detector(device):
    yield from _detector_cases(device, "first")


# --------------------------------------------------------------------------------------------------------
# Logit difference, logit lens, direct logit attribution
# --------------------------------------------------------------------------------------------------------
@chapter.exercise(dims="batch", tol=METRIC)
def logits_to_ave_logit_diff(device):
    for index, label in [(0, "8 IOI prompts"), (1, "8 IOI prompts of another template")]:
        logits, _, answer_tokens = _ioi(device, index)
        yield Case((logits, answer_tokens), label=f"the model's logits on {label}")
        yield Case((logits, answer_tokens), {"per_prompt": True}, label=f"the model's logits on {label}, per_prompt")
    generator = seeded(1)
    logits = (torch.randn(5, 7, 50, generator=generator) * 3).to(device)
    answers = torch.randint(0, 50, (5, 2), generator=generator).to(device)
    yield Case((logits, answers), {"per_prompt": True}, label="random logits: batch=5, pos=7, d_vocab=50, per_prompt")
    yield Case((logits[:1], answers[:1]), label="random logits, a single prompt")


@chapter.exercise(dims="component batch", tol=METRIC)
def logit_lens(device):
    model = chapter_model(chapter, device)
    for index, label in [(0, "8 IOI prompts"), (1, "8 IOI prompts of another template")]:
        _, cache, answer_tokens = _ioi(device, index)
        yield Case((model, cache, answer_tokens[:, 0]), label=f"{label}, the correct answers")
        yield Case((model, cache, answer_tokens[:, 1]), label=f"{label}, the incorrect answers")
    tokens, _, cache = _repeated_random(device)
    yield Case((model, cache, tokens[:, 1]), label="4 repeated random sequences, answer = the token the induction "
               "would predict")


def _stack_cases(device, index, label):
    _, cache, answer_tokens = _ioi(device, index)
    directions = _directions(chapter_model(chapter, device), answer_tokens)
    scratch = clone_inputs(cache)  # stack_head_results adds keys to the cache it is called on
    yield Case((scratch.accumulated_resid(layer=-1, pos_slice=-1), cache, directions),
               label=f"accumulated_resid of {label} ([component=3, batch, d_model])")
    yield Case((scratch.decompose_resid(layer=-1, pos_slice=-1), cache, directions),
               label=f"decompose_resid of {label}")
    yield Case((scratch.stack_head_results(layer=-1, pos_slice=-1), cache, directions),
               label=f"stack_head_results of {label}")
    yield Case((cache["resid_post", -1][:, -1], cache, directions),
               label=f"the final residual stream of {label} ([batch, d_model], no leading dimension: returns a "
               "0-dim tensor)")


@chapter.exercise(dims=None, tol=METRIC)
def residual_stack_to_logit_diff(device):
    yield from _stack_cases(device, 0, "8 IOI prompts")
    _, cache, answer_tokens = _ioi(device, 1)
    generator = seeded(2)
    stack = torch.randn(2, 3, answer_tokens.shape[0], cache.model.cfg.d_model, generator=generator).to(device)
    yield Case((stack, cache, _directions(cache.model, answer_tokens)),
               label="a random stack with two leading dimensions [2, 3, batch, d_model] and a cache of 8 IOI prompts")


@chapter.exercise(dims="layer head", tol=METRIC)
def head_direct_logit_attribution(device):
    model = chapter_model(chapter, device)
    for index, label in [(0, "8 IOI prompts"), (1, "8 IOI prompts of another template")]:
        _, cache, answer_tokens = _ioi(device, index)
        yield Case((model, cache, _directions(model, answer_tokens)), label=label)
    tokens, _, cache = _repeated_random(device)
    answers = torch.stack([tokens[:, 1], tokens[:, 2]], dim=1)
    yield Case((model, cache, _directions(model, answers)), label="4 repeated random sequences, direction = next "
               "token of the repeat minus the token after it")
