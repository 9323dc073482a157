"""What the pytest checkers attach to their reports, and how the gradebook and check cells read it back.

One typed contract instead of string keys read in several files: ``tests/conftest.py`` attaches a
:class:`GradedItem` (who and what is graded) and a :class:`utils.checking.Verdict` (the outcome) to each checker's
report; ``utils/grading.py`` and ``utils/notebook.py`` read them with :func:`graded_item` and :func:`verdict_of`.
Both travel as plain tuples in ``report.user_properties`` (pytest-xdist and JUnit XML carry them as they are).
"""

from __future__ import annotations

from typing import NamedTuple

from utils.checking import Status, Verdict

_ITEM = "circuit_school.item"
_VERDICT = "circuit_school.verdict"


class GradedItem(NamedTuple):
    """One (learner, chapter, exercise) of a gradebook."""

    learner: str
    chapter: str
    exercise: str


def item_property(item: GradedItem) -> tuple[str, tuple]:
    return _ITEM, tuple(item)


def verdict_property(verdict: Verdict) -> tuple[str, tuple]:
    return _VERDICT, (verdict.status.value, verdict.message, verdict.cases, verdict.mistake)


def graded_item(report) -> GradedItem | None:
    """The :class:`GradedItem` of a checker's report, or None for reports that grade no learner."""
    value = dict(report.user_properties).get(_ITEM)
    return GradedItem(*value) if value else None


def verdict_of(report) -> Verdict:
    """The :class:`Verdict` of a checker's report (a failure that is no CheckFailure is an ERROR with its text)."""
    value = dict(report.user_properties).get(_VERDICT)
    if value is not None:
        status, message, cases, mistake = value
        return Verdict(Status(status), message, cases, mistake)
    if report.passed:
        return Verdict(Status.PASS)
    return Verdict(Status.ERROR, str(report.longrepr).strip())
