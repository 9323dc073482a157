"""The single-source build: generated files are fresh, strict about markers, and learner notebooks are clean."""

import shutil
import typing

import nbformat
import pytest
import torch

from utils import build
from utils.checking import Status

pytestmark = pytest.mark.tooling


def test_generated_files_are_fresh():
    stale = build.stale_files(build.render_all())
    assert not stale, "stale generated files (run `make build`): " + ", ".join(
        str(p.relative_to(build.ROOT)) for p in stale)


def test_editing_a_source_without_rebuilding_is_detected(tmp_path):
    from utils.chapters import REGISTRY, chapters

    declared = [build.ROOT / REGISTRY, *(path for c in chapters() for path in c.files().values())]
    for src in build.sources():
        for path in [src, *build.outputs_for(src).values(), *declared]:
            (tmp_path / path.relative_to(build.ROOT)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, tmp_path / path.relative_to(build.ROOT))
    assert build.stale_files(build.render_all(tmp_path)) == []
    src = build.sources(tmp_path)[0]
    src.write_text(src.read_text().replace("## 1. Splitting", "## 1. Splitting (edited)"))
    stale = build.stale_files(build.render_all(tmp_path))
    assert {p.name for p in stale} == {f"{src.stem}.ipynb", f"{src.stem}_solutions.ipynb"}


@pytest.mark.parametrize("source, error", [
    ("def f():\n    # SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    # END SOLUTION\n", "without"),
    ("def f():\n    # SOLUTION\n    # SOLUTION\n", "nested"),
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "unknown marker"),
])
def test_markers_are_strict(source, error):
    with pytest.raises(build.BuildError, match=error):
        build.split_solution(source, "cell")


def test_stub_replaces_the_solution_at_its_indentation():
    solution, learner = build.split_solution("def f(x):\n    # SOLUTION\n    return x\n    # END SOLUTION", "c")
    assert solution == "def f(x):\n    return x"
    assert learner == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"


@pytest.mark.parametrize("src", build.sources(), ids=lambda p: p.stem)
def test_learner_notebook_is_clean_and_marked_generated(src):
    paths = build.outputs_for(src)
    nb = nbformat.read(paths["learner"], as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "learner notebooks carry no outputs"
    assert "do not edit" in nb.cells[1].source
    assert "do not edit" in paths["module"].read_text().split("\n", 4)[2]
    checks = [c.source for c in code if c.source.startswith("check(")]
    stubs = [c.source for c in code if "raise NotImplementedError()" in c.source]
    assert len(stubs) == len(checks) > 0


@pytest.mark.parametrize("src", build.sources(), ids=lambda p: p.stem)
def test_every_exercise_has_a_checker_with_mutants_and_typed_signature(src):
    """Each exercise: jaxtyping on its tensor arguments and return, a checker, >= 3 device-independent mutants."""
    import importlib

    module = importlib.import_module(f"solutions.{build.chapter_name(src)}")
    tests = importlib.import_module(f"checks.{build.chapter_name(src)}")
    functions = build.exercise_names(src)
    assert set(functions) == set(tests.chapter.exercises), "exercise cells and checkers disagree on the exercises"
    for name in functions:
        hints = typing.get_type_hints(getattr(module, name))
        bare = [arg for arg, h in hints.items() if h is torch.Tensor]
        assert not bare, f"{name}: annotate {bare} with jaxtyping (Float[Tensor, 'batch pos d_model'])"
        mutants = [m for m in tests.chapter.exercises[name].mutants if m.only_on is None]
        assert len(mutants) >= 3, f"{name} has {len(mutants)} device-independent mutants; at least 3 are required"
        assert all(m.expect != Status.PASS for m in mutants)
