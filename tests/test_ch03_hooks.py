"""Chapter 3 beyond the per-exercise checks: the references are faithful, and the hook mistakes the engine
reports by name (a hook that returns nothing, activations left in ``hook.ctx``)."""

import pytest
import torch
from transformer_lens.utilities import get_act_name

from checks.ch03_hooks import chapter, rep_tokens
from checks.helpers import chapter_model
from checks.mutants.ch03_hooks import MUTANTS
from utils.checking import CheckFailure, Status


def test_cache_some_reference_equals_run_with_cache(device):
    """The reference of cache_some is a faithful run_with_cache (so learners are compared with the real cache)."""
    from solutions.ch03_hooks import cache_some as reference

    model = chapter_model(chapter, device)
    names = [get_act_name("pattern", 0), get_act_name("resid_pre", 1), "hook_embed"]
    _, real = model.run_with_cache(rep_tokens(model))
    mine = reference(model, rep_tokens(model), names)
    assert sorted(mine) == sorted(names)
    for name in names:
        torch.testing.assert_close(mine[name], real[name], atol=0, rtol=0)



def test_permanent_hook_demo_stages_differ(device):
    """Each stage of the demo gives a distinct loss on the shipped model, so every mistake shows."""
    from solutions.ch03_hooks import permanent_hook_demo as reference

    model = chapter_model(chapter, device)
    losses = reference(model, rep_tokens(model), (1, 0), (0, 1))
    assert abs(losses["after_full_reset"] - losses["clean"]) < 1e-5
    values = [losses["clean"], losses["hooked"], losses["after_reset"]]
    assert min(abs(a - b) for i, a in enumerate(values) for b in values[i + 1:]) > 1e-2, losses
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values()), "the reference left hooks on the model"



def test_a_writing_hook_that_returns_nothing_is_named(device):
    """A hook that returns None (after changing a copy, or in place) is WRONG_TYPE, and the failure says why."""
    from checks.mutants.ch03_hooks import RETURNS_NOTHING

    def in_place_returns_nothing(z, hook, head_index_to_ablate):
        z[:, :, head_index_to_ablate] = 0.0

    for name, fn in [("head_zero_ablation_hook", in_place_returns_nothing),
                     *[(name, m.fn) for name, mutants in MUTANTS.items() for m in mutants
                       if m.mistake == RETURNS_NOTHING]]:
        with pytest.raises(CheckFailure) as caught:
            chapter.exercises[name].check(fn, device)
        assert caught.value.status == Status.WRONG_TYPE and RETURNS_NOTHING in caught.value.message, caught.value



def test_activations_left_in_hook_ctx_are_reported_and_cleared(device):
    """cache_some that keeps its activations in hook.ctx: CHANGED_MODEL naming hook.ctx, and every ctx is empty
    afterwards (the next function cannot read them)."""
    from checks.mutants.ch03_hooks import cache_left_in_ctx

    with pytest.raises(CheckFailure) as caught:
        chapter.exercises["cache_some"].check(cache_left_in_ctx, device)
    assert caught.value.status == Status.CHANGED_MODEL and "hook.ctx of" in caught.value.message, caught.value
    assert not any(hook_point.ctx for hook_point in chapter_model(chapter, device).hook_dict.values())
