"""In-notebook checks: one short line under every exercise runs that exercise's checker.

The notebook does not carry a second copy of the checks: ``check(fn)`` (from :func:`make_check`) runs the very
:class:`utils.checkers.Exercise` (declared in ``checks/<chapter>.py``) that
``tests/test_exercises.py::test_exercise[<chapter>-<fn name>]`` runs, on the learner's function, in-process and
without a pytest session (a session costs ~0.8 s per check), and prints one clear line instead of a traceback.

Example (the setup cell of every chapter does this):
    >>> device, check = start_chapter("ch00_pytorch_einops")
    >>> check(split_heads)
    ✅ split_heads passed (4 cases)
"""

from __future__ import annotations

import os
from typing import Callable

from utils import checking
from utils.checking import Status, Verdict


def _exercise_name(fn: Callable) -> str | None:
    name = getattr(fn, "__name__", None)
    return name if callable(fn) and name and name != "<lambda>" else None


def run_check(fn: Callable, chapter: str, device: str | None = None, exercise: str | None = None) -> Verdict:
    """The verdict of the checker of ``exercise`` (default: ``fn.__name__``) in ``chapter`` on ``fn``.

    The chapter's checkers come from ``utils.chapters.checker``.
    """
    from utils.device import get_device

    name = exercise or _exercise_name(fn)
    if name is None:
        return Verdict(Status.WRONG_TYPE, f"check() needs the exercise function itself, e.g. check(split_heads), "
                       f"or the exercise's name: check(fn, exercise=\"split_heads\"); got {fn!r}")
    from checks.helpers import ModelNotShipped
    from utils.chapters import checker

    exercises = checker(chapter).exercises
    if name not in exercises:
        return Verdict(Status.MISSING, f"no exercise named {name!r} in {chapter} (exercises: {', '.join(exercises)}); "
                       f"if you renamed your function, name its exercise: check({name}, exercise=\"...\")")
    try:
        with checking.one_cpu_thread():  # building the cases too (check_cases runs on one thread anyway)
            return exercises[name].verdict(fn, get_device(device or os.environ.get("CS_DEVICE")))
    except ModelNotShipped as e:
        return Verdict(Status.ERROR, f"this check cannot run here: {e}")


def make_check(chapter: str, device: str | None = None) -> Callable[..., None]:
    """The ``check`` function of a chapter's notebook: ``check(fn)`` prints a pass or the failure."""
    def check(fn: Callable, exercise: str | None = None) -> None:
        """Run the checker of one exercise on your function ``fn`` and print one line: a pass, or what is wrong.

        The exercise is found by the function's name: ``check(split_heads)``. For a function under another name (you
        renamed it, or wrote a second version), name the exercise: ``check(split_heads_v2, exercise="split_heads")``.
        """
        verdict = run_check(fn, chapter, device, exercise=exercise)
        print(verdict.line(exercise or _exercise_name(fn) or "check"))
    return check


def start_chapter(chapter: str) -> tuple[object, Callable[..., None]]:
    """What every chapter's setup cell runs: pick the device (and say which), set up figures that render
    offline, and return ``(device, check)``."""
    from utils.device import describe_device, get_device
    from utils.plotting import setup_figures

    device = get_device()
    print(describe_device(device))
    setup_figures()
    return device, make_check(chapter)
