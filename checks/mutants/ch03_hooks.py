"""Known mistakes for chapter 3 (hooks). Each one is a mistake learners really make; its description is shown to
a learner whose output matches it.

Mutants that attach hooks clean up after themselves (``_clean``), as a correct function must: the checker runs them
on the shared model to diagnose a learner's output (it restores the model afterwards anyway).
"""

from contextlib import contextmanager
from functools import partial

import torch
from transformer_lens.utilities import get_act_name

from utils.checking import Mutant, Status


@contextmanager
def _clean(model):
    try:
        yield
    finally:
        model.reset_hooks(including_permanent=True)


# ---- head_zero_ablation_hook ---------------------------------------------------------------------------
def zero_batch_index(z, hook, head_index_to_ablate):
    z[head_index_to_ablate] = 0.0
    return z


def zero_position_index(z, hook, head_index_to_ablate):
    z[:, head_index_to_ablate] = 0.0
    return z


def zero_d_head_index(z, hook, head_index_to_ablate):
    z[..., head_index_to_ablate] = 0.0
    return z


def zero_every_head(z, hook, head_index_to_ablate):
    return torch.zeros_like(z)


def zero_returns_head_only(z, hook, head_index_to_ablate):
    return z[:, :, head_index_to_ablate] * 0.0


def zero_a_copy(z, hook, head_index_to_ablate):
    ablated = z.clone()
    ablated[:, :, head_index_to_ablate] = 0.0
    return z


def zero_copy_returns_nothing(z, hook, head_index_to_ablate):
    z = z.clone()
    z[:, :, head_index_to_ablate] = 0.0


# ---- head_mean_ablation_hook ---------------------------------------------------------------------------
def mean_over_batch_only(z, hook, head_index_to_ablate):
    z[:, :, head_index_to_ablate] = z[:, :, head_index_to_ablate].mean(dim=0)
    return z


def mean_over_positions_only(z, hook, head_index_to_ablate):
    z[:, :, head_index_to_ablate] = z[:, :, head_index_to_ablate].mean(dim=1, keepdim=True)
    return z


def mean_over_d_head(z, hook, head_index_to_ablate):
    z[:, :, head_index_to_ablate] = z[:, :, head_index_to_ablate].mean(dim=-1, keepdim=True)
    return z


def mean_over_heads(z, hook, head_index_to_ablate):
    z[:, :, head_index_to_ablate] = z.mean(dim=(0, 1, 2))
    return z


def mean_of_everything(z, hook, head_index_to_ablate):
    z[:, :, head_index_to_ablate] = z[:, :, head_index_to_ablate].mean()
    return z


def mean_copy_returns_nothing(z, hook, head_index_to_ablate):
    z = z.clone()
    z[:, :, head_index_to_ablate] = z[:, :, head_index_to_ablate].mean(dim=(0, 1))


# ---- get_ablation_scores -------------------------------------------------------------------------------
def _zero(z, hook, head_index_to_ablate):
    z[:, :, head_index_to_ablate] = 0.0
    return z


def _scores(model, tokens, ablation_function, *, relative=True, sign=1.0, layer_of=lambda layer: layer,
            transpose=False):
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    scores = torch.zeros(n_layers, n_heads, device=model.cfg.device)
    with torch.no_grad(), _clean(model):
        clean = model(tokens, return_type="loss")
        for layer in range(n_layers):
            for head in range(n_heads):
                hook_fn = partial(ablation_function, head_index_to_ablate=head)
                loss = model.run_with_hooks(tokens, return_type="loss",
                                            fwd_hooks=[(get_act_name("z", layer_of(layer)), hook_fn)])
                value = sign * (loss - clean) if relative else loss
                if transpose:
                    scores.view(-1)[head * n_layers + layer] = value
                else:
                    scores[layer, head] = value
    return scores.view(n_layers, n_heads)


def scores_ablated_loss(model, tokens, ablation_function=_zero):
    return _scores(model, tokens, ablation_function, relative=False)


def scores_clean_minus_ablated(model, tokens, ablation_function=_zero):
    return _scores(model, tokens, ablation_function, sign=-1.0)


def scores_always_layer_0(model, tokens, ablation_function=_zero):
    return _scores(model, tokens, ablation_function, layer_of=lambda layer: 0)


def scores_head_layer_order(model, tokens, ablation_function=_zero):
    return _scores(model, tokens, ablation_function, transpose=True)


def scores_ignore_ablation_function(model, tokens, ablation_function=_zero):
    return _scores(model, tokens, _zero)


