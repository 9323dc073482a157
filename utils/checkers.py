"""How a chapter's checkers are declared: one :class:`Chapter` per checker module, one :class:`Exercise` per function.

The checker engine without pytest: the grader (``utils/grading.py``), the in-notebook ``check`` (``utils/notebook.py``)
and the pytest suite (``tests/test_exercises.py``) all run an :class:`Exercise` directly. A checker module looks like::

    chapter = Chapter("ch00_pytorch_einops", mutants=MUTANTS)

    @chapter.exercise(dims="batch pos head d_head")
    def split_heads(device):                      # yields the cases, built on the checker's device
        yield Case((torch.randn(2, 5, 32, device=device), 4), label="batch=2, pos=5, d_model=32, 4 heads")

:meth:`Exercise.check` checks a function (the learner's) against ``solutions.<chapter>``: the reference by default in
``make test``, a notebook's function when grading, the function passed to ``check(...)`` in a notebook. The hint shown
when a failure matches no known mistake is the exercise's hint cell in the chapter source (``HINTS`` in the generated
solutions module): one home per hint.

**Custom checks.** When comparing the output with the reference's is not the right test (a random output, a
trained probe, a set of heads), pass ``judge=``: a function of one :class:`utils.checking.Attempt` that raises
``CheckFailure`` when the attempt is wrong. The framework still owns everything else — fresh copies of the
inputs, the pristine model, the call, the "on <case>" label, instructors' hidden cases and the diagnosis with
the known mistakes — so a judge only says what is wrong with one answer::

    def _judge_probe(attempt):                    # attempt.got is the transformed output, attempt.expected too
        if accuracy(attempt.got) < accuracy(attempt.expected) - 0.05:
            raise CheckFailure(Status.WRONG_VALUES, "your probe classifies ...")

    @chapter.exercise(transform=probe_logits, judge=_judge_probe)
    def train_linear_probe(device):
        yield Case((train_x, train_y, 3), label="3 clusters in d_model=16")
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

import torch

from checks import helpers
from utils.checking import Case, CheckFailure, Judge, Mutant, Status, Tolerances, Verdict, check_cases, tolerance_for

CaseFactory = Callable[[torch.device], Iterable[Case]]


@dataclass
class Exercise:
    """One exercise's checker: its cases and how an answer is judged."""

    name: str
    chapter: str
    cases: CaseFactory
    dims: str | None = None
    tol: Tolerances = field(default_factory=lambda: helpers.DEFAULT)  # per device type: checks/helpers.py
    transform: Callable[[Any], Any] | None = None  # applied to both outputs before they are compared or judged
    transform_for: Callable[[torch.device], Callable[[Any], Any]] | None = None  # a transform that needs the device
    judge: Judge | None = None
    answer_every_case: bool = False
    mutants: list[Mutant] = field(default_factory=list)
    _cases: dict[str, list[Case]] = field(default_factory=dict, repr=False)

    @property
    def reference(self) -> Callable:
        return getattr(importlib.import_module(f"solutions.{self.chapter}"), self.name)

    @property
    def hint(self) -> str:
        """The exercise's hint cell in the chapter source (``HINTS`` of the generated solutions module)."""
        return getattr(importlib.import_module(f"solutions.{self.chapter}"), "HINTS", {}).get(self.name, "")

    def check(self, fn: Callable, device: torch.device, hidden: CaseFactory | None = None) -> int:
        """Check ``fn``; return the number of cases passed or raise CheckFailure.

        ``hidden`` adds an instructor's extra cases, whose inputs and expected values never appear in messages.
        """
        if not callable(fn):
            raise CheckFailure(Status.WRONG_TYPE, f"{self.name} is a {type(fn).__name__}, not a function")
        atol, rtol = tolerance_for(device, self.tol)
        cases = self.public_cases(device) + [replace(case, hidden=True) for case in (hidden(device) if hidden else [])]
        transform = self.transform_for(device) if self.transform_for is not None else self.transform
        return check_cases(fn, self.reference, cases, dims=self.dims, atol=atol, rtol=rtol, mutants=self.mutants,
                           hint=self.hint, transform=transform, judge=self.judge,
                           answer_every_case=self.answer_every_case, device=device)

    def public_cases(self, device: torch.device) -> list[Case]:
        """The exercise's cases on ``device``, built once per session (with their reference outputs memoized)."""
        key = str(device)
        if key not in self._cases:
            self._cases[key] = list(self.cases(device))
        return self._cases[key]

    def verdict(self, fn: Callable, device: torch.device, hidden: CaseFactory | None = None) -> Verdict:
        """:meth:`check` as a :class:`Verdict` (what a check cell prints)."""
        try:
            return Verdict(Status.PASS, cases=self.check(fn, device, hidden))
        except CheckFailure as failure:
            return Verdict(failure.status, failure.message, mistake=failure.mistake)


class Chapter:
    """The exercises of one chapter (``checks/<chapter>.py`` declares ``chapter = Chapter(...)``)."""

    def __init__(self, name: str, mutants: dict[str, list[Mutant]]):
        self.name = name
        self.exercises: dict[str, Exercise] = {}
        self.mutants = mutants  # exercise name -> its known mistakes (checks/mutants/<chapter>.py)

    @property
    def reference(self):
        """The reference solutions module, ``solutions.<chapter>``."""
        return importlib.import_module(f"solutions.{self.name}")

    def exercise(self, **options) -> Callable[[CaseFactory], CaseFactory]:
        """Register the decorated case factory (named after the exercise); ``options`` are :class:`Exercise`
        fields (``dims``, ``tol``, ``transform``, ``judge``, ``answer_every_case``). Returns the factory
        unchanged."""
        def register(func: CaseFactory) -> CaseFactory:
            self.exercises[func.__name__] = Exercise(func.__name__, self.name, func,
                                                     mutants=self.mutants.get(func.__name__, []), **options)
            return func
        return register
