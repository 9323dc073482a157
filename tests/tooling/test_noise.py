"""No developer noise in learner-facing files: no lint pragmas in the generated notebooks, no learner
instructions in the solutions notebooks, no internal issue numbers in what a learner reads. (What an executed
notebook prints is checked in notebook_checks.py: no warnings, no stderr, no stray reprs.)"""

import re

import nbformat
import pytest

from utils import build, models

pytestmark = pytest.mark.tooling

GENERATED = [path for src in build.sources() for path in build.outputs_for(src).values() if path.suffix == ".ipynb"]
ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\d+|#\d{1,4}\b(?!\w)", re.I)


@pytest.mark.parametrize("path", GENERATED, ids=lambda p: p.name)
def test_no_lint_pragmas_or_issue_numbers_in_generated_notebooks(path):
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        assert "noqa" not in cell.source, f"{path.name}, cell {index}: a lint pragma (configure ruff in pyproject.toml)"
        assert not ISSUE_NUMBER.search(cell.source), f"{path.name}, cell {index}: an internal issue number: " \
            f"{ISSUE_NUMBER.search(cell.source)[0]!r}"


@pytest.mark.parametrize("src", build.sources(), ids=lambda p: p.stem)
def test_solutions_notebook_has_no_instructions_for_filling_in_stubs(src):
    nb = nbformat.read(build.outputs_for(src)["solutions"], as_version=4)
    text = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    assert "NotImplementedError" not in text and "yours to fill in" not in text
    learner = nbformat.read(build.outputs_for(src)["learner"], as_version=4)
    if "NotImplementedError" in src.read_text().split("# %%", 2)[1]:
        pytest.fail("put learner instructions in a markdown cell tagged 'learner', not in the title cell")
    assert any("this copy is yours to fill in" in cell.source for cell in learner.cells[:3])


def test_model_descriptions_name_no_issue_numbers():
    for name, description in {**models.SHIPPED, **models.ONLINE}.items():
        assert not ISSUE_NUMBER.search(description), f"{name}: {description}"
