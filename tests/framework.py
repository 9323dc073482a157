"""The pytest adapter of the checker engine (``utils/checkers.py``): each chapter's checkers and mutant proofs as
pytest tests, and the shipped model as a fixture that skips while a model is not shipped.

A chapter test module declares ``chapter = Chapter(...)`` (this module's, which adds :meth:`Chapter.tests`) and
ends with::

    test_exercise, test_mutant_rejected = chapter.tests()

``test_exercise[split_heads]`` checks the learner's ``split_heads`` (the reference by default; a notebook with
``--submission``; every notebook of a folder with ``--submissions``); ``test_mutant_rejected[split_heads-<mutant>]``
proves the checker rejects each known mistake with the expected status and names the mistake.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from utils import checkers
from utils.checking import CheckFailure, Status, Verdict
from utils.models import MODELS_DIR, cached_model
from utils.reports import verdict_property


def shipped_model(name: str, device: torch.device):
    """The cached shipped model (``utils.models.cached_model``); skips the calling test while ``models/<name>`` is not
    shipped."""
    if not (MODELS_DIR / name / "config.json").exists():
        pytest.skip(f"models/{name} is not shipped yet")
    return cached_model(name, device)


class Chapter(checkers.Chapter):
    """A chapter of checkers (``utils.checkers.Chapter``) that also makes its pytest tests."""

    def tests(self):
        """The two parametrized pytest tests of this chapter: its checkers on the learner (the reference by default)
        and the proof that each known mistake is rejected."""
        chapter = self
        unknown = set(chapter._mutants) - set(chapter.exercises)
        assert not unknown, f"{chapter.name}: mutants for exercises this chapter does not have: {sorted(unknown)}"
        names = list(chapter.exercises)
        mutant_params = [
            pytest.param(name, m, id=f"{name}-{m.name}") for name in names for m in chapter.exercises[name].mutants
        ]

        @pytest.mark.parametrize("exercise_name", names)
        def test_exercise(exercise_name, learner, device, hidden_cases, record_property):
            exercise = chapter.exercises[exercise_name]
            fn = learner.function(exercise_name)
            hidden = hidden_cases.get(chapter.name, {}).get(exercise_name)
            record_property(*verdict_property(Verdict(Status.PASS, cases=exercise.check(fn, device, hidden))))

        @pytest.mark.mutants
        @pytest.mark.parametrize("exercise_name, mutant", mutant_params)
        def test_mutant_rejected(exercise_name, mutant, device):
            if mutant.only_on and device.type not in mutant.only_on:
                pytest.skip(f"this mistake only shows on {'/'.join(mutant.only_on)}")
            exercise = chapter.exercises[exercise_name]
            with pytest.raises(CheckFailure) as caught:
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

        return test_exercise, test_mutant_rejected


def chapter_of(name: str) -> Chapter:
    """The :class:`Chapter` declared by ``tests/test_<name>.py`` (imports the checker module)."""
    return importlib.import_module(f"tests.test_{name}").chapter
