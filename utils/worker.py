"""The grading worker: where learner code runs while grading, contained, in a fresh process for each learner.

Both sides of one protocol live here, as in ``multiprocessing``:

- :class:`Worker` (in the grader) starts ``python -m utils.worker`` inside the sandbox of ``utils/sandbox.py`` (or,
  where none is available, as a plain process, and grading says so), sends it each learner's notebook **as text**
  and each call's inputs (``utils/wire.py``), and reads each reply with ``torch.load(weights_only=True)``: nothing
  the worker sends can run code in the grader.
- :func:`main` (in the sandbox) is the *zygote*: it imports torch, TransformerLens and what the notebook imports,
  loads the models and keeps the large inputs, but never runs learner code itself. At a learner's first call it forks
  the *learner's process*, which extracts the learner's definitions from the notebook text (``utils/extract.py``)
  and answers that learner's calls one by one: it builds the inputs (loading what it lacks; a large input the zygote
  kept after the fork is sent to it in full), says ``ready`` (the time limit starts then), calls the function under
  the pristine-state guard (``utils/checking.call_learner``) and writes its reply to a private pipe. The zygote
  forwards the reply's bytes unread, or says TIMEOUT or CRASHED, and kills every other process the call left in the
  sandbox. The learner's process ends with the learner (or when it dies or overruns its time), and ``/tmp`` is
  emptied. So a learner starts from the zygote's state, never from what another learner left behind, and no input
  arrives differently because of who was graded before: a verdict depends on the learner's notebook alone.

CUDA cannot follow ``fork``: on a GPU each call runs in the zygote itself, and the grader starts a new worker for
each learner instead.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

from utils.checking import CheckFailure, Status, call_learner, count_forward_passes
from utils.sandbox import ROOT, command, containment, worker_environment
from utils.wire import (
    Resolver,
    SentOnce,
    Store,
    Stored,
    absorb,
    decode_output,
    encode_plain,
    from_wire,
    output_wire,
    to_wire,
)

DEFAULT_MEMORY_LIMIT_GB = 6.0
MAX_PROCESSES = 32  # processes a call may have alive at once in the sandbox (a fork bomb is stopped there)
MAX_REPLY_BYTES = 256 * 2**20
READY = b"ready"
START_TIMEOUT = 300.0
GRACE = 120.0  # the grader's extra wait beyond a call's time limit (the worker loads models before the clock starts)


class LearnerText(NamedTuple):
    """A learner's notebook as the worker receives it: a name for messages, and its text."""

    key: str
    text: str


class SandboxRequired(RuntimeError):
    """Raised when ``require_sandbox`` is set and this machine cannot contain learner code."""


