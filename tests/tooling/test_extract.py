"""Taking learner functions out of notebooks: robust to magics, syntax errors, failing imports, bad files."""

import os
import subprocess
import sys

import nbformat
import pytest

from utils.build import ROOT
from utils.checking import CheckFailure, Status
from utils.extract import UnreadableNotebook, load_submission

pytestmark = pytest.mark.tooling


def write_notebook(path, *cells, chapter="ch00_pytorch_einops"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["circuit_school"] = {"chapter": chapter}
    nb.cells = [nbformat.v4.new_markdown_cell("# My work")] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def test_magics_and_shell_lines_are_ignored(tmp_path):
    magic_cell = "%pip install einops\n!ls\nfiles = !ls\nimport math\n\ndef f(x):\n    return x + 1"
    sub = load_submission(write_notebook(tmp_path / "a.ipynb", magic_cell, "%%time\ndef g():\n    return 2"))
    assert sub.problems == []
    assert sub.function("f")(1) == 2


def test_syntax_error_loses_only_its_own_cell(tmp_path):
    sub = load_submission(write_notebook(tmp_path / "a.ipynb", "def ok():\n    return 1",
                                         "def lost():\n    return (\n", "def later():\n    return 3"))
    assert sub.function("ok")() == 1 and sub.function("later")() == 3
    with pytest.raises(CheckFailure) as caught:
        sub.function("lost")
    assert caught.value.status == Status.MISSING
    assert "cell 3, line 2" in caught.value.message and "SyntaxError" in caught.value.message


def test_missing_function_lists_near_misses(tmp_path):
    sub = load_submission(write_notebook(tmp_path / "a.ipynb", "def split_head(x, n):\n    return x"))
    with pytest.raises(CheckFailure, match="near misses: split_head") as caught:
        sub.function("split_heads")
    assert caught.value.status == Status.MISSING


def test_only_definitions_run(tmp_path):
    sub = load_submission(write_notebook(tmp_path / "a.ipynb",
                                         "import definitely_not_a_module_xyz\nSCALE = 2\nname = 'x'\n"
                                         "raise RuntimeError('top-level code must not run')\n"
                                         "def f(x):\n    return SCALE * x"))
    assert sub.function("f")(3) == 6 and sub.namespace["name"] == "x"
    assert [p.line for p in sub.problems] == [1] and "ModuleNotFoundError" in sub.problems[0].message


@pytest.mark.parametrize("content", ["not json at all", '{"cells": "nope"}', ""])
def test_unreadable_notebooks(tmp_path, content):
    path = tmp_path / "broken.ipynb"
    path.write_text(content)
    with pytest.raises(UnreadableNotebook, match="broken.ipynb"):
        load_submission(path)


def run_pytest_on(notebook):
    """``pytest --submission`` on the checkers (a chapter-0 notebook: only chapter 0's are collected)."""
    return subprocess.run([sys.executable, "-m", "pytest", "tests/test_exercises.py", "--submission",
                           str(notebook), "-q", "-rA",
                           "-p", "no:cacheprovider", "--device", "cpu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "500"})  # untruncated summary lines


def test_untouched_learner_notebook_is_not_attempted_not_a_crash():
    result = run_pytest_on(ROOT / "chapters" / "00_pytorch_einops.ipynb")
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(failed) == 10 and all("NOT_ATTEMPTED" in line for line in failed), result.stdout[-3000:]


def test_solutions_notebook_passes_as_a_submission():
    result = run_pytest_on(ROOT / "chapters" / "solutions" / "00_pytorch_einops_solutions.ipynb")
    assert result.returncode == 0 and "10 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]


def test_unreadable_submission_is_reported_per_exercise(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{oops")
    result = run_pytest_on(path)
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert failed and all("UNREADABLE" in line for line in failed), result.stdout[-3000:]
