"""The shared checking helper: each kind of wrong output gets its own status and a specific message."""

import numpy as np
import pytest
import torch

from utils.checking import Case, CheckFailure, Mutant, Status, check_cases, compare
from tests.framework import run_checks_with_pytest
from utils.notebook import run_check

pytestmark = pytest.mark.tooling


class AlwaysEqual:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("got, status, words", [
    (AlwaysEqual(), Status.WRONG_TYPE, "AlwaysEqual"),
    (np.zeros((2, 3), dtype=np.float32), Status.WRONG_TYPE, "torch.as_tensor"),
    ([[0.0] * 3] * 2, Status.WRONG_TYPE, "list"),
    (torch.zeros(3, 2), Status.WRONG_SHAPE, "(batch=3, pos=2), expected (batch=2, pos=3)"),
    (torch.zeros(2, 3, dtype=torch.float64), Status.WRONG_DTYPE, "torch.float64"),
    (torch.tensor([[0.0, float("nan"), 0.0], [0.0] * 3]), Status.NAN, "[batch=0, pos=1]"),
    (torch.tensor([[0.0, 0.5, 0.0], [0.0] * 3]), Status.WRONG_VALUES, "worst at [batch=0, pos=1]"),
])
def test_compare_statuses(got, status, words):
    with pytest.raises(CheckFailure) as caught:
        compare(got, torch.zeros(2, 3), dims="batch pos")
    assert caught.value.status == status and words in caught.value.message


def test_compare_matching_infinities_and_python_values():
    compare(torch.tensor([float("-inf"), 1.0]), torch.tensor([float("-inf"), 1.0]))
    compare(["0.1", [1, 2.0]], ["0.1", [1, 2.0]])
    with pytest.raises(CheckFailure, match=r"\.item\(\)") as caught:
        compare(torch.tensor(0.5), 0.5)
    assert caught.value.status == Status.WRONG_TYPE


def test_inputs_are_cloned_for_each_call():
    def mutating(x):
        x.zero_()
        return x

    with pytest.raises(CheckFailure) as caught:
        check_cases(mutating, lambda x: x * 1, [Case((torch.ones(3),))])
    assert caught.value.status == Status.WRONG_VALUES  # the reference still saw ones


def test_learner_exceptions_become_statuses():
    def stub(x):
        raise NotImplementedError()

    def crashes(x):
        return x[10]

    for fn, status in [(stub, Status.NOT_ATTEMPTED), (crashes, Status.ERROR)]:
        with pytest.raises(CheckFailure) as caught:
            check_cases(fn, lambda x: x, [Case((torch.ones(3),))])
        assert caught.value.status == status
    assert "IndexError" in caught.value.message


def test_diagnosis_names_the_matching_mistake_else_the_hint():
    def double(x):
        return 2 * x

    mutants = [Mutant(double, "doubling instead of tripling")]
    with pytest.raises(CheckFailure, match="known mistake: doubling"):
        check_cases(double, lambda x: 3 * x, [Case((torch.ones(2),))], mutants=mutants, hint="multiply by 3")
    with pytest.raises(CheckFailure, match="Hint: multiply by 3"):
        check_cases(lambda x: x, lambda x: 3 * x, [Case((torch.ones(2),))], mutants=mutants, hint="multiply by 3")


def test_mistakes_that_give_the_same_output_are_named_together_with_their_symptom():
    """When several known mistakes give the learner's output on every case answered, the diagnosis blames none
    alone: it says what is observed (the symptom they share) and lists them all."""
    def unchanged(x):
        return x.clone()

    def unchanged_too(x):
        return x + 0

    def halved(x):
        return x / 2

    nothing = "your function changed nothing"
    mutants = [Mutant(halved, "halving"), Mutant(unchanged, "returning a copy", symptom=nothing),
               Mutant(unchanged_too, "adding zero", symptom=nothing)]
    with pytest.raises(CheckFailure) as caught:
        check_cases(lambda x: x, lambda x: 3 * x, [Case((torch.ones(2),))], mutants=mutants, hint="multiply by 3")
    message = caught.value.message
    assert "Your function changed nothing. Your output matches 2 known mistakes" in message, message
    assert "(1) returning a copy; (2) adding zero" in message and "halving" not in message and "Hint" not in message


