"""Grading in parallel and the sandbox's cost, side by side in one run, on one class.

The class is the grading benchmark's (``bench/bench_grading.py``): ``--copies`` complete submissions of every chapter
(140 notebooks by default). It is graded three times, in this order: with one job, sandboxed (the default
containment, ``utils/sandbox.py``); with ``--jobs`` jobs, sandboxed; with one job and the sandbox switched off. Each
run's gradebook must be byte-identical to the first one's (the sandbox and the jobs change no verdict). Results:
printed and ``bench/grading_jobs_results.json``.

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

from utils.grading import GradeOptions, find_notebooks, grade, grades_csv, grades_json, run_info  # noqa: E402


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
        for name, options in runs.items():
            start = time.perf_counter()
            results = grade(notebooks, folder, options)
            seconds[name] = round(time.perf_counter() - start, 1)
            books[name] = grades_csv(results) + grades_json(results)
            print(f"{name}: {seconds[name]} s", flush=True)
    first, parallel, bare = runs
    results = {
        "notebooks": len(notebooks), "sandbox": run_info(GradeOptions()).sandbox, "seconds": seconds,
        "jobs_speedup": round(seconds[first] / seconds[parallel], 2),
        "sandbox_overhead": round(seconds[first] / seconds[bare] - 1, 3),
        "gradebooks_identical": all(book == books[first] for book in books.values()),
    }
    (ROOT / "bench" / "grading_jobs_results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if results["gradebooks_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
