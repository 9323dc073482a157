"""How long a *failing* check takes, for every exercise of every chapter: the target is <= 2 s on the 2-core machine.

A wrong answer costs more than a right one: after the failure the diagnosis runs the exercise's known mistakes on
the cases answered (``utils/checking.py: diagnose``). Each chapter runs in a fresh Python process, as a notebook
kernel does, and for each exercise, in the chapter's order, times what its check cell runs
(``utils.notebook.run_check``):

- ``cold_s``: the first check of the exercise in the process (it builds the cases and the reference's outputs; the
  first exercise's also loads the shipped models), on the most expensive wrong answer there is for the diagnosis:
  right on every case but the last, matching no known mistake (:func:`late_wrong`), so every case is answered;
- ``warm_s``: the slowest of the same answer checked again and of every known mistake (each a wrong answer).

Results: printed, and ``bench/failing_check_results.json`` (per chapter and mode: the slowest exercise, and every
exercise), with the load average of the machine before and after each run (other work on the machine slows it down).

Each chapter runs with the engine as it is (checks on one CPU thread) and, alternating with it, with torch's default
thread count (one per core), as the engine ran before: ``--rounds N`` times each (default 2); ``--one-thread-only``
skips the second.

Usage: ``python -m bench.bench_failing_checks [--one-thread-only] [--rounds N] [ch04_induction ...]`` (chapters
named: printed only).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.0

KERNEL = """
import contextlib, json, sys, time
sys.path.insert(0, {root!r})
import torch
from bench.bench_failing_checks import late_wrong
from utils.chapters import checker as chapter_of
import utils.checking
from utils.notebook import run_check

if {keep_threads!r}:  # the engine before checks ran on one thread: torch's default count (one per core)
    utils.checking.one_cpu_thread = contextlib.nullcontext
device = torch.device("cpu")
rows = {{}}
for name, exercise in chapter_of({chapter!r}).exercises.items():
    def timed(fn):  # what a check cell runs
        start = time.perf_counter()
        status = run_check(fn, {chapter!r}, "cpu", exercise=name).status.value
        return time.perf_counter() - start, status

    wrong = late_wrong(exercise, device)
    cold, status = timed(wrong)
    assert status != "PASS", f"{{name}}: the late wrong answer passed"
    warm = [(timed(late_wrong(exercise, device))[0], "late wrong answer")]
    warm += [(timed(mutant.fn)[0], mutant.name) for mutant in exercise.mutants
             if not mutant.only_on or device.type in mutant.only_on]
    slowest = max(warm)
    rows[name] = dict(cold_s=round(cold, 3), warm_s=round(slowest[0], 3), warm_slowest=slowest[1],
                      cases=len(exercise.public_cases(device)), mutants=len(exercise.mutants))
