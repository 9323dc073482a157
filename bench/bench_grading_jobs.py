"""Grading in parallel, the sandbox's cost, the journal's cost, shards and the second run, side by side on one class.

The class is the grading benchmark's (``bench/bench_grading.py``): ``--copies`` complete submissions of every chapter
(140 notebooks by default). In one run of this script it is graded: with one job, sandboxed (the default containment,
``utils/sandbox.py``), with the journal (``utils/journal.py``), whose own time is measured inside that run; with
``--jobs`` jobs; with one job and the sandbox switched off; as 3 shards, 3 processes at once (``--shard K/3``, the
wall time of each); and once more with the journal of the first run (nothing changed: nothing regraded). Every run's
gradebook must be byte-identical to the first one's. Results: printed and ``bench/grading_jobs_results.json``.

Usage: ``python -m bench.bench_grading_jobs [--copies 20] [--jobs 2] [--only 00]`` (``make bench``).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import subprocess  # noqa: E402

from utils import journal as journal_module  # noqa: E402
from utils.grading import GradeOptions, find_notebooks, grade, grades_csv, grades_json, run_info  # noqa: E402


class TimedJournal(journal_module.Journal):
    """The journal, with the time spent in it (keys, lookups, durable writes) counted."""

    seconds = 0.0

    def get(self, learner, key):
        start = time.perf_counter()
        try:
            return super().get(learner, key)
        finally:
            TimedJournal.seconds += time.perf_counter() - start

    def put(self, learner, key, results):
        start = time.perf_counter()
        try:
            return super().put(learner, key, results)
        finally:
            TimedJournal.seconds += time.perf_counter() - start


def _timed_key(original):
    def key(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TimedJournal.seconds += time.perf_counter() - start
    return key


def shards_wall_times(folder: Path, out: Path, n: int = 3) -> list[float]:
    """``--shard K/n`` for every K, as n processes at once; the wall time of each."""
    starts, processes = [], []
    for k in range(1, n + 1):
        starts.append(time.perf_counter())
        processes.append(subprocess.Popen([sys.executable, "-m", "utils.grading", str(folder), "--out",
                                           str(out / f"shard{k}"), "--jobs", "1", "--shard", f"{k}/{n}"], cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    ends = [None] * n
    while any(e is None for e in ends):
        for i, process in enumerate(processes):
            if ends[i] is None and process.poll() is not None:
                ends[i] = time.perf_counter()
        time.sleep(0.2)
    return [round(e - s, 1) for s, e in zip(starts, ends)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="complete submissions per chapter")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default=None, help="only chapters whose notebook name contains this")
    args = parser.parse_args()
    complete = sorted(p for p in (ROOT / "chapters" / "solutions").glob("*_solutions.ipynb")
                      if args.only is None or args.only in p.name)
    runs = {"1 job, sandboxed": GradeOptions(jobs=1), f"{args.jobs} jobs, sandboxed": GradeOptions(jobs=args.jobs),
            "1 job, no sandbox": GradeOptions(jobs=1, sandbox=False)}
    seconds, books = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        for source in complete:
            chapter = source.name.removesuffix("_solutions.ipynb")
            (folder / chapter).mkdir(parents=True)
            for i in range(args.copies):
                shutil.copy(source, folder / chapter / f"learner_{i:03d}.ipynb")
        notebooks = find_notebooks(folder)
        journal_module.learner_key = _timed_key(journal_module.learner_key)
        journal = TimedJournal(Path(tmp) / "out")
        for name, options in runs.items():
            start = time.perf_counter()
            results = grade(notebooks, folder, options, journal=journal if name == "1 job, sandboxed" else None)
            seconds[name] = round(time.perf_counter() - start, 1)
            books[name] = grades_csv(results) + grades_json(results)
            print(f"{name}: {seconds[name]} s", flush=True)
        journal_s = TimedJournal.seconds
        start = time.perf_counter()
        again = grade(notebooks, folder, GradeOptions(jobs=1), journal=TimedJournal(Path(tmp) / "out"))
        second_run = round(time.perf_counter() - start, 2)
        identical_again = grades_csv(again) + grades_json(again) == books["1 job, sandboxed"]
        shards = shards_wall_times(folder, Path(tmp) / "shards")
        print(f"3 shards at once: {shards} s", flush=True)
    first, parallel, bare = runs
    results = {
        "notebooks": len(notebooks), "sandbox": run_info(GradeOptions()).sandbox, "seconds": seconds,
        "jobs_speedup": round(seconds[first] / seconds[parallel], 2),
        "sandbox_overhead": round(seconds[first] / seconds[bare] - 1, 3),
        "gradebooks_identical": all(book == books[first] for book in books.values()) and identical_again,
        "journal_seconds": round(journal_s, 2), "journal_share": round(journal_s / seconds[first], 4),
        "second_run_nothing_changed_s": second_run, "three_shards_wall_s": shards,
    }
    (ROOT / "bench" / "grading_jobs_results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if results["gradebooks_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
