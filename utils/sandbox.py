"""Containment for learner code while grading: what the grading worker may see, write and reach.

While grading, learner code is hostile. The worker that runs it (``utils/worker.py``) is started inside a
`bubblewrap <https://github.com/containers/bubblewrap>`_ sandbox (Debian package ``bubblewrap``):

- **files**: a new, empty root with, read-only, only what the worker needs — the system's ``/usr``, the Python
  installation and its packages, and the course's ``utils/``, ``solutions/`` and ``models/``. No submission (the
  grader sends each notebook's *text* over the pipe, never a path), no hidden-cases file, no gradebook, no home
  directory, no other part of the course;
- **writes**: only a private ``/tmp`` (a size-limited tmpfs), emptied after each learner and thrown away with the
  worker; the rest of the sandbox, ``/dev`` included, is read-only;
- **network**: none (a new network namespace with nothing in it);
- **processes**: a new PID namespace in which the worker is process 1: it cannot see the grader's ``/proc``; after
  each call it kills every other process of the namespace (``kill(-1, SIGKILL)``), whatever session or group a
  process moved to; when it exits, the kernel kills them all; it dies with the grader (``--die-with-parent``);
- **environment**: cleared, then only ``HOME``, ``PATH``, the device and the offline switches;
- **capabilities**: all dropped.

Why bubblewrap: one unprivileged tool gives all of the above (Landlock, the alternative, restricts files and TCP but
has no PID or network namespace, so it could not hide ``/proc`` or collect escaped daemons). Its cost is paid once
per worker start (~0.1 s), not per call: ``bench/bench_sandbox.py`` measures it.

Where bubblewrap is missing or cannot create namespaces (macOS, Windows, a container without user namespaces),
:func:`containment` says why; grading then runs unsandboxed and says so in the summary and the gradebook, and
``--require-sandbox`` refuses to grade.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COURSE_DIRS = ("utils", "solutions", "models")  # what learner code may read of the course
TMP_BYTES = 512 * 2**20  # the private /tmp


@dataclass(frozen=True)
class Containment:
    """Whether learner code can be contained here, with what, or why not."""

    mechanism: str | None  # e.g. "bubblewrap 0.8.0"; None when grading cannot be contained here
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.mechanism is not None

    def describe(self) -> str:
        if self.available:
            return f"sandboxed ({self.mechanism}: read-only course and packages, private /tmp, no network, own PIDs)"
        return f"NOT SANDBOXED: learner code ran with your permissions ({self.reason})"


@functools.lru_cache(maxsize=1)
def containment() -> Containment:
    """Whether :func:`command` works on this machine (tried once per process)."""
    if not sys.platform.startswith("linux"):
        return Containment(None, f"no sandbox on {sys.platform}: bubblewrap needs Linux")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Containment(None, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    try:
        probe = subprocess.run(command(["/bin/true"]), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Containment(None, f"bubblewrap did not run: {e}")
    if probe.returncode != 0:
        return Containment(None, f"bubblewrap cannot create namespaces here: {probe.stderr.strip()[:200]}")
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
    return Containment(version or "bubblewrap")


def _read_only(path: Path) -> list[str]:
    return ["--ro-bind", str(path), str(path)] if path.exists() else []


def command(argv: list[str], env: dict[str, str] | None = None, tmp_bytes: int = TMP_BYTES) -> list[str]:
    """``argv`` run inside the sandbox described in the module docstring, with exactly the environment ``env``."""
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL",
            "--clearenv", "--dev", "/dev", "--remount-ro", "/dev", "--proc", "/proc", "--size", str(tmp_bytes),
            "--tmpfs", "/tmp"]
    args += ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):  # merged-/usr systems: /lib -> usr/lib; else bind the directory
        path = Path("/") / link
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        else:
            args += _read_only(path)
    for etc in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "passwd", "group"):
        args += _read_only(Path("/etc") / etc)
    prefixes = {Path(sys.base_prefix).resolve(), Path(sys.prefix)}  # the Python installation and the venv
    prefixes |= {Path(sys.executable).resolve().parent.parent}
    for prefix in sorted(prefixes):
        if not str(prefix).startswith("/usr/"):
            args += _read_only(prefix)
    for name in COURSE_DIRS:
        args += _read_only(ROOT / name)
    for key, value in (env or {}).items():
        args += ["--setenv", key, value]
    return [*args, "--remount-ro", "/", "--chdir", "/tmp", "--", *argv]


def worker_environment(device: str) -> dict[str, str]:
    """The whole environment of a grading worker: nothing of the instructor's but what the worker needs."""
    return {
        "HOME": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1", "TQDM_DISABLE": "1", "CS_DEVICE": device, "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
