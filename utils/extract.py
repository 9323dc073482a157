"""Take a learner's functions out of a notebook without running the notebook top to bottom.

Only the top-level statements that define things are kept from each code cell: imports, ``def``/``class``,
and constants (UPPER_CASE names, or names bound to a literal). IPython magics and shell lines (``%pip``,
``!ls``, ``x = !ls``) are turned into Python by IPython's own transformer and then dropped, because they are
not definitions. Each cell is parsed on its own, so a cell with a syntax error loses only its own
definitions, and each kept statement runs on its own, so a failing import loses only that import.

Example:
    >>> sub = load_submission("alice.ipynb")
    >>> sub.problems                 # ["cell 7, line 3: SyntaxError: invalid syntax", ...]
    >>> sub.function("split_heads")  # the learner's function, or CheckFailure(MISSING, near misses)
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat

from utils.checking import CheckFailure, Status

KEPT_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class UnreadableNotebook(Exception):
    """The file is not a notebook we can read (not JSON, not valid nbformat, not a file)."""


@dataclass
class Problem:
    """Something in the notebook that lost definitions: where, and what."""

    cell: int  # 1-based index among all cells, as Jupyter shows them
    line: int
    message: str
    names: list[str] = field(default_factory=list)  # functions/classes defined in that cell (lost)

    def __str__(self) -> str:
        lost = f" (defines {', '.join(self.names)})" if self.names else ""
        return f"cell {self.cell}, line {self.line}: {self.message}{lost}"


@dataclass
class Submission:
    """The definitions extracted from one notebook."""

    path: Path
    namespace: dict[str, Any]
    problems: list[Problem]
    chapter: str | None
    reference_names: set[str] = field(default_factory=set)  # names bound by imports from solutions/

    def function(self, name: str) -> Callable:
        """The learner's function ``name``, or :class:`CheckFailure` (MISSING) saying why it is absent."""
        obj = self.namespace.get(name)
        if callable(obj):
            return obj
        lost = [p for p in self.problems if name in p.names]
        if lost:
            raise CheckFailure(Status.MISSING, f"{name} could not be defined: {lost[0]}")
        candidates = [k for k, v in self.namespace.items() if callable(v) and not k.startswith("_")]
        near = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
        near += [k for k in candidates if k.lower() == name.lower() and k not in near]
        found = f"; near misses: {', '.join(near)}" if near else ""
        if obj is not None:
            raise CheckFailure(Status.MISSING, f"{name} is a {type(obj).__name__}, not a function{found}")
        raise CheckFailure(Status.MISSING, f"no function named {name} in the notebook{found}")


def _to_python(source: str) -> str:
    """Cell source with IPython syntax (magics, shell escapes, help) turned into plain Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _is_constant(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assign):
        targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets, value = [node.target], node.value
    else:
        return False
    if not all(isinstance(t, ast.Name) for t in targets):
        return False
    if all(t.id.isupper() for t in targets):
        return True
    try:
        ast.literal_eval(value)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def _reference_imports(node: ast.stmt) -> set[str]:
    """Names a statement binds to the reference solutions (``from solutions.ch00 import f``, ``import solutions``)."""
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "solutions":
        return {alias.asname or alias.name for alias in node.names}
    if isinstance(node, ast.Import):
        return {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] == "solutions"}
    return set()


def _defined_names(source: str) -> list[str]:
    """Best-effort names of top-level defs in a cell that does not parse (for 'lost' messages)."""
    names = []
    for line in source.splitlines():
        for kw in ("def ", "async def ", "class "):
            if line.startswith(kw):
                names.append(line[len(kw):].split("(")[0].split(":")[0].strip())
    return names


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read and validate a notebook, raising :class:`UnreadableNotebook` with the reason."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except Exception as e:  # missing file, a folder, bad encoding
        raise UnreadableNotebook(f"{path.name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return parse_notebook(text, path.name)


def parse_notebook(text: str, name: str = "notebook") -> nbformat.NotebookNode:
    """Parse and validate a notebook's text, raising :class:`UnreadableNotebook` with the reason."""
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # JSON errors, validation errors
        raise UnreadableNotebook(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return nb


def load_submission(path: str | Path, text: str | None = None) -> Submission:
    """Extract a learner's definitions from the notebook at ``path`` (see the module docstring); with ``text``, from
    that text (the grading worker receives notebooks as text, never as a path it could read).

    Kept statements run here (a constant may call ``torch.set_default_dtype``): torch's global state and random
    generator are put back afterwards, so extraction changes nothing for later learners.
    """
    import torch

    from utils.isolation import GlobalState

    saved, rng = GlobalState.current(), torch.get_rng_state()
    try:
        nb = read_notebook(path) if text is None else parse_notebook(text, Path(path).name)
        return _load_submission(path, nb)
    finally:
        saved.apply()
        torch.set_rng_state(rng)


def _load_submission(path: str | Path, nb: nbformat.NotebookNode) -> Submission:
    namespace: dict[str, Any] = {"__name__": "submission"}
    problems: list[Problem] = []
    reference_names: set[str] = set()
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        filename = f"<submission cell {index}>"
        try:
            tree = ast.parse(_to_python(cell.source), filename=filename)
        except SyntaxError as e:
            problems.append(Problem(index, e.lineno or 0, f"SyntaxError: {e.msg}", _defined_names(cell.source)))
            continue
        for node in tree.body:
            if not (isinstance(node, KEPT_NODES) or _is_constant(node)):
                continue
            reference_names |= _reference_imports(node)
            try:
                code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec")
                exec(code, namespace)
            except Exception as e:  # a failing import or a decorator that raises loses only this statement
                name = [node.name] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else []
                problems.append(Problem(index, node.lineno, f"{type(e).__name__}: {e}", name))
    chapter = nb.metadata.get("circuit_school", {}).get("chapter")
    return Submission(Path(path), namespace, problems, chapter, reference_names)
