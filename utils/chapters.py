"""The course's chapters, declared once (``chapters/chapters.toml``), and where each chapter's checkers are found.

Everything that needs to know the chapters asks here: the build (:func:`problems`), the check cells and grading
(:func:`checker`), the notebook tests (:func:`chapters`: models, figures), the Colab links and the README's chapter
table (:func:`readme_section`, written by ``python -m utils.chapters --readme``).

Example:
    >>> [c.name for c in chapters()][:2]
    ['ch00_pytorch_einops', 'ch01_tokenization']
    >>> spec("ch04_induction").also_on
    ('mlp4l',)
"""

from __future__ import annotations

import argparse
import functools
import importlib
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "chapters/chapters.toml"
README_START = ("<!-- chapters: generated from chapters/chapters.toml by `python -m utils.chapters --readme`; "
                "do not edit -->")
README_END = "<!-- end of the generated chapters -->"


@dataclass(frozen=True)
class ChapterSpec:
    """One chapter's declaration (see ``chapters/chapters.toml``)."""

    number: int
    slug: str
    topic: str
    model: str
    also_on: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    status: str = "ready"

    @property
    def stem(self) -> str:
        """``04_induction``: the name of the source and of the notebooks."""
        return f"{self.number:02d}_{self.slug}"

    @property
    def name(self) -> str:
        """``ch04_induction``: the name of the solutions module, the checker module and the mutants module."""
        return f"ch{self.stem}"

    def files(self, root: Path = ROOT) -> dict[str, Path]:
        """The hand-written files of the chapter."""
        return {"source": root / "chapters" / "src" / f"{self.stem}.py",
                "checkers": root / "checks" / f"{self.name}.py",
                "mutants": root / "checks" / "mutants" / f"{self.name}.py"}


class ChapterMismatch(Exception):
    """A chapter's declaration and its files disagree."""


def chapters(root: Path = ROOT, status: str | None = "ready") -> list[ChapterSpec]:
    """The declared chapters (with ``status``; None: all), in order."""
    return [c for c in _read(root) if status is None or c.status == status]


@functools.lru_cache(maxsize=None)
def _read(root: Path) -> tuple[ChapterSpec, ...]:
    data = tomllib.loads((root / REGISTRY).read_text())
    found = []
    for entry in data.get("chapter", []):
        entry = {**entry, "also_on": tuple(entry.get("also_on", ())), "figures": tuple(entry.get("figures", ()))}
        found.append(ChapterSpec(**entry))
    return tuple(sorted(found, key=lambda c: c.number))


def chapter_names(root: Path = ROOT) -> list[str]:
    """``["ch00_pytorch_einops", "ch01_tokenization", ...]``: every ready chapter."""
    return [c.name for c in chapters(root)]


def spec(name: str, root: Path = ROOT) -> ChapterSpec:
    for c in chapters(root, status=None):
        if c.name == name:
            return c
    raise KeyError(f"no chapter named {name!r} in {REGISTRY} (chapters: {', '.join(chapter_names(root))})")


def problems(root: Path = ROOT) -> list[str]:
    """Every way the declarations and the chapters' files disagree, each with the file and the fix."""
    found = []
    declared = chapters(root, status=None)
    numbers = [c.number for c in declared]
    for number in sorted({n for n in numbers if numbers.count(n) > 1}):
        found.append(f"{REGISTRY}: chapter {number:02d} is declared twice")
    for c in declared:
        if c.status not in ("ready", "planned"):
            found.append(f"{REGISTRY}: chapter {c.stem} has status {c.status!r}; use \"ready\" or \"planned\"")
        if c.status != "ready":
            continue
        for kind, path in c.files(root).items():
            if not path.exists():
                found.append(f"{REGISTRY} declares {c.stem}, but its {kind} file {path.relative_to(root)} does not "
                             f"exist: create it, or fix the slug in {REGISTRY}")
        checkers = c.files(root)["checkers"]
        if checkers.exists() and f'Chapter("{c.name}"' not in checkers.read_text():
            found.append(f"{checkers.relative_to(root)} must declare chapter = Chapter(\"{c.name}\", ...) (the name "
                         f"declared in {REGISTRY})")
    ready = {c.stem for c in declared if c.status == "ready"}
    for src in sorted((root / "chapters" / "src").glob("[0-9][0-9]_*.py")):
        if src.stem not in ready:
            found.append(f"chapters/src/{src.name} is not declared in {REGISTRY}: add a [[chapter]] with number = "
                         f"{int(src.stem[:2])} and slug = \"{src.stem[3:]}\" (or rename the file)")
    return found


@functools.lru_cache(maxsize=None)
def checker(name: str):
    """The checkers of chapter ``name`` (a :class:`utils.checkers.Chapter`; ``checks/<name>.py`` imported once per
    process).

    This is the one place that finds a chapter's checker module; a module that declares another chapter name, or
    known mistakes of an exercise it does not have, is a :class:`ChapterMismatch` naming the files."""
    c = spec(name)
    module = importlib.import_module(f"checks.{c.name}")
    files = {kind: path.relative_to(ROOT) for kind, path in c.files().items()}
    declared = getattr(getattr(module, "chapter", None), "name", None)
    if declared != c.name:
        raise ChapterMismatch(f"{files['checkers']} declares Chapter({declared!r}) but {REGISTRY} names the chapter "
                              f"{c.name!r}: make them agree")
    unknown = sorted(set(module.chapter.mutants) - set(module.chapter.exercises))
    if unknown:
        raise ChapterMismatch(f"{files['mutants']} has known mistakes for {', '.join(unknown)}, which "
                              f"{files['checkers']} does not declare as exercises: rename them or add the exercises")
    return module.chapter


def exercise_count(c: ChapterSpec, root: Path = ROOT) -> int:
    from utils.build import exercise_names

    return len(exercise_names(c.files(root)["source"]))


def readme_section(root: Path = ROOT) -> str:
    """The README's generated chapter table and Colab links (between :data:`README_START` and :data:`README_END`)."""
    from utils.colab import readme_colab_lines

    rows = ["| chapter | topic | runs on | status |", "|---|---|---|---|"]
    for c in chapters(root, status=None):
        exercises = f" ({exercise_count(c, root)} exercises)" if c.status == "ready" else ""
        models = " ".join(f"`{m}`" for m in (c.model, *c.also_on) if m != "none") or "no model"
        rows.append(f"| {c.number:02d} | {c.topic}{exercises} | {models} | {c.status} |")
    return "\n".join([README_START, *rows, "", "Open a chapter in Colab:", "", *readme_colab_lines(root),
                      README_END])


def readme_with_section(text: str, root: Path = ROOT) -> str:
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ChapterMismatch(f"README.md has no generated chapter section ({README_START} ... {README_END})")
    return pattern.sub(lambda _: readme_section(root), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="rewrite the README's generated chapter section")
    args = parser.parse_args(argv)
    found = problems()
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if args.readme:
        readme = ROOT / "README.md"
        readme.write_text(readme_with_section(readme.read_text()))
    else:
        print(readme_section())
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
