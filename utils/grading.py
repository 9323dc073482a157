"""Instructor grading: a folder of learner notebooks, the chapters' checkers, a gradebook.

The engine is one typed pipeline, with no test runner in it::

    results = grade(find_notebooks(folder), folder, GradeOptions(device="cpu", jobs=2))   # -> list[Result]
    write_gradebook(results, out, run_info(options))

``make grade`` (``python -m utils.grading DIR``) is that plus a progress bar and a summary; the pytest adapter
(``pytest tests --submissions DIR --gradebook OUT``, ``tests/conftest.py``) runs the same checkers and writes the same
files through :class:`PytestGradebook`.

How it stays trustworthy (README.md, "For instructors: grading a class"):

- Learner code never runs in the grading process: it runs in a sandboxed worker (``utils/worker.py``,
  ``utils/sandbox.py``) that sees read-only only the course code, the packages and the models, writes only a private
  ``/tmp``, has no network and no process of it outlives the call. Where no sandbox is available, grading says so in
  the summary and in ``run.json``; ``--require-sandbox`` refuses to grade.
- A verdict depends on the learner's notebook alone: each learner's code runs in a process of its own, forked from a
  worker that never ran learner code; inputs reach the worker before anything is marked as sent; outputs come back
  as plain data (``utils/wire.py``) and are compared with the reference here.
- Every call starts from the shipped model as loaded and under torch's default global state (``utils/isolation.py``):
  a function that changes the model is graded CHANGED_MODEL.
- Each exercise has a time limit; a call that overruns it is TIMEOUT, a process that dies is CRASHED, and the other
  exercises and learners are graded as usual.
- A learner function that uses the reference (``from solutions... import``) is graded 0 and flagged.

Outputs in ``OUT`` (default ``DIR/grades``): ``grades.csv`` (learner × exercise points, total, maximum),
``grades.json`` (status, points, message), ``feedback/<learner>.md``, ``junit.xml`` and ``run.json`` (how the class
was graded: sandbox, device, time limit). The same notebooks give byte-identical files whatever the order, the
number of jobs or the other learners in the folder.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing
import os
import runpy
import sys
import time
import tomllib
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable
from xml.sax.saxutils import escape, quoteattr

from utils.checking import Status, Verdict

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_EXAMPLES = ROOT / "examples" / "submissions" / "hostile"  # graded only inside the sandbox


# --------------------------------------------------------------------------------------------------------
# The pipeline's types
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GradeOptions:
    """How a class is graded (everything a grading process needs; picklable)."""

    device: str = "cpu"
    timeout: float = 30.0  # seconds per exercise
    points: dict = field(default_factory=dict)  # {chapter: {exercise: points}}; default 1
    hidden_cases: str | None = None  # a Python file defining HIDDEN_CASES = {chapter: {exercise: cases(device)}}
    jobs: int = 1
    sandbox: bool = True  # False: run learner code unsandboxed even where a sandbox is available (tests only)
    require_sandbox: bool = False
    dask: str | None = None  # a dask.distributed scheduler address, or "local"; None: this machine's processes


@dataclass(frozen=True)
class Result:
    """One (learner, exercise) of a gradebook: exactly one status; only PASS earns points."""

    learner: str
    chapter: str
    exercise: str
    status: Status
    message: str
    points: float
    max_points: float
    seconds: float = field(default=0.0, compare=False)  # for the summary; never written to the gradebook
    mistake: str | None = None  # the known mistake the learner's output matches, when one does

    @property
    def passed(self) -> bool:
        return self.status == Status.PASS


@dataclass(frozen=True)
class RunInfo:
    """How a class was graded, written to ``run.json`` and said in the summary."""

    sandbox: str
    sandboxed: bool
    device: str
    timeout: float
    complete: bool = True
    incomplete_learners: tuple = ()  # learners with INCOMPLETE exercises (an interrupted run)


def run_info(options: GradeOptions) -> RunInfo:
    from utils.sandbox import containment

    found = containment()
    used = found.available and options.sandbox
    text = found.describe() if used or not found.available else "NOT SANDBOXED: switched off for this run"
    return RunInfo(text, used, options.device, options.timeout)


# --------------------------------------------------------------------------------------------------------
# Finding submissions
# --------------------------------------------------------------------------------------------------------
def find_notebooks(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Every .ipynb below ``folder`` (recursively), sorted, skipping checkpoints and the output folder."""
    found = []
    for path in sorted(Path(folder).rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts or (exclude is not None and exclude in path.parents):
            continue
        found.append(path)
    return found


def safe_to_grade(notebooks: list[Path], info: RunInfo) -> tuple[list[Path], list[Path]]:
    """The notebooks this run may grade, and the course's own hostile examples it must skip: without a sandbox they
    would do to this machine what they try to do."""
    if info.sandboxed:
        return notebooks, []
    hostile = [p for p in notebooks if HOSTILE_EXAMPLES in Path(p).resolve().parents]
    return [p for p in notebooks if p not in hostile], hostile


def learner_id(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def declared_chapter(notebook: bytes) -> str | None:
    """The chapter a notebook's bytes declare in its metadata (read as JSON: no learner code runs), else None."""
    try:
        return json.loads(notebook).get("metadata", {}).get("circuit_school", {}).get("chapter")
    except Exception:
        return None


def notebook_chapter(path: Path) -> str | None:
    """:func:`declared_chapter` of the notebook at ``path`` (None when it cannot be read)."""
    try:
        return declared_chapter(Path(path).read_bytes())
    except OSError:
        return None


def load_points(path: Path | None) -> dict[str, dict[str, float]]:
    """Points per exercise from a TOML manifest (``[ch00_pytorch_einops] split_heads = 2``); default 1."""
    if path is None or not Path(path).exists():
        return {}
    return tomllib.loads(Path(path).read_text())


def graded_chapters(notebook: bytes) -> list[str]:
    """The chapters a notebook is graded on: the one its metadata declares, else every chapter (read as JSON: no
    learner code runs)."""
    from utils.chapters import chapter_names

    declared = declared_chapter(notebook)
    return [declared] if declared in chapter_names() else chapter_names()


def in_shard(learner: str, shard: int, shards: int) -> bool:
    """Whether ``learner`` belongs to shard ``shard`` of ``shards`` (1-based): a stable hash of the learner id, so every
    machine of a batch job agrees, and a learner is never split."""
    import hashlib

    return int(hashlib.sha256(learner.encode()).hexdigest(), 16) % shards == shard - 1


def parse_shard(text: str) -> tuple[int, int]:
    shard, _, shards = text.partition("/")
    k, n = int(shard), int(shards)
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 1 <= K <= N, got {text}")
    return k, n


def load_hidden_cases(path: str | None) -> dict:
    return runpy.run_path(path)["HIDDEN_CASES"] if path else {}


# --------------------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------------------
class Grader:
    """Grades learners one at a time in this process, with one sandboxed worker for their code."""

    def __init__(self, options: GradeOptions):
        import torch

        from utils.device import get_device
        from utils.worker import Worker

        self.options = options
        self.device = get_device(options.device)
        self.worker = Worker(options.device, sandbox=options.sandbox, require_sandbox=options.require_sandbox)
        self.worker.launch()  # it starts while this process builds the chapters' cases
        self.hidden = load_hidden_cases(options.hidden_cases)
        # The checker's side runs on one thread: the worker has the other core, and with --jobs N the graders share
        # the cores (two threads per process on busy cores make each small kernel wait: 10-100x slower).
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def close(self) -> None:
        self.worker.stop()
        import torch

        torch.set_num_threads(self.threads)

    def max_points(self, chapter: str, exercise: str) -> float:
        return float(self.options.points.get(chapter, {}).get(exercise, 1))

    def result(self, learner: str, chapter: str, exercise: str, verdict: Verdict, seconds: float = 0.0) -> Result:
        best = self.max_points(chapter, exercise)
        return Result(learner, chapter, exercise, verdict.status, verdict.message, best if verdict.passed else 0.0,
                      best, round(seconds, 3), verdict.mistake)

    def grade_learner(self, path: Path, learner: str, into: list[Result] | None = None) -> list[Result]:
        """Every exercise of the notebook's chapter (of every chapter when it declares none); each result is also
        appended to ``into`` as soon as it is known (what an interrupted run can still report)."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            data = f"{type(e).__name__}: {e}".encode()  # unreadable: graded as such below
        return self.grade_notebook(data, Path(path).name, learner, into)

    def grade_notebook(self, data: bytes, filename: str, learner: str,
                       into: list[Result] | None = None) -> list[Result]:
        """:meth:`grade_learner` on a notebook's bytes (what a Dask worker on another machine receives)."""
        from utils.chapters import chapter_names, checker
        from utils.extract import UnreadableNotebook, parse_notebook
        from utils.worker import LearnerText

        try:
            text = data.decode("utf-8")
            parse_notebook(text, filename)
        except (UnicodeDecodeError, UnreadableNotebook) as e:
            reason = str(e) if isinstance(e, UnreadableNotebook) else f"{filename}: {type(e).__name__}: {e}"
            return [self.result(learner, c, name, Verdict(Status.UNREADABLE, reason))
                    for c in chapter_names() for name in checker(c).exercises]
        notebook = LearnerText(learner, text)
        self.worker.expect(notebook)
        results = []
        for chapter in graded_chapters(data):
            for name, exercise in checker(chapter).exercises.items():
                results.append(self.grade_exercise(notebook, chapter, name, exercise))
                if into is not None:
                    into.append(results[-1])
        return results

    def grade_exercise(self, notebook, chapter: str, name: str, exercise) -> Result:
        from utils.worker import RemoteFunction

        start = time.perf_counter()
        fn = RemoteFunction(self.worker, notebook, name, self.options.timeout)
        try:
            verdict = exercise.verdict(fn, self.device, self.hidden.get(chapter, {}).get(name))
        except Exception as e:  # the grader's own failure: say so, and go on with the class
            verdict = Verdict(Status.ERROR, f"the grader could not check this exercise ({type(e).__name__}: {e}); "
                              "tell your instructor")
        return self.result(notebook.key, chapter, name, verdict, time.perf_counter() - start)


_GRADER: Grader | None = None  # one per Dask worker process (--dask)


def _process_grader(options: GradeOptions) -> Grader:
    global _GRADER
    if _GRADER is None:
        from multiprocessing import util

        _GRADER = Grader(options)
        util.Finalize(_GRADER, _GRADER.close, exitpriority=10)
    return _GRADER


def _die_with_parent() -> None:
    """A grading process (``--jobs``) dies with the process that started it, even one killed with SIGKILL: on Linux
    by the kernel (PR_SET_PDEATHSIG), elsewhere by a thread that watches the parent."""
    import ctypes
    import signal
    import threading

    parent = os.getppid()
    try:
        if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before the line above
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _grade_bytes(data: bytes, filename: str, learner: str, options: GradeOptions) -> list[Result]:
    """A Dask task: one learner, graded by this Dask worker's own grader and sandboxed worker."""
    return _process_grader(options).grade_notebook(data, filename, learner)


class GradingInterrupted(Exception):
    """Grading stopped (Ctrl-C, SIGTERM) before every learner was graded: the results known so far."""

    def __init__(self, results: list[Result]):
        super().__init__(f"interrupted after {len({r.learner for r in results})} learners")
        self.results = results


def grade(notebooks: Iterable[Path], folder: Path, options: GradeOptions = GradeOptions(),
          progress: bool = False, journal=None) -> list[Result]:
    """Grade every notebook (learner ids relative to ``folder``); results sorted by learner, chapter, exercise.

    With ``options.jobs`` > 1, learners are spread over that many grading processes, each with its own sandboxed
    worker; the results are the same as with one. With a ``journal`` (``utils/journal.py``), each learner's results
    are kept on disk as soon as they are known, and learners the journal already holds (same notebook, checkers and
    options) are not graded again. Raises :class:`GradingInterrupted` on Ctrl-C or SIGTERM.
    """
    from utils.journal import learner_key

    todo, results = [], []
    for path in (Path(p) for p in notebooks):
        learner = learner_id(path, folder)
        if journal:
            data = path.read_bytes()
            key = learner_key(data, graded_chapters(data), options)
        else:
            key = None
        kept = journal.get(learner, key) if journal else None
        if kept is None:
            todo.append((path, learner, key))
        else:
            results += kept
    bar = _progress(len(todo)) if progress and todo else None

    def done(learner: str, key: str | None, rows: list[Result]) -> None:
        nonlocal results
        results += rows
        if journal:
            journal.put(learner, key, rows)
        if bar is not None:
            bar.update(1)

    current: list[Result] = []
    try:
        with _terminate_as_interrupt():
            if options.dask and todo:
                _grade_with_dask(todo, options, done)
            elif options.jobs <= 1 or len(todo) <= 1:
                grader = Grader(options) if todo else None
                try:
                    for path, learner, key in todo:
                        current = []
                        done(learner, key, grader.grade_learner(path, learner, into=current))
                        current = []
                finally:
                    if grader is not None:
                        grader.close()
            else:
                _grade_in_pool(todo, options, done)
    except KeyboardInterrupt:
        raise GradingInterrupted(sorted(results + current, key=_order)) from None
    finally:
        if bar is not None:
            bar.close()
    return sorted(results, key=_order)


def _order(r: Result) -> tuple:
    return r.learner, r.chapter, r.exercise


class ChapterAffinity:
    """Which learner a grading process grades next (``--jobs``).

    A process's first learner of a chapter costs that chapter's set-up (the reference's outputs on every case, the
    models, the packages its notebooks import), so a process keeps to the chapters it has set up while any of their
    learners are left. Otherwise it starts the chapter no process has started with the most work left (learners ×
    ``weight``, e.g. the chapter's exercises: the longest first, so that what is left at the end is short); once every
    chapter has been started, it joins the one with the most work left per process on it.

    >>> lanes = ChapterAffinity([("a.ipynb", ("ch01",)), ("b.ipynb", ("ch01",)), ("c.ipynb", ("ch05",))])
    >>> lanes.next(0), lanes.next(1), lanes.next(0), lanes.next(1)
    ('a.ipynb', 'c.ipynb', 'b.ipynb', None)
    """

    def __init__(self, tasks: Iterable[tuple[object, tuple[str, ...]]],
                 weight: Callable[[tuple[str, ...]], float] = lambda chapters: 1.0):
        self.left: dict[tuple[str, ...], list] = defaultdict(list)  # chapters graded -> tasks, in the given order
        for task, chapters in tasks:
            self.left[chapters].append(task)
        self.weight = {group: weight(group) for group in self.left}
        self.warm: dict[int, set[tuple[str, ...]]] = defaultdict(set)  # process -> the chapter groups it set up

    def next(self, process: int):
        """The next task for ``process``, or None when every task has been handed out."""
        groups = [g for g, tasks in self.left.items() if tasks]
        if not groups:
            return None
        mine = [g for g in groups if g in self.warm[process]]
        if mine:
            group = max(mine, key=lambda g: len(self.left[g]) * self.weight[g])
        else:
            sharing = {g: sum(g in warm for warm in self.warm.values()) for g in groups}
            fresh = [g for g in groups if not sharing[g]]
            group = max(fresh or groups, key=lambda g: len(self.left[g]) * self.weight[g] / (sharing[g] + 1))
        self.warm[process].add(group)
        return self.left[group].pop(0)


def _exercises_in(chapters: tuple[str, ...]) -> float:
    """How much grading one learner of ``chapters`` costs, roughly: their number of exercises (read from the chapter
    sources; measured: 0.03-0.06 s per exercise per learner on every chapter)."""
    from utils.chapters import exercise_count, spec

    return float(sum(exercise_count(spec(c)) for c in chapters))


def _lane(connection, options: GradeOptions) -> None:
    """One grading process of ``--jobs``: grades the learners the parent sends, one at a time, until it sends None."""
    import signal

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the lanes
    grader = Grader(options)
    try:
        while (task := connection.recv()) is not None:
            path, learner = task
            try:
                connection.send(("done", grader.grade_learner(path, learner)))
            except Exception:
                import traceback

                connection.send(("failed", traceback.format_exc()))
    finally:
        grader.close()


def _grade_in_pool(todo: list, options: GradeOptions, done) -> None:
    """``todo`` spread over ``options.jobs`` grading processes, each with its own sandboxed worker, by
    :class:`ChapterAffinity`."""
    from multiprocessing.connection import wait

    # On Linux, grading on the CPU, a grading process is forked: it starts with this process's imports (torch,
    # TransformerLens) instead of importing them again (~3 s each). It runs torch on one thread (Grader), so it never
    # uses a thread pool this process may have started, and learner code runs in a worker it execs. Otherwise each one
    # is spawned: CUDA cannot be used in a forked process, and fork is unsafe with macOS's system libraries.
    fork = sys.platform == "linux" and str(options.device).split(":")[0] == "cpu"
    context = multiprocessing.get_context("fork" if fork else "spawn")
    lanes = ChapterAffinity((((path, learner, key), tuple(graded_chapters(_read_or_empty(path))))
                             for path, learner, key in todo), weight=_exercises_in)
    processes, busy = [], {}
    try:
        for i in range(min(options.jobs, len(todo))):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_lane, args=(child_end, options), daemon=True)
            process.start()
            child_end.close()
            processes.append((process, parent_end))
            busy[i] = _hand_out(lanes, i, parent_end)
        while any(task is not None for task in busy.values()):
            ends = {processes[i][1]: i for i, task in busy.items() if task is not None}
            for end in wait(list(ends)):
                i = ends[end]
                try:
                    kind, payload = end.recv()
                except EOFError:
                    raise RuntimeError(f"a grading process died (exit code {processes[i][0].exitcode}) while "
                                       f"grading {busy[i][1]}") from None
                if kind == "failed":
                    raise RuntimeError(f"grading {busy[i][1]} failed in a grading process:\n{payload}")
                done(busy[i][1], busy[i][2], payload)
                busy[i] = _hand_out(lanes, i, end)
    except BaseException:
        for process, _ in processes:  # their workers die with them
            process.kill()
        raise
    for process, _ in processes:
        process.join()


def _hand_out(lanes: ChapterAffinity, process: int, connection):
    """Send ``process`` its next task (None: there is none left, and the process stops); return that task."""
    task = lanes.next(process)
    connection.send(None if task is None else task[:2])
    return task


def _read_or_empty(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def _dask_task() -> Callable[..., list[Result]]:
    """:func:`_grade_bytes` of the module ``utils.grading``, which a Dask worker imports. Run as ``python -m
    utils.grading``, this file is ``__main__``, whose functions Dask ships by value, each task with globals of its
    own: every learner would get a new grader and a new sandboxed worker."""
    from utils import grading

    return grading._grade_bytes


def _grade_with_dask(todo: list, options: GradeOptions, done) -> None:
    """Learners as tasks of a ``dask.distributed`` cluster (``options.dask``: its scheduler's address, or ``local``
    for a ``LocalCluster`` of ``options.jobs`` worker processes). Each task carries the notebook's bytes; each Dask
    worker grades with its own grader and sandboxed worker, from its own checkout of the course."""
    from distributed import Client, LocalCluster, as_completed

    task = _dask_task()
    cluster = (LocalCluster(n_workers=options.jobs, threads_per_worker=1, processes=True, dashboard_address=None)
               if options.dask == "local" else None)
    client = Client(cluster if cluster is not None else options.dask)
    try:
        futures = {client.submit(task, path.read_bytes(), path.name, learner, options, pure=False):
                   (learner, key) for path, learner, key in todo}
        for future in as_completed(futures):
            done(*futures[future], future.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class _terminate_as_interrupt:
    """SIGTERM (a scheduler's stop, ``kill``) interrupts grading as Ctrl-C does, in the main thread."""

    def __enter__(self):
        import signal
        import threading

        self.saved = None
        if threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGTERM, self._interrupt)
        return self

    @staticmethod
    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        import signal

        if self.saved is not None:
            signal.signal(signal.SIGTERM, self.saved)
        return False


def incomplete(results: list[Result], notebooks: Iterable[Path], folder: Path, options: GradeOptions) -> list[Result]:
    """``results`` plus an INCOMPLETE row, worth 0 of its full points, for every exercise not graded."""
    from utils.chapters import checker

    have = {(r.learner, r.chapter, r.exercise) for r in results}
    rows = list(results)
    for path in notebooks:
        learner = learner_id(Path(path), folder)
        for chapter in graded_chapters(Path(path).read_bytes()):
            for exercise in checker(chapter).exercises:
                if (learner, chapter, exercise) not in have:
                    best = float(options.points.get(chapter, {}).get(exercise, 1))
                    rows.append(Result(learner, chapter, exercise, Status.INCOMPLETE,
                                       "not graded: the grading run was interrupted (run the same command again to "
                                       "finish)", 0.0, best))
    return sorted(rows, key=_order)


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="grading", unit="notebook", file=sys.stderr)


# --------------------------------------------------------------------------------------------------------
# The gradebook
# --------------------------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:g}"


def _by_learner(results: Iterable[Result]) -> dict[str, list[Result]]:
    grouped: dict[str, list[Result]] = defaultdict(list)
    for r in sorted(results, key=lambda r: (r.learner, r.chapter, r.exercise)):
        grouped[r.learner].append(r)
    return dict(sorted(grouped.items()))


def grades_csv(results: list[Result]) -> str:
    columns = sorted({(r.chapter, r.exercise) for r in results})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["learner", *[f"{c}.{e}" for c, e in columns], "total", "max"])
    for learner, rows in _by_learner(results).items():
        cells = {(r.chapter, r.exercise): r for r in rows}
        points = [_fmt(cells[k].points) if k in cells else "" for k in columns]
        writer.writerow([learner, *points, _fmt(sum(r.points for r in rows)), _fmt(sum(r.max_points for r in rows))])
    return buffer.getvalue()