def test_diagnosis_runs_each_mistake_on_the_cheap_cases_first():
    """A mistake that differs from the learner's output on a cheap case (here the failing one) is never run on a
    case where the learner's call was slow."""
    import time

    calls = []

    def right_until_last(x):
        calls.append(x.numel())
        return 3 * x if x.numel() < 5 else 3 * x + 1

    def learner(x):
        if x.numel() == 3:
            time.sleep(0.05)  # a slow case that the learner passes
        return 3 * x + 2 if x.numel() == 5 else 3 * x

    cases = [Case((torch.ones(n),), label=f"n={n}") for n in (1, 2, 3, 4, 5)]
    with pytest.raises(CheckFailure):
        check_cases(learner, lambda x: 3 * x, cases, mutants=[Mutant(right_until_last, "adding one to the last case")])
    assert 5 in calls and 3 not in calls, calls


def test_hidden_cases_do_not_reveal_their_label():
    with pytest.raises(CheckFailure) as caught:
        check_cases(lambda x: x, lambda x: -x, [Case((torch.ones(2),), label="secret prompt", hidden=True)])
    assert "secret" not in caught.value.message and "hidden case" in caught.value.message


def test_in_notebook_check_prints_one_clear_line():
    from solutions.ch00_pytorch_einops import split_heads
    from checks.mutants.ch00_pytorch_einops import split_heads_head_minor

    verdict = run_check(split_heads, "ch00_pytorch_einops", "cpu")
    assert verdict.passed and verdict.line("split_heads").startswith("✅ split_heads passed")
    verdict = run_check(split_heads_head_minor, "ch00_pytorch_einops", "cpu", exercise="split_heads")
    line = verdict.line("split_heads")
    assert not verdict.passed and "WRONG_VALUES" in line and "(d_head head)" in line and "Traceback" not in line
    verdict = run_check(lambda x: x, "ch00_pytorch_einops", "cpu")
    assert not verdict.passed and "exercise function itself" in verdict.message


def _all_mutants():
    from utils.chapters import chapter_names, checker

    for chapter_name in chapter_names():
        chapter = checker(chapter_name)
        for name, exercise in chapter.exercises.items():
            for mutant in exercise.mutants:
                yield pytest.param(chapter.name, name, mutant, id=f"{chapter.name}-{name}-{mutant.name}")


