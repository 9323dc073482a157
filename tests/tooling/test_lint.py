"""ruff over the whole repository; among its rules, library code (utils/, solutions/) must not import tests/. And the
course's library code never imports the training scripts: ``training/`` imports ``utils/`` (the corpus, the
measurements), never the reverse."""

import ast
import subprocess
import sys

import pytest

from utils.build import ROOT

pytestmark = pytest.mark.tooling

# Code that the chapters, the check cells and the grader run: it must work without training/ (and keeps the import
# graph one-way). Tests and benchmarks may import training/ (test_models.py measures the model cards).
LIBRARY = ["utils", "checks", "solutions", "chapters/src", "reference/src"]


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(ROOT)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def training_imports(source: str, package: str = "training") -> list[int]:
    """Line numbers of the imports of ``package`` (or a submodule) in ``source``, lazy ones included."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        lines += [node.lineno for name in names if name == package or name.startswith(package + ".")]
    return sorted(lines)


def _imports_in(folders: list[str], package: str) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}" for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))
            for line in training_imports(path.read_text(), package)]


def test_library_code_never_imports_training():
    found = _imports_in(LIBRARY, "training")
    assert not found, f"imports of training/ (use utils.corpus / utils.data): {found}"


def test_the_checker_engine_and_the_checkers_never_import_pytest():
    """The check cells and the grader run the checkers without a test runner (pytest is a development tool)."""
    found = _imports_in(["utils", "checks", "solutions"], "pytest")
    assert not found, f"imports of pytest in library code (it belongs in tests/): {found}"


def test_training_imports_finds_lazy_and_submodule_imports_only():
    source = ("import training\nfrom training.corpus import X\ndef f():\n    import training.evaluate as e\n"
              "from sae_lens.training.activation_scaler import A\nimport trainings\nfrom . import training\n")
    assert training_imports(source) == [1, 2, 4]