# --------------------------------------------------------------------------------------------------------
# The grader's side
# --------------------------------------------------------------------------------------------------------
class Worker:
    """One sandboxed worker process; restarted when it dies or a call overruns."""

    def __init__(self, device: str = "cpu", memory_gb: float | None = DEFAULT_MEMORY_LIMIT_GB,
                 sandbox: bool = True, require_sandbox: bool = False):
        self.device, self.memory_gb = str(device), memory_gb
        self.containment = containment()
        if require_sandbox and not self.containment.available:
            raise SandboxRequired(f"--require-sandbox: {self.containment.describe()}")
        self.sandboxed = sandbox and self.containment.available
        self.forks = self.device == "cpu"
        self.process: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.sent = SentOnce()
        self.learner: str | None = None  # whose notebook the worker holds
        self.used_by: str | None = None  # (no fork) whose calls ran in the worker itself
        self.resolver = Resolver()
        self.scratch_dir: str | None = None  # unsandboxed: the worker's working folder
        self.log = None  # the worker's stderr (a temporary file: a pipe nobody reads could fill and block it)
        self.ready = False

    # -- process ---------------------------------------------------------------------------------------
    def launch(self) -> None:
        """Start the worker process now, without waiting for it (it imports torch meanwhile, then what the notebook
        imports once :meth:`expect` sent it); the first call waits for it to be ready."""
        if self.alive():
            return
        ours, theirs = socket.socketpair()
        argv = [sys.executable, "-m", "utils.worker", str(theirs.fileno()), self.device, str(self.memory_gb or 0)]
        env = worker_environment(self.device)
        if self.sandboxed:  # bwrap clears the environment and sets the worker's own
            argv, cwd, env = command(argv, env), None, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            cwd, env = self._scratch(), {**env, "CS_SCRATCH": self._scratch()}
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(argv, pass_fds=(theirs.fileno(),), env=env, cwd=cwd,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
                                        start_new_session=True)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.sent, self.learner, self.used_by, self.ready = SentOnce(), None, None, False

    def _start(self) -> None:
        """A worker that is ready for calls (launched now, or earlier by :meth:`launch`)."""
        if not self.alive():
            self.launch()
        if self.ready:
            return
        if not self.conn.poll(START_TIMEOUT):
            self.stop()
            raise RuntimeError("the grading worker did not start")
        try:
            ready = decode_output(self.conn.recv_bytes())
        except (EOFError, OSError):
            self.process.wait(10)
            self.log.seek(0)
            err = self.log.read().decode(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"the grading worker failed to start: {err}") from None
        if ready != ("ready",):
            self.stop()
            raise RuntimeError(f"the grading worker said {ready!r} instead of ready")
        self.ready = True

    def _scratch(self) -> str:
        if self.scratch_dir is None:
            self.scratch_dir = tempfile.mkdtemp(prefix="cs-worker-")
        return self.scratch_dir

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)  # the worker and, unsandboxed, its process group
                except OSError:
                    self.process.kill()
            self.process.wait()
        if self.log is not None:
            self.log.close()
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn, self.log, self.ready = None, None, None, False
        if self.scratch_dir is not None:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)
            self.scratch_dir = None

    # -- calls -----------------------------------------------------------------------------------------
    def _send(self, request: tuple) -> None:
        # plain pickle: multiprocessing's pickler would pass tensors as shared memory, which the sandbox cannot map
        self.conn.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))

    def expect(self, learner: LearnerText) -> None:
        """Send ``learner``'s notebook now, before the grader builds the cases of its first exercise: the worker
        imports what the notebook imports (TransformerLens, SAE-Lens: seconds) meanwhile, and the calls find it
        there. (Without fork, :meth:`call` decides when the worker is replaced, and sends it then.)"""
        if not self.forks or self.learner == learner.key:
            return
        if not self.alive():
            self.launch()
        try:
            self._hand_over(learner)
        except OSError:  # the worker died while starting: the first call starts another and says why
            pass

    def _hand_over(self, learner: LearnerText) -> None:
        """The worker now holds ``learner``'s notebook (and ends the previous learner's process)."""
        self._send(("learner", learner.key, learner.text))
        self.learner = learner.key

    def call(self, learner: LearnerText, name: str, args: tuple, kwargs: dict, timeout: float,
             limit: float | None = None, count_passes: bool = False) -> Any:
        """``name(*args, **kwargs)`` from ``learner``'s notebook, within ``timeout`` seconds (``limit``: the exercise's
        whole time limit, for messages); its output (with ``count_passes``: ``(output, forward passes)``), or the
        :class:`CheckFailure` that says what went wrong. ``last_seconds`` is then the time the call ran."""
        self.last_seconds = 0.0
        limit = timeout if limit is None else limit
        if not self.forks and self.used_by not in (None, learner.key):
            self.stop()  # calls ran in the worker itself: the next learner gets a new one
        self._start()
        if self.learner != learner.key:
            self._hand_over(learner)
        try:
            self._send(("call", name, *to_wire((args, kwargs), self.sent), max(timeout, 0.01), limit, count_passes))
        except (pickle.PicklingError, TypeError) as e:
            raise RuntimeError(f"checker inputs cannot be sent to the worker: {e}") from e
        self.used_by = learner.key
        try:
            if not self.conn.poll(max(timeout, 0.01) + GRACE):
                self.stop()
                self.last_seconds = timeout
                raise CheckFailure(Status.TIMEOUT, timeout_message(limit))
            self.last_seconds = float(decode_output(self.conn.recv_bytes(4096))[1])
            data = self.conn.recv_bytes(MAX_REPLY_BYTES + 4096)
        except (EOFError, OSError):
            code = self.process.wait(10) if self.process else None
            self.stop()
            raise CheckFailure(Status.CRASHED, crash_message(code)) from None
        try:
            reply = decode_output(data, self.resolver)
        except Exception as e:
            raise CheckFailure(Status.WRONG_TYPE, f"returned something the grader cannot read ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
        if reply[0] == "ok":
            return (reply[1], reply[2]) if count_passes else reply[1]
        raise CheckFailure(Status(reply[1]), reply[2])


def timeout_message(seconds: float) -> str:
    return f"did not finish within the {seconds:.0f} s time limit (an infinite loop, or far too slow?)"


def crash_message(code: int | None) -> str:
    why = f"killed by signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
    return (f"the process running your code died ({why}): os._exit, a crash in native code or running out of "
            "memory")


class RemoteFunction:
    """Stands for the learner's function in the checker: each call runs in the worker on copies of the inputs made
    there (so the checker need not copy them first). The exercise's time limit counts only the time the learner's
    calls ran, not the worker's start, the checker's own work between calls or another learner's past."""

    copies_inputs = True

    def __init__(self, worker: Worker, learner: LearnerText, name: str, limit: float):
        self.worker, self.learner, self.__name__, self.limit, self.used = worker, learner, name, limit, 0.0

    def __call__(self, *args, **kwargs):
        return self._call(args, kwargs, count_passes=False)

    def forward_passes(self, *args, **kwargs) -> tuple[Any, tuple[int, int, int]]:
        """The output and the passes the call ran through the models among its inputs
        (``utils.checking.count_forward_passes``, in the worker)."""
        return self._call(args, kwargs, count_passes=True)

    def _call(self, args: tuple, kwargs: dict, count_passes: bool) -> Any:
        remaining = self.limit - self.used
        if remaining <= 0:
            raise CheckFailure(Status.TIMEOUT, timeout_message(self.limit))
        try:
            return self.worker.call(self.learner, self.__name__, args, kwargs, timeout=remaining, limit=self.limit,
                                    count_passes=count_passes)
        finally:
            self.used += self.worker.last_seconds


# --------------------------------------------------------------------------------------------------------
# The worker's side (in the sandbox)
# --------------------------------------------------------------------------------------------------------
def _limit_memory(gigabytes: float) -> None:
    """Cap the address space where the platform allows (Linux, CPU only: CUDA maps huge ranges)."""
    try:
        import resource

        limit = int(gigabytes * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass


def _not_dumpable() -> None:
    """No process of the sandbox may ptrace the zygote or read its memory (PR_SET_DUMPABLE = 0)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _subreaper() -> None:
    """Unsandboxed on Linux: orphans of a call become the zygote's children, so it can kill them."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _processes() -> list[int]:
    """The live processes this process can see (zombies, dead already, excepted)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(entry))
            except (OSError, IndexError):
                continue
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_strays(keep: set[int]) -> None:
    """Kill every process a call left behind but ``keep`` (the zygote and the learner's process). In the sandbox the
    zygote is process 1 of its PID namespace and sees only the sandbox's processes: all are killed, whatever session
    or group they moved to. Unsandboxed (best effort), the children of the kept processes and the orphans the zygote
    collected as subreaper. A killed process runs no more code: the loop goes on only while new processes appear
    (started while it killed), not while the killed ones are torn down."""
    keep = keep | {os.getpid()}
    killed: set[int] = set()
    for _ in range(1000):
        everyone = _processes() if os.getpid() == 1 else _children_of(keep)
        strays = [p for p in everyone if p not in keep and p not in killed]
        if not strays:
            break
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        killed.update(strays)
    _reap()


def _children_of(parents: set[int]) -> set[int]:
    wanted, found = {str(p) for p in parents}, set()
    for pid in _processes():
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] in wanted:
                    found.add(pid)
        except (OSError, IndexError):
            continue
    return found


def _empty(folder: Path) -> None:
    for entry in list(folder.iterdir()) if folder.is_dir() else []:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            try:
                entry.unlink()
            except OSError:
                pass


def _preimport(text: str) -> None:
    """Import, in the zygote, the installed packages and course modules the notebook imports, so each call's child
    finds them loaded (``sae_lens`` alone takes ~8 s). Only modules that exist on disk are imported: learner code
    never runs here."""
    import ast
    import importlib
    import importlib.util

    from utils.extract import _to_python, parse_notebook

    try:
        nb = parse_notebook(text)
    except Exception:
        return
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_to_python(cell.source))
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    for name in sorted(names):
        top = name.split(".")[0]
        if top in sys.modules and name in sys.modules:
            continue
        try:
            if importlib.util.find_spec(top) is None:
                continue
            importlib.import_module(name)
        except BaseException:  # a package that fails to import is the learner's problem, reported by the call
            continue


def _uses_reference(submission, fn) -> bool:
    """True if ``fn`` is, or calls a name bound to, the reference solutions."""
    if getattr(fn, "__module__", "").startswith("solutions"):
        return True
    code = getattr(fn, "__code__", None)
    return bool(code and set(code.co_names) & submission.reference_names)


class Answerer:
    """The learner's process: extracts the notebook once, then answers the zygote's calls one by one."""

    def __init__(self, learner: LearnerText, resolver: Resolver, store: dict[int, Any]):
        self.learner, self.resolver, self.store = learner, resolver, store
        self.submission = None

    def serve(self, conn: Connection) -> None:
        """Each request: keep what is sent once, build the inputs (loading any model this process lacks), say
        ``ready`` (the zygote's clock starts then), call, reply."""
        while True:
            name, args, kwargs, count_passes = absorb(pickle.loads(conn.recv_bytes()), self.store)
            try:
                inputs = from_wire((args, kwargs), self.resolver, self.store)
            except Exception as e:
                conn.send_bytes(READY)
                conn.send_bytes(encode_plain(("failed", Status.ERROR.value, f"the grader could not prepare the "
                                              f"inputs: {type(e).__name__}: {e}")))
                continue
            conn.send_bytes(READY)
            conn.send_bytes(self.answer(name, *inputs, count_passes=count_passes))

    def answer(self, name: str, args: Any, kwargs: Any, count_passes: bool = False) -> bytes:
        from utils.extract import UnreadableNotebook, load_submission

        try:
            if self.submission is None:
                try:
                    self.submission = load_submission(self.learner.key + ".ipynb", text=self.learner.text)
                except UnreadableNotebook as e:
                    raise CheckFailure(Status.UNREADABLE, str(e)) from None
            fn = self.submission.function(name)
            if _uses_reference(self.submission, fn):
                raise CheckFailure(Status.ERROR, f"{name} uses the reference solution (imported from solutions/): "
                                   "graded 0. Write your own implementation.")
            if count_passes:
                result, passes = count_forward_passes(fn, *args, **kwargs)
            else:
                result, passes = call_learner(fn, *args, **kwargs), None
        except CheckFailure as failure:
            return encode_plain(("failed", failure.status.value, failure.message))
        except BaseException as e:  # SystemExit, KeyboardInterrupt raised by learner code
            return encode_plain(("failed", Status.ERROR.value, f"raised {type(e).__name__}: {e}"))
        try:
            return encode_plain(("ok", output_wire(result), tuple(passes) if passes is not None else None))
        except Exception as e:
            return encode_plain(("failed", Status.WRONG_TYPE.value, f"returned {type(result).__name__}, which "
                                 f"cannot be checked ({type(e).__name__})"))


def _quiet_child() -> None:
    """In the learner's process: prints go nowhere, the grader's pipe is out of reach, signals are default."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Zygote:
    """The loop of the worker process (see the module docstring): it keeps the models and the large inputs, forks the
    learner's process at the learner's first call, and forks it anew after it died or overran its time."""

    def __init__(self, conn: Connection, device: str):
        self.conn, self.device = conn, device
        self.resolver = Resolver(device)
        self.store: dict[int, Any] = {}
        self.learner: LearnerText | None = None
        self.sandboxed = os.getpid() == 1
        self.scratch = Path("/tmp") if self.sandboxed else Path(os.environ.get("CS_SCRATCH", "/tmp"))
        self.child: tuple[int, Connection, Path] | None = None  # the learner's process, its pipe, its folder
        self.child_tokens: set[int] = set()  # the stored inputs the learner's process was forked with
        self.in_process: Answerer | None = None  # no fork (CUDA): the learner's calls run here

    def serve(self) -> None:
        while True:
            try:
                request = pickle.loads(self.conn.recv_bytes())  # from the grader, which is trusted
            except EOFError:
                return
            if request is None:
                return
            if request[0] == "learner":
                self._end_child()
                self.learner, self.in_process = LearnerText(request[1], request[2]), None
                _preimport(request[2])
                continue
            _, name, args, kwargs, timeout, limit, count_passes = request
            args, kwargs = self._absorb((args, kwargs))  # first: keep what is sent once, whatever follows
            reply, seconds = self.call(name, args, kwargs, timeout, limit, count_passes)
            self.conn.send_bytes(encode_plain(("seconds", seconds)))
            self.conn.send_bytes(reply)

    def _absorb(self, value: Any) -> Any:
        """Keep every large input sent once and load every model or SAE named (for the learners' processes forked
        from now on), before any learner code runs."""
        value = absorb(value, self.store)
        try:
            self._load_models(value)
        except Exception:
            pass  # the call reports it
        return value

    def _for_child(self, value: Any) -> Any:
        """A request as the learner's process needs it: the stored inputs it was not forked with, in full."""
        if isinstance(value, Stored) and value.token not in self.child_tokens:
            self.child_tokens.add(value.token)
            return Store(value.token, self.store[value.token])
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(self._for_child(v) for v in value)
        if isinstance(value, dict):
            return {k: self._for_child(v) for k, v in value.items()}
        return value

    def _load_models(self, value: Any) -> None:
        from utils.wire import CacheRef, HookRef, ModelRef, SAERef

        if isinstance(value, ModelRef):
            self.resolver.model(value)
        elif isinstance(value, SAERef):
            self.resolver.sae(value)
        elif isinstance(value, (HookRef, CacheRef)):
            self.resolver.model(value.model)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self._load_models(v)
        elif isinstance(value, dict):
            for v in value.values():
                self._load_models(v)

    def call(self, name: str, args: Any, kwargs: Any, timeout: float, limit: float,
             count_passes: bool) -> tuple[bytes, float]:
        """The reply to one call, and the seconds it counts against the exercise's time limit: from the learner
        process's ``ready`` to its reply (the whole call when it never said ready)."""
        start = time.monotonic()
        if self.device != "cpu":  # no fork after CUDA: run here (the grader gives each learner a new worker)
            self.in_process = self.in_process or Answerer(self.learner, self.resolver, self.store)
            try:
                inputs = from_wire((args, kwargs), self.resolver, self.store)
            except Exception as e:
                return encode_plain(("failed", Status.ERROR.value, f"the grader could not prepare the inputs: "
                                     f"{e}")), min(time.monotonic() - start, timeout)
            reply = self.in_process.answer(name, *inputs, count_passes=count_passes)
            _kill_strays(set())
            return reply, min(time.monotonic() - start, timeout)
        if self.child is None:
            self._fork()
        pid, conn, _ = self.child
        request = self._for_child((name, args, kwargs, count_passes))
        conn.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
        reply, alive = self._await(pid, conn, GRACE, limit, ready=True)
        if alive:
            start = time.monotonic()
            reply, alive = self._await(pid, conn, timeout, limit)
        seconds = min(time.monotonic() - start, timeout)
        if alive:
            _kill_strays({pid})
        else:
            self._end_child()
        return reply, seconds

    def _fork(self) -> None:
        ours, theirs = socket.socketpair()
        folder = Path(tempfile.mkdtemp(prefix="learner-", dir=self.scratch))
        pid = os.fork()
        if pid == 0:  # the learner's process
            try:
                ours.close()
                os.close(self.conn.fileno())
                os.setpgid(0, 0)
                os.chdir(folder)
                _quiet_child()
                Answerer(self.learner, self.resolver, self.store).serve(Connection(theirs.detach()))
            finally:
                os._exit(0)
        theirs.close()
        self.child, self.child_tokens = (pid, Connection(ours.detach()), folder), set(self.store)

    def _end_child(self) -> None:
        if self.child is None:
            return
        pid, conn, folder = self.child
        conn.close()
        _kill_strays(set())
        _reap()
        if self.sandboxed:
            _empty(Path("/tmp"))
        else:
            shutil.rmtree(folder, ignore_errors=True)
        self.child = None

    def _await(self, pid: int, conn: Connection, timeout: float, limit: float,
               ready: bool = False) -> tuple[bytes, bool]:
        """The learner process's reply (with ``ready``: its word that the inputs are built), or the zygote's own
        (TIMEOUT, CRASHED, too many processes); and whether the learner's process can go on."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return encode_plain(("failed", Status.TIMEOUT.value, timeout_message(limit))), False
            if conn.poll(min(remaining, 0.05)):
                try:
                    data = conn.recv_bytes(MAX_REPLY_BYTES)
                    if ready and data != READY:
                        return encode_plain(("failed", Status.ERROR.value, "the process running your code sent "
                                             "something out of turn")), False
                    return data, True
                except EOFError:
                    pass
                except OSError:
                    return encode_plain(("failed", Status.WRONG_TYPE.value, "returned an output larger than "
                                         f"{MAX_REPLY_BYTES // 2**20} MB")), False
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                return encode_plain(("failed", Status.CRASHED.value, crash_message(code))), False
            if self.sandboxed and len(_processes()) > MAX_PROCESSES + 2:
                message = (f"started more than {MAX_PROCESSES} processes at once (a fork bomb?): learner code may not "
                           "start processes while grading")
                return encode_plain(("failed", Status.ERROR.value, message)), False


def main(argv: list[str]) -> None:
    fd, device, memory_gb = int(argv[0]), argv[1], float(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grader decides when the worker stops
    conn = Connection(fd)
    sys.path.insert(0, str(ROOT))
    os.environ["CS_GRADING_WORKER"] = "1"
    if memory_gb and device == "cpu":
        _limit_memory(memory_gb)
    _not_dumpable()
    if os.getpid() != 1:
        _subreaper()
    import utils.extract  # noqa: F401 - torch, IPython's transformer and nbformat, loaded once for every call
    from utils import isolation

    if device == "cpu":
        isolation.set_baseline_threads(1)  # learner code is small tensors: threads only fight the grader for cores
    # The settings every learner call starts from. Setting them the first time imports torch's compiler settings
    # (a second): here, once, not in every learner's process. TransformerLens (2 s) is imported when the first model
    # arrives or a notebook imports it (_preimport), also before any learner's process is forked, so a chapter
    # without a model never pays for it.
    isolation.BASELINE.apply()
    conn.send_bytes(encode_plain(("ready",)))
    Zygote(conn, device).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
