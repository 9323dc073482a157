"""Every chapter's checkers (``checks/``, one module per chapter of ``chapters/chapters.toml``) as pytest tests.

``test_exercise[<chapter>-<exercise>]`` checks the learner's function: the reference solution by default, a
notebook's with ``--submission``, every notebook of a folder with ``--submissions`` (``tests/conftest.py``).
``test_mutant_rejected[<chapter>-<exercise>-<mutant>]`` proves the checker rejects each known mistake with its
expected status and names it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.framework import GRADED_NOTEBOOKS, skip_when_not_shipped
from utils.chapters import chapter_names, checker
from utils.checking import CheckFailure, Status, Verdict
from utils.grading import notebook_chapter
from utils.reports import verdict_property


def _chapters(config) -> list[str]:
    """Every ready chapter; with ``--submission``, only the notebook's declared chapter (when it declares one)."""
    submission = config.getoption("--submission")
    declared = notebook_chapter(Path(submission)) if submission else None
    return [declared] if declared in chapter_names() else chapter_names()


def pytest_generate_tests(metafunc):
    """``test_exercise``: each exercise once (the reference, a notebook, injected functions), or once per graded
    notebook of its chapter (``--submissions``: the notebooks ``tests/conftest.py`` hands over).
    ``test_mutant_rejected``: each known mistake of each exercise."""
    exercises = [(c, name) for c in _chapters(metafunc.config) for name in checker(c).exercises]
    if metafunc.function is test_mutant_rejected:
        metafunc.parametrize("chapter_name, exercise_name, mutant", [
            pytest.param(c, name, m, id=f"{c}-{name}-{m.name}")
            for c, name in exercises for m in checker(c).exercises[name].mutants])
        return
    graded = metafunc.config.stash.get(GRADED_NOTEBOOKS, None)
    if graded is None:
        metafunc.parametrize("chapter_name, exercise_name", exercises, ids=[f"{c}-{e}" for c, e in exercises])
        return
    params = [pytest.param(c, e, path, id=f"{c}-{e}-{learner}")
              for c, e in exercises for path, learner, chapter in graded if chapter in (None, c)]
    metafunc.parametrize("chapter_name, exercise_name, learner", params, indirect=["learner"])


def test_exercise(chapter_name, exercise_name, learner, device, hidden_cases, record_property):
    exercise = checker(chapter_name).exercises[exercise_name]
    fn = learner.function(exercise_name)
    hidden = hidden_cases.get(chapter_name, {}).get(exercise_name)
    with skip_when_not_shipped():
        record_property(*verdict_property(Verdict(Status.PASS, cases=exercise.check(fn, device, hidden))))


@pytest.mark.mutants
def test_mutant_rejected(chapter_name, exercise_name, mutant, device):
    if mutant.only_on and device.type not in mutant.only_on:
        pytest.skip(f"this mistake only shows on {'/'.join(mutant.only_on)}")
    exercise = checker(chapter_name).exercises[exercise_name]
    with skip_when_not_shipped(), pytest.raises(CheckFailure) as caught:
        exercise.check(mutant.fn, device)
    failure = caught.value
    assert failure.status == mutant.expect, (
        f"mutant {mutant.name!r} ({mutant.mistake}) was rejected as {failure.status.value}, expected "
        f"{mutant.expect.value}: {failure.message}"
    )
    if mutant.expect in (Status.WRONG_VALUES, Status.NAN, Status.WRONG_SHAPE):
        assert mutant.mistake in failure.message, (
            f"the failure for mutant {mutant.name!r} does not name its mistake: {failure.message}"
        )