def grades_json(results: list[Result]) -> str:
    return json.dumps(
        {learner: {f"{r.chapter}.{r.exercise}": {"status": r.status.value, "points": r.points,
                                                  "max_points": r.max_points, "message": r.message,
                                                  "mistake": r.mistake} for r in rows}
         for learner, rows in _by_learner(results).items()}, indent=2, ensure_ascii=False) + "\n"


def junit_xml(results: list[Result]) -> str:
    """JUnit XML (one test case per learner × exercise) for CI-based courses; no timings, so it is reproducible."""
    failures = sum(not r.passed for r in results)
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<testsuites>",
             f'<testsuite name="circuit-school-grading" tests="{len(results)}" failures="{failures}" errors="0">']
    for r in results:
        case = f'<testcase classname={quoteattr(r.learner)} name={quoteattr(f"{r.chapter}.{r.exercise}")}'
        if r.passed:
            lines.append(case + " />")
        else:
            message = quoteattr(f"{r.status.value}: {r.message}")
            lines.append(f"{case}><failure message={message} type={quoteattr(r.status.value)}>"
                         f"{escape(r.message)}</failure></testcase>")
    lines += ["</testsuite>", "</testsuites>", ""]
    return "\n".join(lines)


def feedback_markdown(learner: str, results: list[Result]) -> str:
    passed = [r for r in results if r.passed]
    lines = [f"# Feedback for {learner}", "",
             f"{len(passed)} of {len(results)} exercises passed, "
             f"{_fmt(sum(r.points for r in results))} of {_fmt(sum(r.max_points for r in results))} points.", ""]
    for chapter in sorted({r.chapter for r in results}):
        lines += [f"## {chapter}", ""]
        for r in results:
            if r.chapter == chapter:
                lines.append("- " + Verdict(r.status, r.message).line(r.exercise).replace("\n", "\n  "))
        lines.append("")
    return "\n".join(lines)


