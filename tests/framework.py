"""The pytest adapter of the checker engine (``utils/checkers.py``, the checkers in ``checks/``): the shipped model
as a fixture that skips while a model is not shipped, and the check cell's verdict through a pytest session.

``tests/test_exercises.py`` runs every chapter's checkers: ``test_exercise[ch00_pytorch_einops-split_heads]`` checks
the learner's ``split_heads`` (the reference by default; a notebook with ``--submission``; every notebook of a folder
with ``--submissions``); ``test_mutant_rejected[ch00_pytorch_einops-split_heads-<mutant>]`` proves the checker
rejects each known mistake with the expected status and names the mistake.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Callable

import pytest
import torch

from checks import helpers
from utils.reports import verdict_of

ROOT = Path(__file__).resolve().parents[1]
LEARNER_FUNCTIONS = pytest.StashKey[dict]()  # name -> function, read by tests/conftest.py's `learner` fixture
GRADED_NOTEBOOKS = pytest.StashKey[list]()  # with --submissions: (path, learner id, declared chapter or None)


@contextlib.contextmanager
def skip_when_not_shipped():
    """Skip the test (instead of failing it) when a checker needs a model that ``models/`` does not hold yet."""
    try:
        yield
    except helpers.ModelNotShipped as e:
        pytest.skip(str(e))


def shipped_model(name: str, device: torch.device):
    """The cached shipped model (``checks.helpers.shipped_model``); skips the calling test while ``models/<name>`` is
    not shipped."""
    with skip_when_not_shipped():
        return helpers.shipped_model(name, device)


class _InjectAndCollect:
    """A pytest plugin: hands the learner's functions to the checkers and collects the reports."""

    def __init__(self, functions: dict[str, Callable]):
        self.functions = functions
        self.reports: list[pytest.TestReport] = []

    def pytest_configure(self, config):
        config.stash[LEARNER_FUNCTIONS] = self.functions

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.failed or report.skipped:
            self.reports.append(report)


def run_checks_with_pytest(functions: dict[tuple[str, str], Callable], device: str | None = None) -> dict:
    """``utils.notebook.run_check`` through one pytest session: ``{(chapter, exercise): function}`` (distinct exercise
    names) injected into ``test_exercise[<chapter>-<exercise>]``; the verdict of each. A test asserts that the two
    give the same verdict on known mistakes of every chapter."""
    from utils.checking import Status, Verdict

    names = [exercise for _, exercise in functions]
    assert len(set(names)) == len(names), "one function per exercise name (the injection is by name)"
    plugin = _InjectAndCollect({exercise: fn for (_, exercise), fn in functions.items()})
    test_file = ROOT / "tests" / "test_exercises.py"
    args = [*(f"{test_file}::test_exercise[{chapter}-{exercise}]" for chapter, exercise in functions),
            f"--rootdir={ROOT}", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-W", "ignore::DeprecationWarning"]
    device = device or os.environ.get("CS_DEVICE")
    if device:
        args += ["--device", str(device)]
    pytest_output = io.StringIO()
    with contextlib.redirect_stdout(pytest_output), contextlib.redirect_stderr(pytest_output):
        pytest.main(args, plugins=[plugin])
    verdicts = {}
    for report in plugin.reports:
        chapter, exercise = report.nodeid.rsplit("[", 1)[1].rstrip("]").split("-", 1)
        verdicts[chapter, exercise] = verdict_of(report)
    for key in functions:
        verdicts.setdefault(key, Verdict(Status.MISSING, f"no checker {key[0]}-{key[1]} in {test_file.name} "
                                                         f"({pytest_output.getvalue().strip().splitlines()[-1:]})"))
    return verdicts