# ---- attention_entropy ---------------------------------------------------------------------------------
def _entropy(model, tokens, per_query, reduce=lambda h: h.mean(dim=(0, 2))):
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)

    def hook(pattern, hook):
        out[hook.layer()] = reduce(per_query(pattern))

    with torch.no_grad(), _clean(model):
        model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), hook)])
    return out


def entropy_naive_log(model, tokens):
    return _entropy(model, tokens, lambda p: -(p * p.log()).sum(-1))


def entropy_no_minus(model, tokens):
    return _entropy(model, tokens, lambda p: (p * p.clamp(min=1e-12).log()).sum(-1))


def entropy_mean_over_src(model, tokens):
    return _entropy(model, tokens, lambda p: -(p * p.clamp(min=1e-12).log()).mean(-1))


def entropy_in_bits(model, tokens):
    return _entropy(model, tokens, lambda p: -(p * p.clamp(min=1e-12).log2()).sum(-1))


def entropy_last_position_only(model, tokens):
    return _entropy(model, tokens, lambda p: -(p * p.clamp(min=1e-12).log()).sum(-1),
                    reduce=lambda h: h[:, :, -1].mean(0))


def entropy_mean_over_heads(model, tokens):
    return _entropy(model, tokens, lambda p: -(p * p.clamp(min=1e-12).log()).sum(-1),
                    reduce=lambda h: h.mean())


def entropy_left_in_ctx(model, tokens):
    def hook(pattern, hook):
        hook.ctx["entropy"] = -(pattern * pattern.clamp(min=1e-12).log()).sum(-1).mean(dim=(0, 2))

    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), hook)])
    return torch.stack([model.hook_dict[get_act_name("pattern", layer)].ctx["entropy"]
                        for layer in range(model.cfg.n_layers)])


# ---- add_steering_vector_hook --------------------------------------------------------------------------
def steer_ignores_pos(resid, hook, vector, coeff, pos=None):
    return resid + coeff * vector


def steer_no_coeff(resid, hook, vector, coeff, pos=None):
    if pos is None:
        return resid + vector
    resid[:, pos] += vector
    return resid


def steer_pos_as_batch_index(resid, hook, vector, coeff, pos=None):
    if pos is None:
        return resid + coeff * vector
    resid[pos] += coeff * vector
    return resid


def steer_last_position_always(resid, hook, vector, coeff, pos=None):
    resid[:, -1] += coeff * vector
    return resid


def steer_subtracts(resid, hook, vector, coeff, pos=None):
    if pos is None:
        return resid - coeff * vector
    resid[:, pos] -= coeff * vector
    return resid


def steer_from_pos_onwards(resid, hook, vector, coeff, pos=None):
    if pos is None:
        return resid + coeff * vector
    resid[:, pos:] += coeff * vector
    return resid


def steer_truthy_pos(resid, hook, vector, coeff, pos=None):
    if not pos:  # pos=0 is falsy: position 0 is treated as "every position"
        return resid + coeff * vector
    resid[:, pos] += coeff * vector
    return resid


def steer_copy_returns_nothing(resid, hook, vector, coeff, pos=None):
    if pos is None:
        resid = resid + coeff * vector
    else:
        resid = resid.clone()
        resid[:, pos] += coeff * vector


# ---- cache_some ----------------------------------------------------------------------------------------
def _cache(model, tokens, names, fwd_hooks=(), *, keep=lambda act: act.detach().clone(), name_filter=None, run=True,
           theirs_first=False):
    cache = {}

    def hook(act, hook):
        cache[hook.name] = keep(act)

    mine = (name_filter or (lambda n: n in names), hook)
    with _clean(model):
        if run:
            hooks = [*fwd_hooks, mine] if theirs_first else [mine, *fwd_hooks]
            model.run_with_hooks(tokens, return_type=None, fwd_hooks=hooks)
        else:
            model.add_hook(*mine)
    return cache


def cache_one_pass_per_name(model, tokens, names, fwd_hooks=()):
    cache = {}
    for name in names:
        cache.update(_cache(model, tokens, [name], fwd_hooks))
    return cache


def cache_without_running(model, tokens, names, fwd_hooks=()):
    return _cache(model, tokens, names, fwd_hooks, run=False)


def cache_first_batch_element(model, tokens, names, fwd_hooks=()):
    return _cache(model, tokens, names, fwd_hooks, keep=lambda act: act[0].detach().clone())


