"""The course's chapters, and where each chapter's checkers are found.

A chapter is named after its source, ``chapters/src/00_pytorch_einops.py`` -> ``ch00_pytorch_einops``; its checkers
are the :class:`utils.checkers.Chapter` declared by its checker module. This is the one place that finds that
module: the grader (``utils/grading.py``) and the in-notebook ``check`` (``utils/notebook.py``) ask here.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

from utils.checkers import Chapter

ROOT = Path(__file__).resolve().parents[1]


def chapter_names() -> list[str]:
    """Every chapter with a source, in order: ``["ch00_pytorch_einops", "ch01_tokenization", ...]``."""
    return [f"ch{src.stem}" for src in sorted((ROOT / "chapters" / "src").glob("[0-9][0-9]_*.py"))]


@functools.lru_cache(maxsize=None)
def checker(name: str) -> Chapter:
    """The checkers of chapter ``name`` (imports its checker module once per process)."""
    if name not in chapter_names():
        raise KeyError(f"no chapter named {name!r} (chapters: {', '.join(chapter_names())})")
    return importlib.import_module(f"tests.test_{name}").chapter
