"""Instructor grading: the same pytest checkers, run over a folder of learner notebooks, into a gradebook.

How it stays robust (README.md, "For instructors: grading a class"):

- Every call starts from the shipped model as loaded, under torch's default global state: a function that changes
  the model (weights, ``cfg``, tokenizer settings, hooks, train mode) is graded CHANGED_MODEL and the model is
  restored before anything else runs (``utils/isolation.py``), so no learner can change another's grade.
- Learner code never runs in the grading process. A :class:`Worker` (a process started with ``spawn``, since
  CUDA cannot follow ``fork``) extracts the learner's definitions (``utils.extract``) and calls them; the
  checker in the parent receives only the pickled outputs and compares them with the reference, so learner
  code cannot patch the comparison, and its arguments are copies.
- Each exercise has a time limit; a worker that overruns it is killed (TIMEOUT) and one that dies (``os._exit``,
  a segfault, running out of its memory limit) is replaced (CRASHED). The other exercises and the other
  learners are graded as usual.
- A learner function that uses the reference (``from solutions... import``) is graded 0 and flagged.

pytest-native use: ``pytest tests --submissions DIR [--gradebook OUT] [--junitxml OUT/junit.xml]``.
The command ``python -m utils.grading DIR`` (``make grade``) does the same with a progress bar and a summary.
Outputs in ``OUT`` (default ``DIR/grades``): ``grades.csv`` (learner × exercise points, total),
``grades.json`` (status, points, message, seconds), ``feedback/<learner>.md`` and ``junit.xml``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing
import os
import pickle
import signal
import sys
import time
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from utils.checking import CheckFailure, Status, Verdict, call_learner
from utils.reports import graded_item, verdict_of

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MEMORY_LIMIT_GB = 6.0


# --------------------------------------------------------------------------------------------------------
# Sending models, caches and hook points to the worker by reference
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRef:
    """A shipped model by name and processing options: the worker loads (and caches) its own copy."""

    name: str
    processing: tuple
    sae_transformer: bool = False


@dataclass(frozen=True)
class SAERef:
    """An SAE loaded with ``utils.models.load_sae``, by name."""

    name: str


@dataclass
class SAEState:
    """An SAE that ``load_sae`` did not load (e.g. one a checker built with random weights): its config and weights.
    (An SAE cannot be pickled as it is: SAE-Lens keeps lambdas on it.)"""

    cfg: dict
    state_dict: dict


@dataclass(frozen=True)
class HookRef:
    model: ModelRef
    name: str


@dataclass
class CacheRef:
    tensors: dict
    model: ModelRef
    has_batch_dim: bool


def _model_ref(model) -> ModelRef:
    spec = getattr(model, "cs_spec", None)
    if spec is None:
        raise RuntimeError("only models loaded with utils.models.load_model can be sent to the grading worker")
    return ModelRef(spec.name, tuple(sorted(spec.processing.items())), spec.sae_transformer)


@dataclass(frozen=True)
class Store:
    """A large input sent once: the worker keeps ``value`` under ``token`` and hands each call a fresh copy."""

    token: int
    value: Any


@dataclass(frozen=True)
class Stored:
    """An input the worker already keeps (see :class:`Store`)."""

    token: int


class SentOnce:
    """The parent's side of :class:`Store`: which large inputs (tensors, caches) this worker already has.

    Checkers build their cases once per session (``tests/framework.py``), so a class of learners passes the same
    tensor and cache objects again and again: each is pickled to the worker once instead of once per call.
    """

    MIN_ELEMENTS = 4096

    def __init__(self):
        self.tokens: dict[int, tuple[Any, int]] = {}  # id(object) -> (object, token); the object keeps the id taken

    def wrap(self, value: Any, wire: Callable[[], Any]) -> Any:
        known = self.tokens.get(id(value))
        if known is not None and known[0] is value:
            return Stored(known[1])
        token = len(self.tokens) + 1
        self.tokens[id(value)] = (value, token)
        return Store(token, wire())


def to_wire(value: Any, sent: SentOnce | None = None) -> Any:
    """Replace models, hook points and caches in call arguments by references the worker can resolve; with
    ``sent``, large tensors and caches the worker already has by a :class:`Stored` token."""
    import torch

    if isinstance(value, torch.Tensor):
        if sent is None:
            return value.detach()  # a non-leaf tensor that requires grad cannot be pickled
        # Tensors cross the pipe in shared memory (torch's pickling for multiprocessing): send a copy, or learner
        # code could change the checker's own inputs.
        if value.numel() >= SentOnce.MIN_ELEMENTS:
            return sent.wrap(value, lambda: value.detach().clone())
        return value.detach().clone()
    if type(value).__name__ == "FactoredMatrix":
        return type(value)(value.A.detach().clone(), value.B.detach().clone())
    if hasattr(value, "cache_dict") and hasattr(value, "model"):  # ActivationCache
        def cache_ref():
            return CacheRef({k: v.detach().clone() for k, v in value.cache_dict.items()}, _model_ref(value.model),
                            value.has_batch_dim)
        return sent.wrap(value, cache_ref) if sent is not None else cache_ref()
    if isinstance(value, torch.nn.Module) and hasattr(value, "hook_dict") and hasattr(value, "cfg") and hasattr(
            value, "blocks"):  # HookedTransformer
        return _model_ref(value)
    if isinstance(value, torch.nn.Module) and hasattr(value, "cs_name"):  # an SAE from load_sae
        return SAERef(value.cs_name)
    if isinstance(value, torch.nn.Module) and type(value).__module__.startswith("sae_lens.saes."):  # any other SAE
        return SAEState(value.cfg.to_dict(), {k: v.detach() for k, v in value.state_dict().items()})
    if isinstance(value, torch.nn.Module) and type(value).__name__ == "HookPoint":
        from utils.isolation import owner_of

        model = owner_of(value)
        if model is None:
            raise RuntimeError(f"hook point {value.name} does not belong to a model loaded with load_model")
        return HookRef(_model_ref(model), value.name)
    if isinstance(value, (list, tuple)):
        return type(value)(to_wire(v, sent) for v in value)
    if isinstance(value, dict):
        return {k: to_wire(v, sent) for k, v in value.items()}
    return value


def _fresh_copy(value: Any) -> Any:
    """A copy of a stored input for one call (learner code may change what it is given)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, CacheRef):
        return CacheRef({k: v.clone() for k, v in value.tensors.items()}, value.model, value.has_batch_dim)
    return value


