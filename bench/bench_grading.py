"""Grading benchmark: a class of complete submissions of every chapter, graded by `utils.grading`, against
executing the same notebooks top to bottom with nbclient (the nbgrader / otter-grader approach), in one run.

The class holds ``--copies`` copies of each chapter's complete submission (its solutions notebook: every exercise
solved, the chapter's own demo cells included), graded with one job. Grading time per chapter is the sum of that
chapter's checks' durations (``Result.seconds``); top to bottom is measured on ``--sample`` copies per chapter. The
ratio compares seconds per notebook, per chapter and for the whole class. Results: printed and bench/results.json.

Usage: ``python -m bench.bench_grading [--copies 20] [--sample 1] [--only 00]`` (``make bench``).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.grading import GradeOptions, find_notebooks, grade  # noqa: E402
from utils.run_notebooks import notebook_client  # noqa: E402


def execute_top_to_bottom(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    notebook_client(nb, ROOT / "chapters", timeout=1200).execute()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="complete submissions per chapter")
    parser.add_argument("--sample", type=int, default=1, help="notebooks per chapter executed top to bottom")
    parser.add_argument("--only", default=None, help="only chapters whose notebook name contains this")
    args = parser.parse_args()
    complete = sorted(p for p in (ROOT / "chapters" / "solutions").glob("*_solutions.ipynb")
                      if args.only is None or args.only in p.name)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        for source in complete:
            chapter = source.name.removesuffix("_solutions.ipynb")
            (folder / chapter).mkdir(parents=True)
            for i in range(args.copies):
                shutil.copy(source, folder / chapter / f"learner_{i:03d}.ipynb")
        start = time.perf_counter()
        graded = grade(find_notebooks(folder), folder, GradeOptions(device="cpu", jobs=1))
        grading_s = time.perf_counter() - start
        all_pass = all(r.passed for r in graded)
        check_s: dict[str, float] = defaultdict(float)
        for r in graded:
            check_s[r.learner.split("/")[0]] += r.seconds
        baseline = {source.name.removesuffix("_solutions.ipynb"):
                    [execute_top_to_bottom(folder / source.name.removesuffix("_solutions.ipynb") / f"learner_{i:03d}"
                                           ".ipynb") for i in range(args.sample)] for source in complete}
    chapters = {}
    for chapter, times in baseline.items():
        per_nb = check_s[chapter] / args.copies
        base = sum(times) / len(times)
        chapters[chapter] = {"grading_s_per_notebook": round(per_nb, 3), "top_to_bottom_s_per_notebook": round(base, 2),
                             "speedup": round(base / per_nb, 1)}
    n = args.copies * len(complete)
    base_total = sum(sum(t) / len(t) for t in baseline.values()) * args.copies
    results = {
        "notebooks": n, "copies_per_chapter": args.copies, "grading_total_s": round(grading_s, 1),
        "grading_s_per_notebook": round(grading_s / n, 3),
        "top_to_bottom_sample_per_chapter": args.sample,
        "top_to_bottom_total_s_extrapolated": round(base_total, 1),
        "speedup": round(base_total / grading_s, 1), "all_graded_full_marks": all_pass, "chapters": chapters,
    }
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
