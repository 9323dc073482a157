"""Grading benchmark: 100 copies of a complete submission, graded by `utils.grading`, against executing
notebooks top to bottom with nbclient (the nbgrader / otter-grader approach), measured in the same run.

Top-to-bottom execution is measured on a sample of the same notebooks (default 5; each takes seconds) and
reported per notebook; the ratio compares seconds per notebook. Results: printed and bench/results.json.

Usage: ``python -m bench.bench_grading [--copies 100] [--sample 5]`` (``make bench``).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.grading import main as grade_main  # noqa: E402
from utils.run_notebooks import notebook_client  # noqa: E402

COMPLETE = ROOT / "examples" / "submissions" / "complete.ipynb"


def execute_top_to_bottom(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    notebook_client(nb, ROOT / "chapters").execute()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--sample", type=int, default=5, help="notebooks executed top to bottom for the baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        for i in range(args.copies):
            shutil.copy(COMPLETE, folder / f"learner_{i:03d}.ipynb")
        start = time.perf_counter()
        code = grade_main([str(folder), "--out", str(Path(tmp) / "grades"), "--device", "cpu"])
        grading_s = time.perf_counter() - start
        grades = (Path(tmp) / "grades" / "grades.csv").read_text().splitlines()[1:]
        all_full = all(row.endswith(",10,10") for row in grades) and len(grades) == args.copies
        baseline = [execute_top_to_bottom(folder / f"learner_{i:03d}.ipynb") for i in range(args.sample)]
    per_nb = grading_s / args.copies
    base_per_nb = sum(baseline) / len(baseline)
    results = {
        "copies": args.copies, "grading_total_s": round(grading_s, 1), "grading_s_per_notebook": round(per_nb, 3),
        "top_to_bottom_sample": args.sample, "top_to_bottom_s_per_notebook": round(base_per_nb, 2),
        "top_to_bottom_total_s_extrapolated": round(base_per_nb * args.copies, 1),
        "speedup": round(base_per_nb / per_nb, 1), "all_graded_full_marks": all_full,
    }
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if code == 0 and all_full else 1


if __name__ == "__main__":
    sys.exit(main())
