"""The shared checking helper: each kind of wrong output gets its own status and a specific message."""

import numpy as np
import pytest
import torch

from utils.checking import Case, CheckFailure, Mutant, Status, check_cases, compare
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


def test_hidden_cases_do_not_reveal_their_label():
    with pytest.raises(CheckFailure) as caught:
        check_cases(lambda x: x, lambda x: -x, [Case((torch.ones(2),), label="secret prompt", hidden=True)])
    assert "secret" not in caught.value.message and "hidden case" in caught.value.message


def test_in_notebook_check_prints_one_clear_line():
    from solutions.ch00_pytorch_einops import split_heads
    from tests.mutants.ch00_pytorch_einops import split_heads_head_minor

    ok, line = run_check(split_heads, "ch00_pytorch_einops", "cpu")
    assert ok and line.startswith("✅ split_heads passed")
    split_heads_head_minor.__name__ = "split_heads"  # as a learner's function of that name
    try:
        ok, line = run_check(split_heads_head_minor, "ch00_pytorch_einops", "cpu")
    finally:
        split_heads_head_minor.__name__ = "split_heads_head_minor"
    assert not ok and "WRONG_VALUES" in line and "(d_head head)" in line and "Traceback" not in line
    ok, line = run_check(lambda x: x, "ch00_pytorch_einops", "cpu")
    assert not ok and "exercise function itself" in line
