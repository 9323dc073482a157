"""Build every chapter from its single source (``chapters/src/NN_slug.py``, jupytext percent format).

One source gives three generated files, all marked "generated — do not edit":

- ``chapters/NN_slug.ipynb``: the learner notebook (stubs, check cells, hint + solution dropdowns, no outputs);
- ``chapters/solutions/NN_slug_solutions.ipynb``: the same lesson with the solutions in place;
- ``solutions/chNN_slug.py``: the importable reference module (cells tagged ``module`` + exercise cells).

Source conventions (strict: anything else is a build error naming the file and line):

- a code cell that contains ``# SOLUTION`` ... ``# END SOLUTION`` is an exercise; the lines between the markers
  are replaced in the learner notebook by ``raise NotImplementedError()``; markers do not nest and must pair;
- every exercise cell is followed by a markdown cell tagged ``hint`` (``# %% [markdown] tags=["hint"]``);
- the build adds, after each exercise, a ``check(fn)`` cell per function the cell defines;
- code cells tagged ``module`` (imports, constants) also go into the solutions module;
- each hint cell is the one home of its exercise's hint: the learner notebook shows it in a dropdown and the
  solutions module carries it as ``HINTS[function name]``, which the checker appends to a failure it cannot
  name (``tests/framework.py``);
- a code cell tagged ``parameters`` keeps the tag (papermill's convention: ``utils.run_notebooks --param``);
- a markdown cell tagged ``learner`` (instructions for filling in the stubs) goes into the learner notebook only.

Usage: ``python -m utils.build`` writes the files; ``python -m utils.build --check`` lists stale ones, exit 1.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Callable

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
from utils.colab import REPO_URL  # noqa: E402  (Colab clones it; one place, $CIRCUIT_SCHOOL_REPO overrides)
BEGIN, END = "# SOLUTION", "# END SOLUTION"
KEPT_TAGS = {"parameters"}  # papermill's tag: `python -m utils.run_notebooks --param NAME=VALUE` overrides that cell
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]

SETUP_CELL = '''\
# Setup: run this cell first. Works in Jupyter, VS Code and Colab. On Colab it clones the course from
# {repo_url} (or from $CIRCUIT_SCHOOL_REPO when set), installs the
# runtime pins Colab lacks (never torch or ipykernel) and says when the runtime must restart (utils/colab.py).
import os
import subprocess
import sys
from pathlib import Path

if "google.colab" in sys.modules:
    COURSE = Path(os.environ.get("CIRCUIT_SCHOOL_DIR", "/content/circuit-school"))
    if not COURSE.exists():
        url = os.environ.get("CIRCUIT_SCHOOL_REPO", "{repo_url}")
        subprocess.run(["git", "clone", "--depth=1", url, str(COURSE)], check=True)
    sys.path.insert(0, str(COURSE))
    from utils.colab import install_runtime_requirements

    install_runtime_requirements(COURSE)
    os.chdir(COURSE / "chapters")

ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "utils" / "checking.py").exists())
sys.path.insert(0, str(ROOT))

from utils.notebook import start_chapter

device, check = start_chapter("{chapter}")'''


class BuildError(Exception):
    pass


def chapter_name(src: Path) -> str:
    """``chapters/src/00_pytorch_einops.py`` -> ``ch00_pytorch_einops`` (the module and test-file name)."""
    return f"ch{src.stem}"


def outputs_for(src: Path, root: Path = ROOT) -> dict[str, Path]:
    return {
        "learner": root / "chapters" / f"{src.stem}.ipynb",
        "solutions": root / "chapters" / "solutions" / f"{src.stem}_solutions.ipynb",
        "module": root / "solutions" / f"{chapter_name(src)}.py",
    }


def split_solution(source: str, where: str) -> tuple[str, str]:
    """(solution code, learner code) of a cell: markers removed, or the marked lines replaced by the stub."""
    solution, learner, inside = [], [], False
    for n, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise BuildError(f"{where}, line {n}: nested {BEGIN!r}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            learner += [indent + s for s in STUB]
        elif stripped == END:
            if not inside:
                raise BuildError(f"{where}, line {n}: {END!r} without {BEGIN!r}")
            inside = False
        elif stripped.startswith("#") and "SOLUTION" in stripped.upper():
            raise BuildError(f"{where}, line {n}: unknown marker {stripped!r} (use {BEGIN!r} / {END!r})")
        else:
            solution.append(line)
            if not inside:
                learner.append(line)
    if inside:
        raise BuildError(f"{where}: {BEGIN!r} is never closed")
    return "\n".join(solution), "\n".join(learner)


def _functions(code: str, where: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise BuildError(f"{where}, line {e.lineno}: {e.msg}") from e
    names = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    if not names:
        raise BuildError(f"{where}: an exercise cell must define a function")
    return names


def _py_string(text: str, width: int = 90) -> str:
    """``text`` as a Python expression of string literals of at most ``width`` characters each, one per line."""
    pieces, piece = [], ""
    for char in text:
        if len(repr(piece + char)) > width:
            pieces.append(piece)
            piece = ""
        piece += char
    pieces.append(piece)
    if len(pieces) == 1:
        return repr(pieces[0])
    return "(\n" + "".join(f"        {piece!r}\n" for piece in pieces) + "    )"


def _dropdown(title: str, body: str) -> str:
    return f"<details><summary>{title}</summary>\n\n{body.strip()}\n\n</details>"


def _notebook(cells: list, chapter: str, kind: str, rel: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "circuit_school": {"chapter": chapter, "kind": kind, "generated_from": str(rel)},
    }
    for i, (cell_type, source, *tags) in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source) if cell_type == "code" else nbformat.v4.new_markdown_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        cell.id = f"{kind}-{i:03d}"
        nb.cells.append(cell)
    return nbformat.writes(nb) + "\n"


def render_chapter(src: Path, root: Path = ROOT) -> dict[Path, str]:
    """The generated files of one chapter source (under ``root``), as {path: text}."""
    chapter, rel = chapter_name(src), src.relative_to(root)
    cells = jupytext.read(src, fmt="py:percent").cells
    if not cells or cells[0].cell_type != "markdown":
        raise BuildError(f"{rel}: the first cell must be the chapter's title (markdown)")
    banner = f"*Generated from `{rel}` by `make build`: do not edit this file in the repository; edit the source."
    setup = SETUP_CELL.replace("{repo_url}", REPO_URL).replace("{chapter}", chapter)
    learner = [("markdown", cells[0].source), ("markdown", banner + " (Learners: this copy is yours to fill in.)*"),
               ("code", setup)]
    solutions = [("markdown", cells[0].source), ("markdown", banner + "*"), ("code", setup)]
    module = [f'"""Reference solutions for chapter {chapter}.\n\nGenerated from {rel} by `make build`: do not edit; '
              'edit the source and rebuild.\n"""']
    hints: dict[str, str] = {}  # function name -> its hint (the markdown of the exercise's hint cell)
    pending = None  # (where, solution code, function names) of an exercise still waiting for its hint cell
    for index, cell in enumerate(cells[1:], start=2):
        where, tags = f"{rel}, cell {index}", cell.metadata.get("tags", [])
        if cell.cell_type == "markdown":
            if "hint" in tags:
                if pending is None:
                    raise BuildError(f"{where}: a hint cell must follow an exercise cell")
                learner.append(("markdown", _dropdown("💡 Hint", cell.source) + "\n\n"
                                + _dropdown("✅ Solution", f"```python\n{pending[1]}\n```")))
                solutions.append(("markdown", _dropdown("💡 Hint", cell.source)))
                hints.update(dict.fromkeys(pending[2], cell.source.strip()))
                pending = None
                continue
            if BEGIN in cell.source:
                raise BuildError(f"{where}: solution markers are only allowed in code cells")
        if pending is not None:
            raise BuildError(f"{pending[0]}: an exercise cell must be followed by a markdown cell tagged 'hint'")
        if cell.cell_type != "code":
            learner.append(("markdown", cell.source))
            if "learner" not in tags:  # learner-only instructions ("replace each raise NotImplementedError...")
                solutions.append(("markdown", cell.source))
            continue
        solution_code, learner_code = split_solution(cell.source, where)
        if solution_code != cell.source:  # an exercise
            names = _functions(solution_code, where)
            checks = "\n".join(f"check({name})" for name in names)
            learner += [("code", learner_code), ("code", checks)]
            solutions += [("code", solution_code), ("code", checks)]
            module.append(solution_code)
            pending = (where, solution_code, names)
        else:
            kept = [t for t in tags if t in KEPT_TAGS]
            learner.append(("code", cell.source, *kept))
            solutions.append(("code", cell.source, *kept))
            if "module" in tags:
                module.append(cell.source)
    if pending is not None:
        raise BuildError(f"{pending[0]}: an exercise cell must be followed by a markdown cell tagged 'hint'")
    entries = "".join(f"    {name!r}: {_py_string(text)},\n" for name, text in hints.items())
    module.append("# The hint of each exercise, from its hint cell: shown by the checker when a failure matches no\n"
                  f"# known mistake.\nHINTS = {{\n{entries}}}")
    out = outputs_for(src, root)
    return {
        out["learner"]: _notebook(learner, chapter, "learner", rel),
        out["solutions"]: _notebook(solutions, chapter, "solutions", rel),
        out["module"]: "\n\n\n".join(chunk.strip() for chunk in module) + "\n",
    }


