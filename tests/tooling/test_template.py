"""The chapter template in ``templates/chapter/`` builds and its checkers and mutants pass, exactly as a
contributor would use it (README, "Adding a chapter"): copied into a checkout as chapter 99, built with
``utils.build``, tested with pytest in a fresh process."""

import shutil
import subprocess
import sys

import pytest

from utils.build import ROOT

pytestmark = pytest.mark.tooling

TEMPLATE = ROOT / "templates" / "chapter"


@pytest.mark.timeout(600)
def test_the_chapter_template_builds_and_its_checkers_pass(tmp_path):
    for folder in ("utils", "training"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "models").symlink_to(ROOT / "models")
    for folder in ("tests", "checks/mutants", "solutions", "chapters/src"):
        (tmp_path / folder).mkdir(parents=True)
    for name in ("tests/__init__.py", "tests/conftest.py", "tests/framework.py", "tests/test_exercises.py",
                 "checks/__init__.py", "checks/helpers.py", "checks/mutants/__init__.py", "solutions/__init__.py",
                 "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    # the four hand-written files a new chapter needs: its source, checkers, mutants and declaration
    shutil.copy(TEMPLATE / "chapters.toml", tmp_path / "chapters" / "chapters.toml")
    shutil.copy(TEMPLATE / "99_template.py", tmp_path / "chapters" / "src" / "99_template.py")
    shutil.copy(TEMPLATE / "checks_ch99_template.py", tmp_path / "checks" / "ch99_template.py")
    shutil.copy(TEMPLATE / "mutants_ch99_template.py", tmp_path / "checks" / "mutants" / "ch99_template.py")

    build = subprocess.run([sys.executable, "-m", "utils.build"], cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    assert (tmp_path / "solutions" / "ch99_template.py").exists()
    assert (tmp_path / "chapters" / "99_template.ipynb").exists()
    tests = subprocess.run([sys.executable, "-m", "pytest", "tests/test_exercises.py", "-q", "-p",
                            "no:cacheprovider", "--device", "cpu"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=540)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert "10 passed" in tests.stdout, tests.stdout[-2000:]  # 2 exercises + 8 mutants
