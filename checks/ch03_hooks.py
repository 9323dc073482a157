"""Checkers for chapter 3 (hooks).

Inputs are real: the shipped ``attn2l`` model, its activations on repeated random tokens and on text of the
kind it was trained on, plus random tensors. Hook-function exercises are called directly with an activation
and a real ``HookPoint`` (``model.hook_dict[name]``); learner functions are never registered as hooks by the
checker, and only their return values are compared (a hook a learner's function leaves on the model, or data it
leaves in a hook point's ``ctx``, is reported as CHANGED_MODEL and removed: ``utils/isolation.py``). ``cache_some``
also counts the forward passes the learner's function runs.
"""

import functools

import torch
from transformer_lens.utilities import get_act_name

from checks.helpers import LOSS, chapter_model, randn
from checks.mutants.ch03_hooks import MUTANTS
from utils.checkers import Chapter
from utils.checking import Case, CheckFailure, Status, clone_inputs, count_forward_passes
from utils.data import repeated_tokens

chapter = Chapter("ch03_hooks", mutants=MUTANTS)

TEXT = ("When Mary and John went to the store, John gave a drink to Mary. "
        "Then Alice and Tom went to the park, and Tom gave a ball to Alice.")
TEXT_BATCH = ["When Mary and John went to the store, John gave a drink to",
              "When Alice and Tom went to the park, Tom gave a ball to"]

# Losses and entropies are means of ~10^2-10^3 float32 terms from a full forward pass: a learner who sums in
# another order, or takes the loss difference in another way, differs by ~1e-6 on CPU; CUDA/MPS kernels differ
# more. Differences between ablated and clean losses inherit the losses' absolute error.



def rep_tokens(model, seq_len=20, batch=3, seed=0):
    """BOS, a random token sequence, the same sequence again (what induction heads predict)."""
    return repeated_tokens(model, seq_len, batch, seed=seed)


def text_tokens(model):
    return model.to_tokens(TEXT)


def text_batch_tokens(model):
    tokens = model.to_tokens(TEXT_BATCH)
    assert not (tokens[:, 1:] == model.tokenizer.pad_token_id).any(), "TEXT_BATCH prompts must have equal length"
    return tokens


@functools.cache
def _activations(device, which):
    model = chapter_model(chapter, device)
    tokens = rep_tokens(model) if which == "rep" else text_batch_tokens(model)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return cache



def _head_cases(device):
    model = chapter_model(chapter, device)
    rep, text = _activations(device, "rep"), _activations(device, "text")
    z0, z1 = get_act_name("z", 0), get_act_name("z", 1)
    yield Case((rep[z0],), dict(hook=model.hook_dict[z0], head_index_to_ablate=1),
               label="hook_z of layer 0 on repeated random tokens (batch=3), head 1")
    yield Case((text[z1],), dict(hook=model.hook_dict[z1], head_index_to_ablate=0),
               label="hook_z of layer 1 on two prompts, head 0")
    yield Case((randn(2, 5, 4, 3, device=device, seed=1),), dict(hook=model.hook_dict[z1], head_index_to_ablate=2),
               label="a random z with 4 heads of d_head=3 (batch=2, pos=5), head 2")


@chapter.exercise(dims="batch pos head d_head")
def head_zero_ablation_hook(device):
    yield from _head_cases(device)


@chapter.exercise(dims="batch pos head d_head")
def head_mean_ablation_hook(device):
    yield from _head_cases(device)


@chapter.exercise(dims="layer head", tol=LOSS)
def get_ablation_scores(device):
    from solutions.ch03_hooks import head_mean_ablation_hook as reference_mean_ablation

    model = chapter_model(chapter, device)
    yield Case((model, rep_tokens(model)), label="repeated random tokens (batch=3), default (zero) ablation")
    yield Case((model, text_tokens(model)), dict(ablation_function=reference_mean_ablation),
               label="a text prompt, ablation_function=head_mean_ablation_hook (the reference's)")


@chapter.exercise(dims="layer head", tol=LOSS)
def attention_entropy(device):
    model = chapter_model(chapter, device)
    yield Case((model, rep_tokens(model)), label="repeated random tokens (batch=3)")
    yield Case((model, text_batch_tokens(model)), label="two text prompts")
    yield Case((model, model.to_tokens("Mary")), label="a two-token prompt (BOS, 'Mary')")