def from_wire(value: Any, load: Callable[[ModelRef], Any], store: dict[int, Any] | None = None) -> Any:
    """The worker's side of :func:`to_wire`: resolve references with ``load`` (which caches models) and ``store``
    (the large inputs sent once)."""
    if isinstance(value, Store):
        store[value.token] = value.value
        return from_wire(_fresh_copy(value.value), load, store)
    if isinstance(value, Stored):
        return from_wire(_fresh_copy(store[value.token]), load, store)
    if isinstance(value, ModelRef):
        return load(value)
    if isinstance(value, SAERef):
        from utils.models import cached_sae

        return cached_sae(value.name, getattr(load, "device", None))
    if isinstance(value, SAEState):
        from sae_lens import SAE

        sae = SAE.from_dict({**value.cfg, "device": str(next(iter(value.state_dict.values())).device)})
        sae.load_state_dict(value.state_dict)
        return sae.eval()
    if isinstance(value, HookRef):
        return load(value.model).hook_dict[value.name]
    if isinstance(value, CacheRef):
        from transformer_lens import ActivationCache

        return ActivationCache(value.tensors, load(value.model), has_batch_dim=value.has_batch_dim)
    if isinstance(value, (list, tuple)):
        return type(value)(from_wire(v, load, store) for v in value)
    if isinstance(value, dict):
        return {k: from_wire(v, load, store) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------------------
# The worker process
# --------------------------------------------------------------------------------------------------------
def _limit_memory(gigabytes: float) -> None:
    """Cap the worker's address space where the platform allows (Linux, CPU only: CUDA maps huge ranges)."""
    try:
        import resource

        limit = int(gigabytes * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass


def _uses_reference(submission, fn) -> bool:
    """True if ``fn`` is, or calls a name bound to, the reference solutions."""
    if getattr(fn, "__module__", "").startswith("solutions"):
        return True
    code = getattr(fn, "__code__", None)
    return bool(code and set(code.co_names) & submission.reference_names)


class Reply(NamedTuple):
    """The worker's answer to one call: the output (in wire form) or a failure."""

    ok: bool
    value: Any = None
    status: Status | None = None
    message: str = ""

    @classmethod
    def failed(cls, status: Status, message: str) -> "Reply":
        return cls(False, None, status, message)


def _worker_main(conn, device: str, memory_gb: float | None) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["CS_DEVICE"] = device
    sys.path.insert(0, str(ROOT))
    if memory_gb and not device.startswith("cuda"):
        _limit_memory(memory_gb)
    import torch  # import before signalling ready, so start-up is not counted in time limits

    from utils import isolation

    if device == "cpu":
        isolation.set_baseline_threads(1)  # learner code is small tensors: threads only fight the grader for cores
        torch.set_num_threads(1)

    from utils.extract import UnreadableNotebook, load_submission
    from utils.models import cached_model

    submissions: dict[str, Any] = {}
    store: dict[int, Any] = {}  # large inputs sent once (Store / Stored)

    def load(ref: ModelRef):
        return cached_model(ref.name, device, sae_transformer=ref.sae_transformer, **dict(ref.processing))

    load.device = device

    conn.send(("ready",))
    while True:
        request = conn.recv()
        if request is None:
            return
        path, name, args, kwargs = request
        try:
            if path not in submissions:
                try:
                    submissions[path] = load_submission(path)
                except UnreadableNotebook as e:
                    submissions[path] = CheckFailure(Status.UNREADABLE, str(e))
            submission = submissions[path]
            if isinstance(submission, CheckFailure):
                raise submission
            fn = submission.function(name)
            if _uses_reference(submission, fn):
                raise CheckFailure(Status.ERROR, f"{name} uses the reference solution (imported from solutions/): "
                                   "graded 0. Write your own implementation.")
            args, kwargs = from_wire((args, kwargs), load, store)
            reply = Reply(True, to_wire(call_learner(fn, *args, **kwargs)))
        except CheckFailure as failure:
            reply = Reply.failed(failure.status, failure.message)
        except BaseException as e:  # SystemExit, KeyboardInterrupt raised by learner code
            reply = Reply.failed(Status.ERROR, f"raised {type(e).__name__}: {e}")
        try:
            conn.send(reply)
        except Exception as e:  # the output cannot be pickled (a generator, a lambda, ...)
            conn.send(Reply.failed(Status.WRONG_TYPE, f"returned {type(reply.value).__name__}, which cannot be "
                                   f"checked ({type(e).__name__})"))


def _parent_model(ref: ModelRef):
    """The grading process's own copy of a model a learner's output refers to (e.g. a returned cache)."""
    from utils.models import cached_model

    return cached_model(ref.name, sae_transformer=ref.sae_transformer, **dict(ref.processing))


class Worker:
    """One spawned process that runs learner code; restarted after a crash or a time-out."""

    def __init__(self, device: str = "cpu", memory_gb: float | None = DEFAULT_MEMORY_LIMIT_GB):
        self.device, self.memory_gb, self.process, self.conn = device, memory_gb, None, None
        self.sent = SentOnce()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.sent = SentOnce()  # a new process has none of the inputs sent before
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, self.device, self.memory_gb), daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(300) or self.conn.recv() != ("ready",):
            raise RuntimeError("the grading worker did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.process = None

    def call(self, path: str, name: str, args: tuple, kwargs: dict, timeout: float) -> Any:
        if self.process is None or not self.process.is_alive():
            self._start()
        try:
            self.conn.send((path, name, *to_wire((args, kwargs), self.sent)))
        except (pickle.PicklingError, TypeError) as e:
            raise RuntimeError(f"checker inputs cannot be sent to the worker: {e}") from e
        if not self.conn.poll(max(timeout, 0.01)):
            self.stop()
            raise CheckFailure(Status.TIMEOUT, f"did not finish within the {timeout:.0f} s time limit "
                               "(an infinite loop, or far too slow?)")
        try:
            reply = self.conn.recv()
        except (EOFError, ConnectionError, OSError):
            self.process.join(5)
            code = self.process.exitcode
            self.stop()
            why = f"killed by signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
            raise CheckFailure(Status.CRASHED, f"the process running your code died ({why}): os._exit, a crash "
                               "in native code or running out of memory") from None
        if reply.ok:
            return from_wire(reply.value, _parent_model)
        raise CheckFailure(reply.status, reply.message)


class RemoteFunction:
    """Stands for the learner's function in the checker: each call runs in the worker, within the time limit, on
    copies of the inputs made there (so the checker need not copy them first)."""

    copies_inputs = True

    def __init__(self, worker: Worker, path: str, name: str, deadline: float):
        self.worker, self.path, self.__name__, self.deadline = worker, path, name, deadline

    def __call__(self, *args, **kwargs):
        return self.worker.call(self.path, self.__name__, args, kwargs, timeout=self.deadline - time.monotonic())


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


def learner_id(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def notebook_chapter(path: Path) -> str | None:
    """The chapter a notebook declares in its metadata (read as JSON: no learner code runs), else None."""
    try:
        return json.loads(Path(path).read_text()).get("metadata", {}).get("circuit_school", {}).get("chapter")
    except Exception:
        return None


# --------------------------------------------------------------------------------------------------------
# The gradebook
# --------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    learner: str
    chapter: str
    exercise: str
    status: str
    message: str
    seconds: float
    points: float = 0.0
    max_points: float = 1.0


def load_points(path: Path | None) -> dict[str, dict[str, float]]:
    """Points per exercise from a TOML manifest (``[ch00_pytorch_einops] split_heads = 2``); default 1."""
    if path is None or not Path(path).exists():
        return {}
    return tomllib.loads(Path(path).read_text())


class Gradebook:
    """A pytest plugin that turns the checkers' reports into grades.csv, grades.json, feedback and a summary."""

    def __init__(self, out_dir: Path, points: dict[str, dict[str, float]], progress: bool = False):
        self.out_dir, self.points, self.results, self.progress = Path(out_dir), points, [], None
        self._show_progress = progress

    def pytest_collection_finish(self, session):
        if self._show_progress:
            from tqdm import tqdm

            self.progress = tqdm(total=len(session.items), desc="grading", unit="check", file=sys.stderr)

    def pytest_runtest_logreport(self, report):
        item = graded_item(report)
        if item is None or not (report.when == "call" or report.failed or report.skipped):
            return
        verdict = verdict_of(report)
        max_points = float(self.points.get(item.chapter, {}).get(item.exercise, 1))
        self.results.append(Result(item.learner, item.chapter, item.exercise, verdict.status.value, verdict.message,
                                   round(report.duration, 3), max_points if verdict.passed else 0.0, max_points))
        if self.progress is not None:
            self.progress.update(1)

    def pytest_sessionfinish(self, session):
        if self.progress is not None:
            self.progress.close()
        if self.results:
            self.write()

    def write(self) -> None:
        out = self.out_dir
        (out / "feedback").mkdir(parents=True, exist_ok=True)
        results = sorted(self.results, key=lambda r: (r.learner, r.chapter, r.exercise))
        columns = sorted({(r.chapter, r.exercise) for r in results})
        by_learner: dict[str, dict] = defaultdict(dict)
        for r in results:
            by_learner[r.learner][(r.chapter, r.exercise)] = r
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["learner", *[f"{c}.{e}" for c, e in columns], "total", "max"])
        for learner, cells in sorted(by_learner.items()):
            points = [_fmt(cells[k].points) if k in cells else "" for k in columns]
            total, best = sum(r.points for r in cells.values()), sum(r.max_points for r in cells.values())
            writer.writerow([learner, *points, _fmt(total), _fmt(best)])
        (out / "grades.csv").write_text(buffer.getvalue())
        (out / "grades.json").write_text(json.dumps(
            {learner: {f"{c}.{e}": {"status": r.status, "points": r.points, "max_points": r.max_points,
                                    "message": r.message, "seconds": r.seconds} for (c, e), r in sorted(cells.items())}
             for learner, cells in sorted(by_learner.items())}, indent=2, ensure_ascii=False) + "\n")
        for learner, cells in by_learner.items():
            path = out / "feedback" / f"{learner}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(feedback_markdown(learner, [cells[k] for k in sorted(cells)]))

    def summary(self) -> str:
        by_learner: dict[str, list[Result]] = defaultdict(list)
        for r in self.results:
            by_learner[r.learner].append(r)
        width = max([len(k) for k in by_learner] + [7])
        lines = [f"{'learner':<{width}}  {'passed':>8}  {'points':>9}  problems"]
        for learner, rs in sorted(by_learner.items()):
            problems = defaultdict(int)
            for r in rs:
                if r.status != Status.PASS.value:
                    problems[r.status] += 1
            text = ", ".join(f"{n} {s}" for s, n in sorted(problems.items())) or "-"
            passed = sum(r.status == Status.PASS.value for r in rs)
            points = f"{_fmt(sum(r.points for r in rs))}/{_fmt(sum(r.max_points for r in rs))}"
            lines.append(f"{learner:<{width}}  {passed:>3} / {len(rs):<2}  {points:>9}  {text}")
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:g}"


def feedback_markdown(learner: str, results: list[Result]) -> str:
    passed = [r for r in results if r.status == Status.PASS.value]
    lines = [f"# Feedback for {learner}", "",
             f"{len(passed)} of {len(results)} exercises passed, "
             f"{_fmt(sum(r.points for r in results))} of {_fmt(sum(r.max_points for r in results))} points.", ""]
    for chapter in sorted({r.chapter for r in results}):
        lines += [f"## {chapter}", ""]
        for r in results:
            if r.chapter == chapter:
                verdict = Verdict(Status(r.status), r.message)
                lines.append("- " + verdict.line(r.exercise).replace("\n", "\n  "))
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Command line: make grade SUBMISSIONS=dir
# --------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import pytest

    parser = argparse.ArgumentParser(description="Grade a folder of learner notebooks into a gradebook.")
    parser.add_argument("submissions", nargs="?", default=str(ROOT / "examples" / "submissions"))
    parser.add_argument("--out", default=None, help="output folder (default: SUBMISSIONS/grades)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=30, help="seconds per exercise")
    parser.add_argument("--points", default=None, help="TOML manifest of points per exercise")
    parser.add_argument("--hidden-cases", default=None, help="a Python file with extra, hidden cases")
    args = parser.parse_args(argv)
    folder = Path(args.submissions).resolve()
    out = Path(args.out).resolve() if args.out else folder / "grades"
    pytest_args = ["tests", f"--rootdir={ROOT}", "-o", "addopts=", "-p", "no:cacheprovider", "-q", "-q",
                   "--no-header", "--tb=no", "--no-summary", "-p", "no:warnings", "-p", "no:logging", "--capture=no",
                   "-p", "no:xdist", f"--submissions={folder}",
                   f"--gradebook={out}", f"--device={args.device}", f"--exercise-timeout={args.timeout}",
                   f"--junitxml={out / 'junit.xml'}"]
    if args.hidden_cases:
        pytest_args.append(f"--hidden-cases={Path(args.hidden_cases).resolve()}")
    gradebook = Gradebook(out, load_points(args.points), progress=True)
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        saved, sys.stdout = sys.stdout, devnull  # pytest's own output; the summary below replaces it
        try:
            code = pytest.main(pytest_args, plugins=[gradebook])
        finally:
            sys.stdout = saved
    if not gradebook.results:
        print(f"no notebooks graded in {folder} (pytest exit code {int(code)})")
        return 1
    print(gradebook.summary())
    n = len({r.learner for r in gradebook.results})
    print(f"\n{n} notebooks graded in {time.perf_counter() - start:.1f} s; gradebook: {out / 'grades.csv'}, "
          f"{out / 'grades.json'}, {out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