print(json.dumps(rows))
"""


# --------------------------------------------------------------------------------------------------------
# The wrong answer that costs the diagnosis most: right on every case but the last
# --------------------------------------------------------------------------------------------------------
def _same(a, b) -> bool:
    """Whether two call arguments hold the same values (the checker passes fresh copies, never the case's own)."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.equal(a.detach().cpu(), b.detach().cpu()))
    if isinstance(a, torch.nn.Module):
        return a is b
    if isinstance(a, torch.Generator):
        return isinstance(b, torch.Generator) and torch.equal(a.get_state(), b.get_state())
    if type(a).__name__ == "FactoredMatrix":
        return type(b) is type(a) and _same(a.A, b.A) and _same(a.B, b.B)
    if hasattr(a, "cache_dict"):
        return hasattr(b, "cache_dict") and _same(a.cache_dict, b.cache_dict)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:
        return False


def _perturbed(out):
    """A wrong version of an output that no known mistake gives (a shifted value)."""
    import torch

    if isinstance(out, torch.Tensor):
        if out.dtype == torch.bool:
            return ~out
        return out + (0.5 if out.is_floating_point() else 1)
    if type(out).__name__ == "FactoredMatrix":
        return type(out)(out.A * 1.5, out.B)
    if isinstance(out, bool):
        return not out
    if isinstance(out, (int, float)):
        return out + 1
    if isinstance(out, str):
        return out + " (changed)"
    if isinstance(out, (list, tuple)):
        return type(out)([_perturbed(out[0]), *out[1:]]) if len(out) else type(out)(["changed"])
    if isinstance(out, dict) and out:
        first = next(iter(out))
        return {**out, first: _perturbed(out[first])}
    return None


def late_wrong(exercise, device):
    """The reference, except on the exercise's last case, where its output is :func:`_perturbed`."""
    cases = exercise.public_cases(device)
    reference = exercise.reference
    calls = []

    def wrong(*args, **kwargs):
        # the last case by its inputs (before the call uses up a generator); else by the number of calls, the cases
        # coming in order (inputs that cannot be compared, e.g. a closure copied with the case)
        calls.append(None)
        is_last = (_same(args, cases[-1].args) and _same(kwargs, cases[-1].kwargs)) or len(calls) >= len(cases)
        out = reference(*args, **kwargs)
        return _perturbed(out) if is_last else out

    wrong.__name__ = exercise.name
    return wrong


def _run_kernel(chapter: str, keep_threads: bool) -> dict:
    """One chapter in a fresh process: its rows, the slowest exercise, and the load average around the run."""
    load_before, start = os.getloadavg()[0], time.perf_counter()
    kernel = KERNEL.format(root=str(ROOT), chapter=chapter, keep_threads=keep_threads)
    out = subprocess.run([sys.executable, "-c", kernel], cwd=ROOT, capture_output=True, text=True,
                         env={"HF_HUB_OFFLINE": "1", "CS_DEVICE": "cpu", "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    name, row = max(rows.items(), key=lambda item: max(item[1]["cold_s"], item[1]["warm_s"]))
    return dict(slowest_exercise=name, slowest_failing_check_s=max(row["cold_s"], row["warm_s"]),
                slowest_detail=f"cold {row['cold_s']:.2f} s, warm {row['warm_s']:.2f} s ({row['warm_slowest']})",
                load_average_before=round(load_before, 2), load_average_after=round(os.getloadavg()[0], 2),
                wall_s=round(time.perf_counter() - start, 1), exercises=rows)


def main(argv: list[str]) -> int:
    """Each chapter with the engine as it is (one CPU thread per check), then, side by side, with torch's default
    thread count (one per core: the engine before), unless ``--one-thread-only``; ``--rounds N`` (default 2)
    alternates the two N times, since other work on the machine makes single runs noisy."""
    from utils.build import chapter_name, sources

    modes = {"one_thread": False} if "--one-thread-only" in argv else {"one_thread": False, "default_threads": True}
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 2
    argv = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or argv[i - 1] != "--rounds")]
    chapters = [c for c in (chapter_name(src) for src in sources()) if not argv or c in argv]
    results = {}
    for chapter in chapters:
        runs = {mode: [] for mode in modes}
        for _ in range(rounds):
            for mode, keep_threads in modes.items():
                run = _run_kernel(chapter, keep_threads)
                runs[mode].append(run)
                print(f"{chapter} ({mode}): slowest failing check {run['slowest_failing_check_s']:.2f} s "
                      f"({run['slowest_exercise']}: {run['slowest_detail']}), load average "
                      f"{run['load_average_before']:.2f} -> {run['load_average_after']:.2f}", flush=True)
        results[chapter] = {mode: dict(slowest_failing_check_s=[r["slowest_failing_check_s"] for r in mode_runs],
                                       runs=mode_runs) for mode, mode_runs in runs.items()}
    if not argv:
        (ROOT / "bench" / "failing_check_results.json").write_text(json.dumps(results, indent=2) + "\n")
    ok = all(max(r["one_thread"]["slowest_failing_check_s"]) <= TARGET_S for r in results.values())
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