def exercise_names(src: Path) -> list[str]:
    """The functions defined by the exercise cells (those with solution markers) of a chapter source."""
    names = []
    for index, cell in enumerate(jupytext.read(src, fmt="py:percent").cells, start=1):
        if cell.cell_type == "code":
            solution, _ = split_solution(cell.source, f"{src.name}, cell {index}")
            if solution != cell.source:
                names += _functions(solution, f"{src.name}, cell {index}")
    return names


def sources(root: Path = ROOT) -> list[Path]:
    return sorted((root / "chapters" / "src").glob("[0-9][0-9]_*.py"))


def render_all(root: Path = ROOT, only: str | None = None) -> dict[Path, str]:
    """Every generated file (of the chapters whose source name contains ``only``, if given). The chapters' declarations
    (``chapters/chapters.toml``) must agree with their files: a :class:`BuildError` names each file and its fix."""
    from utils.chapters import problems, readme_with_section

    found = problems(root)
    if found:
        raise BuildError("the chapters' declarations and files disagree:\n  " + "\n  ".join(found))
    files: dict[Path, str] = {}
    readme = root / "README.md"
    if readme.exists() and only is None:
        files[readme] = readme_with_section(readme.read_text(), root)
    for src in sources(root):
        if only is None or only in src.stem:
            files.update(render_chapter(src, root))
    return files


def stale_files(files: dict[Path, str]) -> list[Path]:
    """The files (as rendered by :func:`render_all`) that differ on disk or do not exist yet."""
    return [p for p, text in files.items() if not p.exists() or p.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list stale generated files and exit 1 if any")
    parser.add_argument("--only", default=None, help="build only chapters whose source name contains this")
    args = parser.parse_args(argv)
    return sync_generated(lambda: render_all(only=args.only), check=args.check)


def sync_generated(render: Callable[[], dict[Path, str]], check: bool) -> int:
    """The command line of a builder: render the generated files, then list the stale ones (``check``: exit 1 if
    any) or write them. A build error is printed and exits 2."""
    try:
        files = render()
    except Exception as e:  # a builder's own BuildError, with the file and line
        if type(e).__name__ != "BuildError":
            raise
        print(f"build error: {e}", file=sys.stderr)
        return 2
    stale = stale_files(files)
    if check:
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)} (run `make build`)")
        return 1 if stale else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    print(f"{len(files)} generated files, {len(stale)} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
