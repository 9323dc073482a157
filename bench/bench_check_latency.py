"""How long a check cell takes: the first call in a fresh kernel and warm calls after it, per chapter.

Each chapter runs in a fresh Python process that does what a notebook does: the setup cell
(``start_chapter``, and one CPU thread for the chapters whose setup cell asks for it), then ``check`` on the reference
solution of each exercise (a learner's right answer) and on a known mistake (a wrong answer, which also runs the
diagnosis). Every exercise's first check builds its cases: ``first_s`` is the chapter's first check, ``first_max_s``
the slowest first check of any exercise (``first_max_exercise``), with its CPU time (``first_max_cpu_s``: what it
costs on an idle machine, whatever else runs). The figures are seconds on this machine; the target is <= 2 s for
every first call. Results: printed and bench/check_latency_results.json.

Usage: ``python -m bench.bench_check_latency`` (``make bench``).
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KERNEL = """
import contextlib, io, json, statistics, sys, time
sys.path.insert(0, {root!r})
import torch
from utils.notebook import start_chapter
with contextlib.redirect_stdout(io.StringIO()):
    device, check = start_chapter({chapter!r})
if {one_thread!r}:
    torch.set_num_threads(1)
import importlib
reference = importlib.import_module("solutions.{chapter}")
from utils.notebook import run_check
from utils.chapters import checker as chapter_of
exercises = chapter_of({chapter!r}).exercises
times, cpu = [], []
for i, name in enumerate(exercises):
    fn = getattr(reference, name)
    start, start_cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        check(fn)
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
slowest = max(range(len(times)), key=times.__getitem__)
wrong = []
for name, exercise in exercises.items():
    if exercise.mutants:
        start = time.perf_counter()
        run_check(exercise.mutants[0].fn, {chapter!r}, exercise=name)
        wrong.append(time.perf_counter() - start)
print(json.dumps(dict(first_s=round(times[0], 3), first_max_s=round(times[slowest], 3),
                      first_max_cpu_s=round(cpu[slowest], 3), first_max_exercise=list(exercises)[slowest],
                      first_median_s=round(statistics.median(times), 3),
                      wrong_median_s=round(statistics.median(wrong), 3), exercises=len(exercises))))
"""


def main() -> int:
    from utils.build import chapter_name, sources

    results = {}
    for src in sources():
        chapter = chapter_name(src)
        kernel = KERNEL.format(root=str(ROOT), chapter=chapter,
                               one_thread="torch.set_num_threads(1)" in src.read_text())
        out = subprocess.run([sys.executable, "-c", kernel], cwd=ROOT, capture_output=True, text=True,
                             env={"HF_HUB_OFFLINE": "1", "CS_DEVICE": "cpu", "PATH": "/usr/bin:/bin"})
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        results[chapter] = json.loads(out.stdout.strip().splitlines()[-1])
        print(chapter, results[chapter])
    (ROOT / "bench" / "check_latency_results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
