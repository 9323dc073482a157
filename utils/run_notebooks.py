"""The curriculum's main job: execute every chapter's solutions notebook headless and report.

For each ``chapters/solutions/*_solutions.ipynb`` it runs the notebook top to bottom with nbclient (offline,
on the chosen device), and prints one line per chapter: whether it ran, how long it took, how many check
cells passed, and the first error. A JSON report goes to ``reports/notebooks.json``; the executed notebooks
(with outputs) go to ``reports/executed/`` so the committed notebooks stay output-free.

Parameters work as in papermill: ``--param MODEL_NAME='"mlp4l"'`` adds a cell assigning ``MODEL_NAME`` right
after the notebook's cell tagged ``parameters`` (a notebook without one is an error).

Usage: ``python -m utils.run_notebooks [--device cpu] [--only 00] [--timeout 600] [--param NAME=VALUE]``; exit 1
if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]


def _check_lines(nb) -> tuple[int, int]:
    """(passed, failed) check lines printed by the notebook's check cells."""
    passed = failed = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            passed += text.count("✅")
            failed += text.count("❌")
    return passed, failed


def notebook_client(nb, cwd: Path, timeout: int = 600) -> NotebookClient:
    """A headless client for ``nb`` running in ``cwd`` on this interpreter's kernel, without its log noise."""
    return NotebookClient(nb, timeout=timeout, kernel_name="python3", extra_arguments=["--log-level=ERROR"],
                          resources={"metadata": {"path": str(cwd)}})


def sign(nb) -> None:
    """Mark an executed notebook as trusted by this machine's Jupyter (nbformat's notebook signature), so that
    opening it from reports/executed/ shows its figures and circuitsvis views: Jupyter runs the scripts of an
    output only in a notebook it trusts. Another machine's Jupyter does not trust it (its secret differs); the
    figures' captions say what to do there."""
    try:
        from nbformat.sign import NotebookNotary

        NotebookNotary().sign(nb)
    except Exception:  # no writable Jupyter data directory: the notebook is still written, untrusted
        pass


def inject_parameters(nb, params: dict[str, str]) -> None:
    """Insert ``NAME = VALUE`` lines (VALUE is Python source) after the cell tagged ``parameters``."""
    if not params:
        return
    index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None)
    if index is None:
        raise ValueError("the notebook has no cell tagged 'parameters' to override")
    source = "# Injected parameters\n" + "\n".join(f"{name} = {value}" for name, value in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, cell)


def run_notebook(path: Path, timeout: int, out_dir: Path, params: dict[str, str] | None = None) -> dict:
    nb = nbformat.read(path, as_version=4)
    start, error = time.perf_counter(), None
    try:
        inject_parameters(nb, params or {})
    except ValueError as e:  # reported like a failed run; the notebook is not executed
        error = str(e)
    if error is None:
        try:
            notebook_client(nb, path.parent, timeout).execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
            error = f"{type(e).__name__}: " + (str(e).strip().splitlines() or [""])[-1][:300]
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    quotes = "\"'"
    suffix = "".join(f".{name}={value.strip(quotes)}" for name, value in (params or {}).items())
    sign(nb)
    nbformat.write(nb, out_dir / path.name.replace(".ipynb", f"{suffix}.ipynb"))
    passed, failed = _check_lines(nb)
    if error is None and failed:
        error = f"{failed} check cell(s) failed"
    return {"notebook": str(path.relative_to(ROOT)), "params": params or {}, "ok": error is None,
            "seconds": round(seconds, 1), "checks_passed": passed, "checks_failed": failed, "error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute every chapter's solutions notebook headless.")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (sets CS_DEVICE for the kernels)")
    parser.add_argument("--only", default=None, help="run only notebooks whose name contains this")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--report-dir", default=str(ROOT / "reports"))
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (VALUE is Python source, e.g. MODEL_NAME='\"mlp4l\"')")
    args = parser.parse_args(argv)
    try:
        params = dict(p.split("=", 1) for p in args.param)
    except ValueError:
        parser.error("--param takes NAME=VALUE")
    if args.device:
        os.environ["CS_DEVICE"] = args.device
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    notebooks = sorted((ROOT / "chapters" / "solutions").glob("*_solutions.ipynb"))
    if args.only:
        notebooks = [p for p in notebooks if args.only in p.name]
    if not notebooks:
        print("no solutions notebooks found", file=sys.stderr)
        return 1
    report_dir = Path(args.report_dir).resolve()
    results = []
    print(f"{'chapter':<40} {'result':<8} {'seconds':>8} {'checks':>7}")
    for path in notebooks:
        result = run_notebook(path, args.timeout, report_dir / "executed", params)
        results.append(result)
        chapter = path.name.removesuffix("_solutions.ipynb")
        status = "ok" if result["ok"] else "FAILED"
        print(f"{chapter:<40} {status:<8} {result['seconds']:>8.1f} {result['checks_passed']:>7}"
              + (f"   {result['error']}" if result["error"] else ""), flush=True)
    (report_dir / "notebooks.json").write_text(json.dumps(results, indent=2) + "\n")
    n_ok = sum(r["ok"] for r in results)
    print(f"{n_ok} of {len(results)} notebooks ran; report: {report_dir / 'notebooks.json'}")
    return 0 if n_ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
