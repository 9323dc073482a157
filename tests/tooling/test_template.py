"""The promise of "Adding a chapter" (README), kept: in a scratch copy of this checkout, chapter 07 is added from
``templates/chapter/`` by touching only the four hand-written files the README names (its source, checkers, known
mistakes and declaration), then the README's generated section and ``make build``; every chapter-aware test of the
suite then passes on it — build, registry, README table, Colab links, quick reference, notebooks, checkers and
mutants — and grading finds and grades it."""

import json
import shutil
import subprocess
import sys

import pytest

from utils.build import ROOT
from utils.chapters import chapters

pytestmark = pytest.mark.tooling

TEMPLATE = ROOT / "templates" / "chapter"
NEW = "07_template"

# the suite's tests that depend on the registry; the existing chapters' own parametrizations are deselected (the
# suite runs them), everything else runs on the checkout with chapter 07 in it
CHAPTER_AWARE = [
    "tests/tooling/test_build.py",
    "tests/tooling/test_chapters.py",
    "tests/tooling/test_noise.py",
    "tests/tooling/test_colab.py::test_readme_links_every_chapter_to_colab",
    "tests/tooling/test_reference.py::test_generated_files_are_fresh",
    "tests/tooling/test_reference.py::test_every_section_links_to_the_course",
    "tests/tooling/test_reference.py::test_links_name_real_or_planned_exercises",
    "tests/tooling/test_notebooks.py::test_solutions_notebook_runs",
    "tests/test_exercises.py",
]


def _checkout(tmp_path):
    """The files of this checkout as ``git`` sees them (tracked and new, not ignored), the models linked."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if name.startswith("models/") or not (ROOT / name).is_file():
            continue
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "models").symlink_to(ROOT / "models")
    return tmp_path


def _run(args, cwd, timeout=600):
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.timeout(900)
def test_a_chapter_added_from_the_template_passes_every_chapter_aware_test(tmp_path):
    root = _checkout(tmp_path / "checkout")
    name = f"ch{NEW}"
    # the four hand-written files, as the README says
    shutil.copy(TEMPLATE / "99_template.py", root / "chapters" / "src" / f"{NEW}.py")
    for template, target in (("checks_ch99_template.py", f"checks/{name}.py"),
                             ("mutants_ch99_template.py", f"checks/mutants/{name}.py")):
        (root / target).write_text((TEMPLATE / template).read_text().replace("ch99_template", name))
    declaration = (TEMPLATE / "chapters.toml").read_text().replace("number = 99", "number = 7")
    registry = root / "chapters" / "chapters.toml"
    registry.write_text(registry.read_text() + "\n" + declaration)

    # then the generated steps: the README's chapter section and `make build`
    _run(["-m", "utils.chapters", "--readme"], root)
    _run(["-m", "utils.build"], root)
    _run(["-m", "utils.build_reference"], root)
    readme = (root / "README.md").read_text()
    assert "| 07 | the shape of a chapter (2 exercises) | `attn2l` | ready |" in readme
    assert (root / "solutions" / f"{name}.py").exists() and (root / "chapters" / f"{NEW}.ipynb").exists()

    existing = " or ".join(f"{c.stem} or {c.name}" for c in chapters())
    tests = _run(["-m", "pytest", *CHAPTER_AWARE, "-k", f"not ({existing})", "-q", "-rA", "-p", "no:cacheprovider",
                  "-p", "no:xdist", "--device", "cpu"], root, timeout=840)
    summary = tests.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, tests.stdout[-3000:]
    for test_id in (f"test_solutions_notebook_runs[{NEW}]", f"test_exercise[{name}-normalize_rows]",
                    f"test_mutant_rejected[{name}-top_next_tokens-", f"test_every_exercise_has_a_checker"
                    f"_with_mutants_and_typed_signature[{NEW}]"):
        assert any(line.startswith("PASSED") and test_id in line for line in tests.stdout.splitlines()), test_id

    # grading finds the chapter through the registry: the solutions notebook passes, the learner notebook is
    # not attempted
    folder = root / "class"
    folder.mkdir()
    shutil.copy(root / "chapters" / "solutions" / f"{NEW}_solutions.ipynb", folder / "done.ipynb")
    shutil.copy(root / "chapters" / f"{NEW}.ipynb", folder / "fresh.ipynb")
    _run(["-m", "utils.grading", str(folder), "--out", str(tmp_path / "grades"), "--jobs", "1"], root)
    grades = json.loads((tmp_path / "grades" / "grades.json").read_text())
    statuses = {(learner, key): row["status"] for learner, rows in grades.items() for key, row in rows.items()}
    assert statuses == {("done", f"{name}.normalize_rows"): "PASS", ("done", f"{name}.top_next_tokens"): "PASS",
                        ("fresh", f"{name}.normalize_rows"): "NOT_ATTEMPTED",
                        ("fresh", f"{name}.top_next_tokens"): "NOT_ATTEMPTED"}