def cache_first_name_only(model, tokens, names, fwd_hooks=()):
    return _cache(model, tokens, names, fwd_hooks, name_filter=lambda n: n == names[0])


def cache_last_position(model, tokens, names, fwd_hooks=()):
    return _cache(model, tokens, names, fwd_hooks, keep=lambda act: act[:, -1].detach().clone())


def cache_loop_lambda(model, tokens, names, fwd_hooks=()):
    cache = {}
    hooks = [(name, lambda act, hook: cache.update({name: act.detach().clone()})) for name in names]
    with _clean(model):
        model.run_with_hooks(tokens, return_type=None, fwd_hooks=[*hooks, *fwd_hooks])
    return cache


def cache_detach_without_clone(model, tokens, names, fwd_hooks=()):
    return _cache(model, tokens, names, fwd_hooks, keep=lambda act: act.detach())


def cache_after_their_hooks(model, tokens, names, fwd_hooks=()):
    return _cache(model, tokens, names, fwd_hooks, theirs_first=True)


def cache_left_in_ctx(model, tokens, names, fwd_hooks=()):
    def hook(act, hook):
        hook.ctx["activation"] = act.detach().clone()

    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(lambda n: n in names, hook), *fwd_hooks])
    return {name: model.hook_dict[name].ctx["activation"] for name in names}


# ---- permanent_hook_demo -------------------------------------------------------------------------------
def _demo(model, tokens, permanent_head, temporary_head, *, perm_is_permanent=True, temp_is_permanent=False,
          full_reset=True, as_float=True):
    def loss():
        with torch.no_grad():
            value = model(tokens, return_type="loss")
        return value.item() if as_float else value

    with _clean(model):
        losses = {"clean": loss()}
        for (layer, head), permanent in [(permanent_head, perm_is_permanent), (temporary_head, temp_is_permanent)]:
            model.add_hook(get_act_name("z", layer), partial(_zero, head_index_to_ablate=head), is_permanent=permanent)
        losses["hooked"] = loss()
        model.reset_hooks()
        losses["after_reset"] = loss()
        model.reset_hooks(including_permanent=full_reset)
        losses["after_full_reset"] = loss()
    return losses


def demo_forgot_is_permanent(model, tokens, permanent_head, temporary_head):
    return _demo(model, tokens, permanent_head, temporary_head, perm_is_permanent=False)


def demo_both_permanent(model, tokens, permanent_head, temporary_head):
    return _demo(model, tokens, permanent_head, temporary_head, temp_is_permanent=True)


def demo_forgot_including_permanent(model, tokens, permanent_head, temporary_head):
    return _demo(model, tokens, permanent_head, temporary_head, full_reset=False)


def demo_tensors(model, tokens, permanent_head, temporary_head):
    return _demo(model, tokens, permanent_head, temporary_head, as_float=False)


def demo_swapped_heads(model, tokens, permanent_head, temporary_head):
    return _demo(model, tokens, temporary_head, permanent_head)


RETURNS_NOTHING = ("returning nothing (None): a writing hook must return the changed tensor; None means 'go on "
                   "with the activation as it is', so a change made on a copy is lost")

