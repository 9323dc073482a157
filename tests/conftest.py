"""pytest options and fixtures shared by every checker.

- ``--device cpu|cuda|mps`` (default: ``$CS_DEVICE``, else CUDA if available, else CPU): every checker builds its
  inputs on this device.
- ``--submission PATH.ipynb``: check a learner's notebook instead of the reference solutions. Only the
  ``test_exercise`` checkers of the notebook's chapter run; tooling tests and mutant tests are deselected.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from utils.checking import CheckFailure, Status  # noqa: E402
from utils.device import get_device  # noqa: E402
from utils.extract import UnreadableNotebook, load_submission  # noqa: E402
from utils.notebook import LEARNER_FUNCTIONS  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--device", default=None, help="cpu, cuda or mps (default: $CS_DEVICE, else cuda if available)")
    parser.addoption("--submission", default=None, help="a learner notebook (.ipynb) to check instead of the reference")


def pytest_configure(config):
    config.addinivalue_line("markers", "mutants: proves a checker rejects a known wrong implementation")
    config.addinivalue_line("markers", "tooling: tests of the project's tooling (skipped with --submission)")


def pytest_collection_modifyitems(config, items):
    """With --submission, keep only the learner-facing checkers of the submission's chapter."""
    path = config.getoption("--submission")
    if not path:
        return
    chapter = getattr(_submission(config), "chapter", None)  # None: unreadable, or made without our metadata
    keep, drop = [], []
    for item in items:
        module_chapter = getattr(getattr(item.module, "chapter", None), "name", None)
        is_checker = item.originalname == "test_exercise" and module_chapter is not None
        (keep if is_checker and (chapter is None or chapter == module_chapter) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


_SUBMISSIONS: dict[str, object] = {}


def _submission(config):
    path = str(Path(config.getoption("--submission")).resolve())
    if path not in _SUBMISSIONS:
        try:
            _SUBMISSIONS[path] = load_submission(path)
        except UnreadableNotebook as e:
            _SUBMISSIONS[path] = e
    return _SUBMISSIONS[path]


class Learner:
    """Where the functions under test come from: the reference, a notebook, or functions passed to check()."""

    def __init__(self, functions=None, submission=None, reference=None):
        self.functions, self.submission, self.reference = functions, submission, reference

    def function(self, name: str):
        if self.functions is not None:
            if name in self.functions:
                return self.functions[name]
            raise CheckFailure(Status.MISSING, f"no function named {name} was passed to check()")
        if self.submission is not None:
            if isinstance(self.submission, UnreadableNotebook):
                raise CheckFailure(Status.UNREADABLE, str(self.submission))
            return self.submission.function(name)
        return getattr(self.reference, name)


@pytest.fixture(scope="session")
def device(request):
    return get_device(request.config.getoption("--device"))


@pytest.fixture
def learner(request) -> Learner:
    injected = request.config.stash.get(LEARNER_FUNCTIONS, None)
    if injected is not None:
        return Learner(functions=injected)
    if request.config.getoption("--submission"):
        return Learner(submission=_submission(request.config))
    return Learner(reference=importlib.import_module(f"solutions.{request.module.chapter.name}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turn a CheckFailure into a one-paragraph report with its status (no traceback wall)."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call":
        return
    if call.excinfo is not None and isinstance(call.excinfo.value, CheckFailure):
        failure = call.excinfo.value
        report.longrepr = f"{failure.status.value}: {failure.message}"
        report.user_properties.append(("status", failure.status.value))
    elif report.passed:
        report.user_properties.append(("status", Status.PASS.value))
