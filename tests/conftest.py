"""pytest options and fixtures shared by every checker.

- ``--device cpu|cuda|mps`` (default: ``$CS_DEVICE``, else CUDA if available, else CPU): every checker builds its
  inputs on this device.
- ``--submission PATH.ipynb``: check a learner's notebook instead of the reference solutions. Only the
  ``test_exercise`` checkers of the notebook's chapter run; tooling tests and mutant tests are deselected.
- ``--submissions DIR``: grade every notebook below DIR (learner code runs in an isolated worker process, see
  ``utils/grading.py``); ``--gradebook OUT`` writes grades.csv/json and feedback; ``--exercise-timeout``,
  ``--points FILE.toml`` and ``--hidden-cases FILE.py`` (``HIDDEN_CASES = {chapter: {exercise: cases(device)}}``).
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.framework import GRADED_NOTEBOOKS, LEARNER_FUNCTIONS, shipped_model  # noqa: E402
from utils.checking import CheckFailure, Status, Verdict  # noqa: E402
from utils.device import get_device  # noqa: E402
from utils.extract import UnreadableNotebook, load_submission  # noqa: E402
from utils.grading import (  # noqa: E402
    GradeOptions,
    PytestGradebook,
    find_notebooks,
    learner_id,
    load_points,
    notebook_chapter,
    run_info,
    safe_to_grade,
)
from utils.reports import GradedItem, item_property, verdict_property  # noqa: E402
from utils.worker import LearnerText, RemoteFunction, Worker  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--device", default=None, help="cpu, cuda or mps (default: $CS_DEVICE, else cuda if available)")
    parser.addoption("--submission", default=None, help="a learner notebook (.ipynb) to check instead of the reference")
    parser.addoption("--submissions", default=None, help="grade every notebook below this folder")
    parser.addoption("--gradebook", default=None, help="with --submissions: write the gradebook to this folder")
    parser.addoption("--exercise-timeout", type=float, default=30.0, help="with --submissions: seconds per exercise")
    parser.addoption("--points", default=None, help="with --submissions: TOML manifest of points per exercise")
    parser.addoption("--hidden-cases", default=None, help="a Python file defining HIDDEN_CASES")


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one of `make test`'s processes (one per core): one thread each,
        os.environ["OMP_NUM_THREADS"] = "1"  # also for the notebook kernels and grading workers it starts
        import torch

        torch.set_num_threads(1)
    config.addinivalue_line("markers", "mutants: proves a checker rejects a known wrong implementation")
    config.addinivalue_line("markers", "tooling: tests of the project's tooling (skipped with --submission)")
    if config.getoption("--submissions"):
        folder = Path(config.getoption("--submissions")).resolve()
        notebooks, hostile = safe_to_grade(_graded_notebooks(config), run_info(GradeOptions()))
        if hostile:
            print(f"!!! not sandboxed here: skipped the course's {len(hostile)} hostile examples", file=sys.stderr)
        config.stash[GRADED_NOTEBOOKS] = [(p, learner_id(p, folder), notebook_chapter(p)) for p in notebooks]
    out = config.getoption("--gradebook")
    if out and not any(isinstance(p, PytestGradebook) for p in config.pluginmanager.get_plugins()):
        info = run_info(GradeOptions(device=str(get_device(config.getoption("--device")))))
        config.pluginmanager.register(PytestGradebook(Path(out), load_points(config.getoption("--points")), info))


def _graded_notebooks(config) -> list[Path]:
    folder = Path(config.getoption("--submissions")).resolve()
    out = config.getoption("--gradebook")
    return find_notebooks(folder, exclude=Path(out).resolve() if out else None)


def pytest_collection_modifyitems(config, items):
    """With --submission(s), keep only the learner-facing checkers (of the submission's chapter)."""
    if config.getoption("--submissions"):
        chapter = None
    elif config.getoption("--submission"):
        chapter = getattr(_submission(config), "chapter", None)  # None: unreadable, or made without our metadata
    else:
        return
    keep, drop = [], []
    for item in items:
        item_chapter = item.callspec.params.get("chapter_name") if hasattr(item, "callspec") else None
        is_checker = item.originalname == "test_exercise" and item_chapter is not None
        (keep if is_checker and (chapter is None or chapter == item_chapter) else drop).append(item)
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

    def __init__(self, functions=None, submission=None, reference=None, remote=None):
        self.functions, self.submission, self.reference, self.remote = functions, submission, reference, remote

    def function(self, name: str):
        if self.remote is not None:
            worker, notebook, timeout = self.remote
            return RemoteFunction(worker, notebook, name, timeout)
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


@pytest.fixture(scope="session")
def attn2l(device):
    """The shipped 2-layer attention-only model (default processing), loaded once per session."""
    return shipped_model("attn2l", device)


@pytest.fixture(scope="session")
def grading_worker(request, device):
    worker = Worker(str(device))
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def hidden_cases(request) -> dict:
    path = request.config.getoption("--hidden-cases")
    return runpy.run_path(path)["HIDDEN_CASES"] if path else {}


@pytest.fixture
def learner(request) -> Learner:
    if hasattr(request, "param"):  # grading a folder: one notebook per parameter
        folder = Path(request.config.getoption("--submissions")).resolve()
        params = request.node.callspec.params
        item = GradedItem(learner_id(request.param, folder), params["chapter_name"], params["exercise_name"])
        request.node.user_properties.append(item_property(item))
        worker = request.getfixturevalue("grading_worker")
        notebook = LearnerText(item.learner, Path(request.param).read_bytes().decode("utf-8", errors="replace"))
        return Learner(remote=(worker, notebook, request.config.getoption("--exercise-timeout")))
    injected = request.config.stash.get(LEARNER_FUNCTIONS, None)
    if injected is not None:
        return Learner(functions=injected)
    if request.config.getoption("--submission"):
        return Learner(submission=_submission(request.config))
    return Learner(reference=importlib.import_module(f"solutions.{request.node.callspec.params['chapter_name']}"))


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
        report.user_properties.append(verdict_property(Verdict(failure.status, failure.message,
                                                               mistake=failure.mistake)))