def test_check_cells_and_pytest_give_the_same_verdicts():
    """One code path: the check cell (no pytest session) and the pytest checker agree, word for word, on known
    mistakes of every chapter (one of each of a dozen exercises spread over the chapters, in one pytest session)."""
    params = list(_all_mutants())
    sample, seen = [], set()
    for param in params[:: max(1, len(params) // 16)]:
        if param.values[1] not in seen:
            seen.add(param.values[1])
            sample.append(param)
    assert {p.values[0] for p in sample} == {p.values[0] for p in params}, "the sample misses a chapter"
    via_pytest = run_checks_with_pytest({(p.values[0], p.values[1]): p.values[2].fn for p in sample}, "cpu")
    for param in sample:
        chapter, exercise, mutant = param.values
        direct = run_check(mutant.fn, chapter, "cpu", exercise=exercise)
        assert direct == via_pytest[chapter, exercise], (param.id, direct, via_pytest[chapter, exercise])
        assert direct.status == mutant.expect, (param.id, direct)


def test_a_model_changed_in_a_check_is_restored_for_the_next_check():
    """In a learner's kernel too: a function that changes the shared model gets CHANGED_MODEL, and the next check
    (of a correct function) passes."""
    from solutions.ch01_tokenization import count_tokens, greedy_generate

    def zeroes_embedding(model, texts, prepend_bos=True):
        model.W_E.data.zero_()
        torch.set_grad_enabled(False)
        torch.set_default_dtype(torch.float64)
        return count_tokens(model, texts, prepend_bos)

    def disables_bos(model, texts, prepend_bos=True):
        model.cfg.default_prepend_bos = False
        model.tokenizer.padding_side = "left"
        return count_tokens(model, texts, prepend_bos)

    for bad in (zeroes_embedding, disables_bos):
        verdict = run_check(bad, "ch01_tokenization", "cpu", exercise="count_tokens")
        assert verdict.status == Status.CHANGED_MODEL and "changed the model" in verdict.message, verdict
        assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
        assert run_check(greedy_generate, "ch01_tokenization", "cpu").passed


def test_data_left_in_a_hook_ctx_is_a_change_to_the_model(attn2l):
    """A hook point's ctx is state on the model: data a function leaves there (where the next function or check could
    read it) is reported by the guard, named, and cleared; through a check cell it is CHANGED_MODEL."""
    from utils.isolation import pristine

    name = "blocks.0.attn.hook_pattern"

    def keeps_max_attention(pattern, hook):
        hook.ctx["max"] = pattern.amax()

    tokens, hooks = attn2l.to_tokens("Hello there"), [(name, keeps_max_attention)]
    with pristine([attn2l]) as report:
        attn2l.run_with_hooks(tokens, return_type=None, fwd_hooks=hooks)
        assert "max" in attn2l.hook_dict[name].ctx
    assert report.changes == [f"data left in hook.ctx of {name} (clear it: model.reset_hooks() or "
                              "hook.clear_context())"], report.changes
    assert attn2l.hook_dict[name].ctx == {}
    with pristine([attn2l]) as report:  # a function that cleans up after itself changes nothing
        attn2l.run_with_hooks(tokens, return_type=None, fwd_hooks=hooks, clear_contexts=True)
    assert report.changes == []

    from checks.mutants.ch03_hooks import cache_left_in_ctx
    from solutions.ch03_hooks import cache_some

    verdict = run_check(cache_left_in_ctx, "ch03_hooks", "cpu", exercise="cache_some")
    assert verdict.status == Status.CHANGED_MODEL and "data left in hook.ctx of" in verdict.message, verdict
    assert run_check(cache_some, "ch03_hooks", "cpu").passed


def test_check_names_the_exercise_of_a_renamed_function(capsys):
    """check(fn, exercise=...) checks a function whose name is not the exercise's; without it, the message says how."""
    from solutions.ch00_pytorch_einops import split_heads
    from utils.notebook import make_check

    def my_split(*args, **kwargs):
        return split_heads(*args, **kwargs)

    check = make_check("ch00_pytorch_einops", "cpu")
    check(my_split)
    assert 'exercise="..."' in capsys.readouterr().out
    check(my_split, exercise="split_heads")
    assert capsys.readouterr().out.startswith("✅ split_heads passed")
    assert "exercise=" in check.__doc__


def test_judge_gets_the_framework_loop_hidden_cases_and_diagnosis():
    """A custom judge only says what is wrong with one answer; labels, hidden cases and diagnosis come from the
    framework."""
    def judge(attempt):
        if attempt.got.sum() != attempt.expected.sum():
            raise CheckFailure(Status.WRONG_VALUES, "the sums differ")

    def shuffled(x):
        return x.flip(0) * 2

    cases = [Case((torch.arange(3.0),), label="public"), Case((torch.ones(2),), label="secret", hidden=True)]
    assert check_cases(lambda x: x.flip(0), lambda x: x, cases[:1], judge=judge) == 1
    with pytest.raises(CheckFailure, match="on public: the sums differ") as caught:
        check_cases(shuffled, lambda x: x, cases, judge=judge, mutants=[Mutant(shuffled, "doubling")])
    assert "known mistake: doubling" in caught.value.message
    with pytest.raises(CheckFailure) as caught:
        check_cases(lambda x: x * (x.numel() == 3), lambda x: x, cases, judge=judge)
    assert "hidden case" in caught.value.message and "secret" not in caught.value.message


def test_a_transform_that_cannot_read_the_output_is_wrong_type():
    with pytest.raises(CheckFailure) as caught:
        check_cases(lambda x: "text", lambda x: x, [Case((torch.ones(2),))], transform=lambda out: out.sum())
    assert caught.value.status == Status.WRONG_TYPE