MUTANTS = {
    "head_zero_ablation_hook": [
        Mutant(zero_batch_index, "indexing the batch dimension (z[h]) instead of the head dimension (z[:, :, h])"),
        Mutant(zero_position_index, "indexing the position dimension (z[:, h]) instead of the head dimension "
               "(z[:, :, h])"),
        Mutant(zero_d_head_index, "indexing d_head (z[..., h]) instead of the head dimension (z[:, :, h])"),
        Mutant(zero_every_head, "zeroing every head instead of only head_index_to_ablate"),
        Mutant(zero_returns_head_only, "returning only the ablated head's slice instead of the whole z",
               Status.WRONG_SHAPE),
        Mutant(zero_a_copy, "ablating a copy of z (z.clone()) but returning the original, unchanged z"),
        Mutant(zero_copy_returns_nothing, RETURNS_NOTHING, Status.WRONG_TYPE),
    ],
    "head_mean_ablation_hook": [
        Mutant(mean_over_batch_only, "averaging over the batch only, not over batch and positions"),
        Mutant(mean_over_positions_only, "averaging over positions only, not over batch and positions"),
        Mutant(mean_over_d_head, "averaging over d_head (one number per position) instead of over batch and "
               "positions"),
        Mutant(mean_over_heads, "averaging over all heads instead of only the ablated head"),
        Mutant(mean_of_everything, "replacing the head by a single scalar (the mean over batch, positions and "
               "d_head)"),
        Mutant(mean_copy_returns_nothing, RETURNS_NOTHING, Status.WRONG_TYPE),
    ],
    "get_ablation_scores": [
        Mutant(scores_ablated_loss, "returning the ablated loss instead of its increase over the clean loss"),
        Mutant(scores_clean_minus_ablated, "computing clean minus ablated loss (the sign is flipped)"),
        Mutant(scores_always_layer_0, "always hooking layer 0 (get_act_name('z', 0)) whatever the layer"),
        Mutant(scores_head_layer_order, "filling the scores in [head, layer] order instead of [layer, head]"),
        Mutant(scores_ignore_ablation_function, "ignoring the ablation_function argument (always zero-ablating)"),
    ],
    "attention_entropy": [
        Mutant(entropy_naive_log, "computing p * log(p) where p = 0: 0 * log 0 = 0 * -inf = NaN", Status.NAN),
        Mutant(entropy_no_minus, "forgetting the minus sign: sum of p log p is minus the entropy"),
        Mutant(entropy_mean_over_src, "averaging p log p over source positions instead of summing"),
        Mutant(entropy_in_bits, "using log2 (bits) instead of the natural log (nats)"),
        Mutant(entropy_last_position_only, "using the last destination position only instead of the mean over "
               "all positions"),
        Mutant(entropy_mean_over_heads, "averaging over heads too (one number per layer)"),
        Mutant(entropy_left_in_ctx, "keeping the entropies in hook.ctx and not clearing it: they stay on the model",
               Status.CHANGED_MODEL),
    ],
    "add_steering_vector_hook": [
        Mutant(steer_ignores_pos, "ignoring pos: adding the vector at every position"),
        Mutant(steer_no_coeff, "forgetting to multiply the vector by coeff"),
        Mutant(steer_pos_as_batch_index, "indexing the batch dimension (resid[pos]) instead of the position "
               "(resid[:, pos])"),
        Mutant(steer_last_position_always, "always steering the last position only"),
        Mutant(steer_subtracts, "subtracting the vector instead of adding it"),
        Mutant(steer_from_pos_onwards, "steering every position from pos onwards (resid[:, pos:]) instead of position "
               "pos alone (resid[:, pos])"),
        Mutant(steer_truthy_pos, "testing `if not pos:` instead of `if pos is None:`: pos=0 is falsy, so position 0 "
               "steers every position"),
        Mutant(steer_copy_returns_nothing, RETURNS_NOTHING, Status.WRONG_TYPE),
    ],
    "cache_some": [
        Mutant(cache_one_pass_per_name, "running the model more than once (e.g. one forward pass per name): one pass "
               "must collect every name"),
        Mutant(cache_without_running, "adding the hooks but never running the model (the cache stays empty)"),
        Mutant(cache_first_batch_element, "storing only the first batch element (act[0])", Status.WRONG_SHAPE),
        Mutant(cache_first_name_only, "hooking only names[0] instead of every name in names"),
        Mutant(cache_last_position, "storing the last position only (act[:, -1])", Status.WRONG_SHAPE),
        Mutant(cache_loop_lambda, "making the hooks with a lambda in a loop over names: each lambda reads `name` when "
               "it runs, after the loop, so every hook stores under the last name (use hook.name, or a default "
               "argument: lambda act, hook, name=name: ...)"),
        Mutant(cache_detach_without_clone, "storing activation.detach() without .clone(): detach() shares memory with "
               "the activation, so a later hook that writes in place changes what you stored"),
        Mutant(cache_after_their_hooks, "putting fwd_hooks before your caching hook: you then store the activation "
               "after they changed it, not as it arrived at the hook point"),
        Mutant(cache_left_in_ctx, "storing the activations in hook.ctx and not clearing it: they stay on the model",
               Status.CHANGED_MODEL),
    ],
    "permanent_hook_demo": [
        Mutant(demo_forgot_is_permanent, "forgetting is_permanent=True: reset_hooks() then removes the permanent "
               "hook too"),
        Mutant(demo_both_permanent, "adding the temporary hook with is_permanent=True too: reset_hooks() then "
               "removes nothing"),
        Mutant(demo_forgot_including_permanent, "calling reset_hooks() without including_permanent=True at the "
               "end: the permanent hook stays"),
        Mutant(demo_swapped_heads, "ablating permanent_head with the temporary hook and temporary_head with the "
               "permanent one"),
        Mutant(demo_tensors, "returning loss tensors instead of Python floats (use .item())", Status.WRONG_TYPE),
    ],
}
