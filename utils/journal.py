"""Grading progress that survives a kill: a journal of graded learners, and files written whole or not at all.

Each learner's results are written to ``OUT/.journal/`` as soon as that learner is graded (one file per learner,
written to a temporary name, flushed, fsynced and renamed into place), under a **key** that says what the results
depend on: the notebook's bytes, the version of the checkers of its chapter(s) (their checker and mutant modules,
the reference solutions, the checker engine and the shipped models), the hidden cases, the time limit, the device
and the points. Running the same command again reuses every entry whose key still matches and grades only the
rest, so a run killed at any moment (SIGKILL, a power cut, the OOM killer) loses at most the learners in progress,
and a second run after one notebook changed regrades that learner only. ``--fresh`` starts over.

Example:
    >>> journal = Journal(out)
    >>> key = learner_key(notebook_bytes, ["ch00_pytorch_einops"], options)
    >>> journal.get("alice", key)        # None: not graded yet (or graded under another key)
    >>> journal.put("alice", key, results)
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from utils.checking import Status

if TYPE_CHECKING:
    from utils.grading import GradeOptions, Result

ROOT = Path(__file__).resolve().parents[1]
JOURNAL = ".journal"
ENGINE_FILES = ("checking.py", "checkers.py", "wire.py", "worker.py", "isolation.py", "extract.py", "sandbox.py",
                "models.py", "data.py")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary file in the same folder, fsynced, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # as an ordinary open() would create it (mkstemp makes it private)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _hash_files(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def checker_version(chapter: str) -> str:
    """A hash of everything a chapter's verdicts depend on besides the notebook: its checker and mutant modules, its
    reference solutions, the checker engine and the shipped models."""
    files = [ROOT / "checks" / f"{chapter}.py", ROOT / "checks" / "mutants" / f"{chapter}.py",
             ROOT / "checks" / "helpers.py", ROOT / "solutions" / f"{chapter}.py",
             *(ROOT / "utils" / name for name in ENGINE_FILES)]
    return _hash_files(files) + _models_version()


@functools.lru_cache(maxsize=1)
def _models_version() -> str:
    return _hash_files(p for p in (ROOT / "models").rglob("*") if p.is_file())[:16]


def learner_key(notebook: bytes, chapters: list[str], options: "GradeOptions") -> str:
    """What a learner's results depend on (see the module docstring), as one hash."""
    hidden = Path(options.hidden_cases).read_bytes() if options.hidden_cases else b""
    parts = {
        "notebook": hashlib.sha256(notebook).hexdigest(),
        "checkers": {c: checker_version(c) for c in sorted(chapters)},
        "hidden": hashlib.sha256(hidden).hexdigest(),
        "points": {c: options.points.get(c, {}) for c in sorted(chapters)},
        "timeout": options.timeout, "device": options.device,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _entry_name(learner: str) -> str:
    return hashlib.sha256(learner.encode()).hexdigest()[:32] + ".json"


class Journal:
    """The graded learners of one output folder (see the module docstring)."""

    def __init__(self, out: Path, fresh: bool = False):
        self.folder = Path(out) / JOURNAL
        if fresh and self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.reused: list[str] = []  # learners whose results came from the journal

    def get(self, learner: str, key: str) -> list["Result"] | None:
        """The learner's results recorded under ``key``, else None."""
        from utils.grading import Result

        path = self.folder / _entry_name(learner)
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if entry.get("learner") != learner or entry.get("key") != key:
            return None
        self.reused.append(learner)
        return [Result(**{**r, "status": Status(r["status"])}) for r in entry["results"]]

    def put(self, learner: str, key: str, results: list["Result"]) -> None:
        rows = [{"learner": r.learner, "chapter": r.chapter, "exercise": r.exercise, "status": r.status.value,
                 "message": r.message, "points": r.points, "max_points": r.max_points, "seconds": r.seconds,
                 "mistake": r.mistake} for r in results]
        atomic_write(self.folder / _entry_name(learner),
                     json.dumps({"learner": learner, "key": key, "results": rows}, ensure_ascii=False))
