"""How a chapter's checkers are declared: one :class:`Chapter` per test module, one exercise per function.

A chapter test module looks like::

    chapter = Chapter("ch00_pytorch_einops", mutants=MUTANTS)

    @chapter.exercise(dims="batch pos head d_head", hint="rearrange the last dim into (head d_head)")
    def split_heads(device):                      # yields the cases, built on the checker's device
        yield Case((torch.randn(2, 5, 32, device=device), 4), label="batch=2, pos=5, d_model=32, 4 heads")

    test_exercise, test_mutant_rejected = chapter.tests()

``test_exercise[split_heads]`` checks the learner's ``split_heads`` (the reference by default; a notebook with
``--submission``; the function passed to ``check(...)`` in a notebook) against ``solutions.<chapter>``.
``test_mutant_rejected[split_heads-<mutant>]`` proves the checker rejects each known mistake with the
expected status and names the mistake.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import pytest
import torch

from utils.checking import Case, CheckFailure, Mutant, Status, check_cases, tolerance_for

@functools.cache
def shipped_model(name: str, device: torch.device):
    """A shipped model on ``device`` with default processing, loaded once per process (skips the calling test
    while ``models/<name>`` is not shipped)."""
    from utils.models import MODELS_DIR, load_model

    if not (MODELS_DIR / name / "config.json").exists():
        pytest.skip(f"models/{name} is not shipped yet")
    return load_model(name, device=device)


CaseFactory = Callable[[torch.device], Iterable[Case]]
CustomCheck = Callable[["Exercise", Callable, Callable, torch.device], int]


@dataclass
class Exercise:
    name: str
    cases: CaseFactory | None = None
    dims: str | None = None
    hint: str = ""
    tol: dict[str, tuple[float, float]] = field(default_factory=dict)
    transform: Callable | None = None
    custom: CustomCheck | None = None
    mutants: list[Mutant] = field(default_factory=list)

    def check(self, fn: Callable, reference: Callable, device: torch.device, hidden: CaseFactory | None = None) -> int:
        """Check ``fn`` against ``reference``; return the number of cases passed or raise CheckFailure.

        ``hidden`` adds an instructor's extra cases, whose inputs and expected values never appear in messages.
        """
        if not callable(fn):
            raise CheckFailure(Status.WRONG_TYPE, f"{self.name} is a {type(fn).__name__}, not a function")
        if self.custom is not None:
            return self.custom(self, fn, reference, device)
        atol, rtol = tolerance_for(device, self.tol)
        cases = list(self.cases(device)) + [replace(case, hidden=True) for case in (hidden(device) if hidden else [])]
        return check_cases(fn, reference, cases, dims=self.dims, atol=atol, rtol=rtol,
                           mutants=self.mutants, hint=self.hint, transform=self.transform)


class Chapter:
    """The exercises of one chapter and the pytest tests that check them."""

    def __init__(self, name: str, mutants: dict[str, list[Mutant]]):
        self.name = name
        self.exercises: dict[str, Exercise] = {}
        self._mutants = mutants

    @property
    def reference(self):
        return importlib.import_module(f"solutions.{self.name}")

    def exercise(self, *, custom: bool = False, **options) -> Callable:
        """Register the decorated function (named after the exercise) as its case factory or custom check."""
        def register(func: Callable) -> Callable:
            kind = "custom" if custom else "cases"
            self.exercises[func.__name__] = Exercise(
                func.__name__, mutants=self._mutants.get(func.__name__, []), **{kind: func}, **options
            )
            return func
        return register

    def tests(self):
        """The two parametrized pytest tests of this chapter."""
        names = list(self.exercises)
        mutant_params = [
            pytest.param(name, m, id=f"{name}-{m.name}") for name in names for m in self.exercises[name].mutants
        ]

        @pytest.mark.parametrize("exercise_name", names)
        def test_exercise(exercise_name, learner, device, hidden_cases, record_property):
            exercise = self.exercises[exercise_name]
            fn = learner.function(exercise_name)
            hidden = hidden_cases.get(self.name, {}).get(exercise_name)
            record_property("cases", exercise.check(fn, getattr(self.reference, exercise_name), device, hidden))

        @pytest.mark.mutants
        @pytest.mark.parametrize("exercise_name, mutant", mutant_params)
        def test_mutant_rejected(exercise_name, mutant, device):
            if mutant.only_on and device.type not in mutant.only_on:
                pytest.skip(f"this mistake only shows on {'/'.join(mutant.only_on)}")
            exercise = self.exercises[exercise_name]
            with pytest.raises(CheckFailure) as caught:
                exercise.check(mutant.fn, getattr(self.reference, exercise_name), device)
            failure = caught.value
            assert failure.status == mutant.expect, (
                f"mutant {mutant.name!r} ({mutant.mistake}) was rejected as {failure.status.value}, expected "
                f"{mutant.expect.value}: {failure.message}"
            )
            if mutant.expect in (Status.WRONG_VALUES, Status.NAN, Status.WRONG_SHAPE):
                assert mutant.mistake in failure.message, (
                    f"the failure for mutant {mutant.name!r} does not name its mistake: {failure.message}"
                )

        return test_exercise, test_mutant_rejected
