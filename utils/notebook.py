"""In-notebook checks: one short line under every exercise runs that exercise's pytest checker.

The notebook does not carry a second copy of the checks: :func:`make_check` returns ``check(fn)``, which runs
``tests/test_<chapter>.py::test_exercise[<fn name>]`` in-process with pytest, with the learner's function
injected in place of the reference, and prints one clear line instead of a traceback.

Example (the setup cell of every chapter does this):
    >>> check = make_check("ch00_pytorch_einops")
    >>> check(split_heads)
    ✅ split_heads passed (4 cases)
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEARNER_FUNCTIONS = pytest.StashKey[dict]()  # name -> function, read by tests/conftest.py's `learner` fixture


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


def run_check(fn: Callable, chapter: str, device: str | None = None) -> tuple[bool, str]:
    """Run the checker of ``fn.__name__`` in ``chapter`` on ``fn``; return (passed, one-line summary)."""
    name = getattr(fn, "__name__", None)
    if not callable(fn) or not name or name == "<lambda>":
        return False, f"❌ check() needs the exercise function itself, e.g. check(split_heads); got {fn!r}"
    test_file = ROOT / "tests" / f"test_{chapter}.py"
    plugin = _InjectAndCollect({name: fn})
    args = [f"{test_file}::test_exercise[{name}]", f"--rootdir={ROOT}", "-q", "-p", "no:cacheprovider",
            "-W", "ignore::DeprecationWarning"]
    device = device or os.environ.get("CS_DEVICE")
    if device:
        args += ["--device", device]
    pytest_output = io.StringIO()  # the one-line summary below replaces pytest's own report
    with contextlib.redirect_stdout(pytest_output), contextlib.redirect_stderr(pytest_output):
        exit_code = pytest.main(args, plugins=[plugin])
    if not plugin.reports:
        detail = pytest_output.getvalue().strip().splitlines()[-1:] or [f"pytest exit code {int(exit_code)}"]
        return False, f"❌ no checker named {name!r} in {test_file.name} ({detail[0]})"
    report = plugin.reports[-1]
    status, message = report_outcome(report)
    return report.passed, result_line(name, status, message, dict(report.user_properties).get("cases", "?"))


def report_outcome(report: pytest.TestReport) -> tuple[str, str]:
    """(status, learner-facing message) of a checker's pytest report (see tests/conftest.py)."""
    status = dict(report.user_properties).get("status") or ("PASS" if report.passed else "ERROR")
    message = "" if report.passed else str(report.longrepr).strip()
    return status, message.removeprefix(f"{status}: ")


def result_line(exercise: str, status: str, message: str, cases=None) -> str:
    """The one-line verdict, in the same words in notebooks (check cells) and in grading feedback."""
    if status == "PASS":
        return f"✅ {exercise} passed" + (f" ({cases} cases)" if cases is not None else "")
    return f"❌ {exercise} — {status}: {message}"


def make_check(chapter: str, device: str | None = None) -> Callable[[Callable], None]:
    """The ``check`` function of a chapter's notebook: ``check(fn)`` prints a pass or the failure."""
    def check(fn: Callable) -> None:
        print(run_check(fn, chapter, device)[1])
    return check


def start_chapter(chapter: str) -> tuple[object, Callable[[Callable], None]]:
    """What every chapter's setup cell runs: pick the device (and say which), set up figures that render
    offline, and return ``(device, check)``."""
    from utils.device import describe_device, get_device
    from utils.plotting import setup_figures

    device = get_device()
    print(describe_device(device))
    setup_figures()
    return device, make_check(chapter)
