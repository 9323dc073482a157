"""A chapter is declared once (chapters/chapters.toml): the declarations agree with the files, a disagreement fails
the build naming the file and the fix, and what derives from the registry (README table, Colab links, notebook
runs, grading) follows it."""

import shutil

import pytest

from utils import chapters as registry
from utils.build import ROOT, BuildError, render_all

pytestmark = pytest.mark.tooling


def test_the_declarations_agree_with_the_files():
    assert registry.problems() == []
    assert [c.stem for c in registry.chapters()] == sorted(p.stem for p in (ROOT / "chapters" / "src").glob("*.py"))


def _scratch(tmp_path, declaration: str, files: dict[str, str]):
    (tmp_path / "chapters" / "src").mkdir(parents=True)
    (tmp_path / "checks" / "mutants").mkdir(parents=True)
    (tmp_path / "chapters" / "chapters.toml").write_text(declaration)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    registry._read.cache_clear()
    return tmp_path


DECLARATION = '[[chapter]]\nnumber = 7\nslug = "probing"\ntopic = "linear probes"\nmodel = "mlp4l"\n'


def test_a_renamed_slug_is_a_build_error_naming_every_other_file(tmp_path):
    root = _scratch(tmp_path, DECLARATION.replace('"probing"', '"probes"'), {
        "chapters/src/07_probing.py": "# %% [markdown]\n# # Chapter 7\n",
        "checks/ch07_probing.py": 'chapter = Chapter("ch07_probing", mutants={})\n',
        "checks/mutants/ch07_probing.py": "MUTANTS = {}\n"})
    found = registry.problems(root)
    text = "\n".join(found)
    for name in ("chapters/src/07_probes.py", "checks/ch07_probes.py", "checks/mutants/ch07_probes.py",
                 "chapters/src/07_probing.py is not declared"):
        assert name in text, text
    with pytest.raises(BuildError, match="declarations and files disagree"):
        render_all(root)
    registry._read.cache_clear()


def test_a_checker_module_that_names_another_chapter_is_a_build_error(tmp_path):
    root = _scratch(tmp_path, DECLARATION, {
        "chapters/src/07_probing.py": "# %% [markdown]\n# # Chapter 7\n",
        "checks/ch07_probing.py": 'chapter = Chapter("ch07_probe", mutants={})\n',
        "checks/mutants/ch07_probing.py": "MUTANTS = {}\n"})
    assert registry.problems(root) == ['checks/ch07_probing.py must declare chapter = Chapter("ch07_probing", '
                                       '...) (the name declared in chapters/chapters.toml)']
    registry._read.cache_clear()


def test_the_readme_section_is_generated_from_the_registry():
    readme = (ROOT / "README.md").read_text()
    assert registry.readme_section() in readme, "run `python -m utils.chapters --readme` (or `make build`)"
    for c in registry.chapters():
        assert f"| {c.number:02d} | {c.topic} (" in readme


def test_the_grader_and_the_check_cells_find_every_chapter_through_the_registry():
    for name in registry.chapter_names():
        assert registry.checker(name).name == name
    with pytest.raises(KeyError, match="no chapter named"):
        registry.spec("ch42_nothing")


def test_the_template_declaration_is_a_valid_chapter(tmp_path):
    shutil.copy(ROOT / "templates" / "chapter" / "chapters.toml", tmp_path / "decl.toml")
    text = (tmp_path / "decl.toml").read_text()
    assert "[[chapter]]" in text and 'slug = "template"' in text