@chapter.exercise(dims="batch pos d_model")
def add_steering_vector_hook(device):
    model = chapter_model(chapter, device)
    rep, text = _activations(device, "rep"), _activations(device, "text")
    r1, r0 = get_act_name("resid_pre", 1), get_act_name("resid_pre", 0)
    d_model = model.cfg.d_model
    vector = randn(d_model, device=device, seed=2)
    yield Case((rep[r1], model.hook_dict[r1], vector, 2.5), label="resid_pre of layer 1, every position, coeff=2.5")
    yield Case((rep[r1], model.hook_dict[r1], randn(d_model, device=device, seed=3), 4.0), dict(pos=-1),
               label="resid_pre of layer 1, pos=-1 (the last position), coeff=4.0")
    yield Case((text[r0], model.hook_dict[r0], vector, -1.5), dict(pos=3),
               label="resid_pre of layer 0 on two prompts, pos=3, coeff=-1.5")
    yield Case((text[r1], model.hook_dict[r1], vector, 1.0), dict(pos=0), label="pos=0 (the BOS position)")


def _forward_passes(attempt) -> int:
    """How many forward passes the learner's function runs on the case (``utils.checking.count_forward_passes``)."""
    _, passes = count_forward_passes(attempt.fn, *clone_inputs(attempt.case.args),
                                     **clone_inputs(attempt.case.kwargs))
    return passes.embed


def _judge_cache(attempt):
    """The activations must equal the reference's, collected in one forward pass."""
    attempt.compare()
    passes = _forward_passes(attempt)
    if passes != 1:
        raise CheckFailure(Status.WRONG_VALUES, f"right activations, but your function ran the model {passes} times "
                           f"for {len(attempt.case.args[2])} names: cache_some must run it once")


@chapter.exercise(judge=_judge_cache)
def cache_some(device):
    from solutions.ch03_hooks import add_steering_vector_hook, head_zero_ablation_hook

    model = chapter_model(chapter, device)
    yield Case((model, rep_tokens(model), [get_act_name("pattern", 0), get_act_name("resid_pre", 1)]),
               label="repeated random tokens, names=[pattern 0, resid_pre 1]")
    yield Case((model, text_batch_tokens(model), ["hook_embed", "hook_pos_embed", get_act_name("z", 1)]),
               label="two prompts, names=[hook_embed, hook_pos_embed, z 1]")
    yield Case((model, text_tokens(model), [get_act_name("attn_scores", 1)]),
               label="a text prompt, a single name (attn_scores 1)")
    r1 = get_act_name("resid_pre", 1)
    steer = functools.partial(add_steering_vector_hook, vector=randn(model.cfg.d_model, device=device, seed=4),
                              coeff=2.0)
    yield Case((model, text_batch_tokens(model), [r1, get_act_name("resid_post", 1)]), dict(fwd_hooks=[(r1, steer)]),
               label="two prompts, names=[resid_pre 1, resid_post 1], fwd_hooks=[a steering hook on resid_pre 1 that "
               "returns a new tensor]")
    z0 = get_act_name("z", 0)
    ablate = functools.partial(head_zero_ablation_hook, head_index_to_ablate=1)
    yield Case((model, rep_tokens(model), [z0, get_act_name("pattern", 1)]), dict(fwd_hooks=[(z0, ablate)]),
               label="repeated random tokens, names=[z 0, pattern 1], fwd_hooks=[a hook on z 0 that zero-ablates head "
               "1 in place]")


@chapter.exercise(tol=LOSS)
def permanent_hook_demo(device):
    model = chapter_model(chapter, device)
    yield Case((model, rep_tokens(model), (1, 0), (0, 1)),
               label="repeated random tokens, permanent_head=(1, 0), temporary_head=(0, 1)")
    yield Case((model, text_tokens(model)), dict(permanent_head=(0, 0), temporary_head=(1, 1)),
               label="a text prompt, permanent_head=(0, 0), temporary_head=(1, 1)")