def write_gradebook(results: list[Result], out: Path, info: RunInfo) -> None:
    """Write grades.csv, grades.json, feedback/, junit.xml and run.json to ``out``, each file whole or not at all (a
    crash while writing never leaves a truncated file); feedback of learners no longer graded is removed."""
    from utils.journal import atomic_write

    out = Path(out)
    incomplete = tuple(sorted({r.learner for r in results if r.status == Status.INCOMPLETE}))
    info = replace(info, complete=not incomplete, incomplete_learners=incomplete)
    atomic_write(out / "grades.csv", grades_csv(results))
    _fault_point("gradebook")
    atomic_write(out / "grades.json", grades_json(results))
    atomic_write(out / "junit.xml", junit_xml(results))
    atomic_write(out / "run.json", json.dumps(asdict(info), indent=2) + "\n")
    written = set()
    for learner, rows in _by_learner(results).items():
        path = out / "feedback" / f"{learner}.md"
        atomic_write(path, feedback_markdown(learner, rows))
        written.add(path)
    for stale in (out / "feedback").rglob("*.md") if (out / "feedback").is_dir() else []:
        if stale not in written:
            stale.unlink()
    from utils.class_report import write_class_report

    write_class_report(results, out)


def _fault_point(name: str) -> None:
    """Fault injection for the resume tests: ``CS_GRADING_KILL_AT=<name>`` kills this process here (SIGKILL)."""
    if os.environ.get("CS_GRADING_KILL_AT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def summary(results: list[Result], info: RunInfo | None = None) -> str:
    by_learner = _by_learner(results)
    width = max([len(k) for k in by_learner] + [7])
    lines = [f"{'learner':<{width}}  {'passed':>8}  {'points':>9}  problems"]
    for learner, rows in by_learner.items():
        problems: dict[str, int] = defaultdict(int)
        for r in rows:
            if not r.passed:
                problems[r.status.value] += 1
        text = ", ".join(f"{n} {s}" for s, n in sorted(problems.items())) or "-"
        passed = sum(r.passed for r in rows)
        points = f"{_fmt(sum(r.points for r in rows))}/{_fmt(sum(r.max_points for r in rows))}"
        lines.append(f"{learner:<{width}}  {passed:>3} / {len(rows):<2}  {points:>9}  {text}")
    if info is not None:
        lines.append(("" if info.sandboxed else "\n!!! ") + f"Learner code: {info.sandbox}")
    incomplete = sorted({r.learner for r in results if r.status == Status.INCOMPLETE})
    if incomplete:
        lines.append(f"\n!!! INCOMPLETE: grading was interrupted; {len(incomplete)} learner(s) not fully graded "
                     f"({', '.join(incomplete[:10])}{', ...' if len(incomplete) > 10 else ''}): their rows keep "
                     "their full maximum. Run the same command again to finish.")
    return "\n".join(lines)


class PytestGradebook:
    """The pytest adapter's gradebook (``pytest tests --submissions DIR --gradebook OUT``): a pytest plugin that turns
    the checkers' reports into :class:`Result` and writes the same files as :func:`write_gradebook`."""

    def __init__(self, out_dir: Path, points: dict[str, dict[str, float]], info: RunInfo):
        self.out_dir, self.points, self.info, self.results = Path(out_dir), points, info, []

    def pytest_runtest_logreport(self, report):
        from utils.reports import graded_item, verdict_of

        item = graded_item(report)
        if item is None or not (report.when == "call" or report.failed or report.skipped):
            return
        verdict = verdict_of(report)
        best = float(self.points.get(item.chapter, {}).get(item.exercise, 1))
        self.results.append(Result(item.learner, item.chapter, item.exercise, verdict.status, verdict.message,
                                   best if verdict.passed else 0.0, best, round(report.duration, 3)))

    def pytest_sessionfinish(self, session):
        if self.results:
            write_gradebook(self.results, self.out_dir, self.info)


# --------------------------------------------------------------------------------------------------------
# Command line: make grade SUBMISSIONS=dir
# --------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:  # python -m utils.grading report OUT: the class report of an existing gradebook
        from utils import class_report

        return class_report.main(argv[1:])
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    parser = argparse.ArgumentParser(description="Grade a folder of learner notebooks into a gradebook.")
    parser.add_argument("submissions", nargs="?", default=str(ROOT / "examples" / "submissions"))
    parser.add_argument("--out", default=None, help="output folder (default: SUBMISSIONS/grades)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=30, help="seconds per exercise")
    parser.add_argument("--points", default=None, help="TOML manifest of points per exercise")
    parser.add_argument("--hidden-cases", default=None, help="a Python file with extra, hidden cases")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="grading processes, each with its own sandboxed worker (default: the cores)")
    parser.add_argument("--require-sandbox", action="store_true",
                        help="refuse to grade where learner code cannot be sandboxed")
    parser.add_argument("--shard", type=parse_shard, default=None, metavar="K/N",
                        help="grade only shard K of N (by learner); merge the shards' OUT folders with `merge`")
    parser.add_argument("--dask", default=None, metavar="ADDRESS",
                        help="grade on a dask.distributed cluster (its scheduler's address, or `local`)")
    parser.add_argument("--fresh", action="store_true",
                        help="grade every learner again (default: reuse OUT/.journal for the unchanged learners)")
    args = parser.parse_args(argv)
    folder = Path(args.submissions).resolve()
    out = Path(args.out).resolve() if args.out else folder / "grades"
    options = GradeOptions(args.device, args.timeout, load_points(args.points),
                           str(Path(args.hidden_cases).resolve()) if args.hidden_cases else None, max(1, args.jobs),
                           require_sandbox=args.require_sandbox, dask=args.dask)
    info = run_info(options)
    if args.require_sandbox and not info.sandboxed:
        print(f"refusing to grade: {info.sandbox}", file=sys.stderr)
        return 2
    notebooks = find_notebooks(folder, exclude=out)
    if args.shard is not None:
        notebooks = [p for p in notebooks if in_shard(learner_id(p, folder), *args.shard)]
    if not notebooks:
        print(f"no notebooks found in {folder}")
        return 1
    if not info.sandboxed:
        print(f"!!! {info.sandbox}", file=sys.stderr)
        notebooks, hostile = safe_to_grade(notebooks, info)
        if hostile:
            print(f"!!! skipped the course's {len(hostile)} hostile examples ({HOSTILE_EXAMPLES.relative_to(ROOT)}/): "
                  "without a sandbox they would do to this machine what they try to do", file=sys.stderr)
    from utils.journal import Journal

    start = time.perf_counter()
    journal = Journal(out, fresh=args.fresh)
    try:
        results, code = grade(notebooks, folder, options, progress=True, journal=journal), 0
    except GradingInterrupted as stop:
        results, code = incomplete(stop.results, notebooks, folder, options), 130
    write_gradebook(results, out, info)
    print(summary(results, info))
    from utils.class_report import top_lines

    if lines := top_lines(results):
        print("\nWhat the class got wrong most often:\n  " + "\n  ".join(lines))
    reused = f", {len(journal.reused)} unchanged since the last run and not regraded" if journal.reused else ""
    print(f"\n{len(notebooks)} notebooks graded in {time.perf_counter() - start:.1f} s ({options.jobs} job"
          f"{'s' if options.jobs > 1 else ''}{reused}); gradebook: {out / 'grades.csv'}, {out / 'grades.json'}, "
          f"{out / 'feedback'}/, class report: {out / 'report.html'}")
    return code


def merge_main(argv: list[str]) -> int:
    """``python -m utils.grading merge OUT_1 ... OUT_N --out OUT``: the gradebook of the whole class from its shards'
    gradebooks (the same files, byte for byte, as one run over the class)."""
    parser = argparse.ArgumentParser(prog="python -m utils.grading merge", description=merge_main.__doc__)
    parser.add_argument("shards", nargs="+", help="the OUT folders of the shards")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from utils.class_report import results_from_grades_json

    results: list[Result] = []
    infos = []
    for folder in map(Path, args.shards):
        results += results_from_grades_json((folder / "grades.json").read_text())
        run = json.loads((folder / "run.json").read_text())
        infos.append(RunInfo(run["sandbox"], run["sandboxed"], run["device"], run["timeout"]))
    if len(set(infos)) > 1:
        print(f"the shards were graded differently: {sorted(set(infos), key=str)}", file=sys.stderr)
        return 2
    seen: set[tuple] = set()
    twice = sorted({r.learner for r in results if _order(r) in seen or seen.add(_order(r))})
    if twice:
        print(f"learners graded in more than one shard: {twice[:10]}", file=sys.stderr)
        return 2
    results.sort(key=_order)
    write_gradebook(results, Path(args.out), infos[0])
    print(summary(results, infos[0]))
    return 0 if all(r.status != Status.INCOMPLETE for r in results) else 130


if __name__ == "__main__":
    sys.exit(main())
