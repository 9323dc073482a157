"""Build the course's quick reference from its single source, ``reference/src/quick_reference.py``.

One source (jupytext percent format) gives two generated files, both marked "generated — do not edit":

- ``reference/quick_reference.ipynb``: the notebook form (no outputs);
- ``reference/quick_reference.html``: a printable one-page HTML, self-contained (inline CSS, no scripts, no
  network address needed to show it).

Source conventions (anything else is a build error naming the cell):

- the first cell is the title (markdown); a markdown cell starting with ``## `` starts a section;
- a section's ``**Learn it:**`` line lists where the course teaches it: ``ch02/logits_to_ave_logit_diff · ch04``
  (a chapter's exercise, or a chapter); rendered as links to ``chapters/NN_slug.ipynb``;
- a markdown cell tagged ``changed`` is a note on a snippet of the quick-reference sheets the course was
  commissioned from (ARENA-style TransformerLens / PyTorch / SAE-Lens cheat sheets) that is stale or subtly wrong
  for the pinned versions: a ``**Sheet:**`` line with the sheet's snippet, then a one-line ``**Now:**`` saying
  what changed;
- every code cell runs, in order, in one namespace, on the shipped models (``tests/tooling/test_reference.py``);
- a code cell tagged ``online`` holds ``gpt2-small`` lines: the tests run each of its statements up to the
  network boundary, the notebook runs it only when ``ONLINE = True``; the next cell must be a plain code cell,
  its shipped-model equivalent;
- a code cell tagged ``setup`` is course plumbing: in the notebook and the tests, not in the HTML.

Usage: ``python -m utils.build_reference`` writes the files; ``--check`` lists stale ones and exits 1.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from utils.build import sync_generated
from utils.colab import read_pins

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path("reference/src/quick_reference.py")
NOTEBOOK = Path("reference/quick_reference.ipynb")
HTML_PAGE = Path("reference/quick_reference.html")
TAGS = {"changed", "online", "setup"}
SHOWN_PINS = ("transformer-lens", "sae-lens", "circuitsvis", "torch", "einops", "jaxtyping")
# Chapters not written yet, and the exercises the reference links to in them. Links into a chapter whose source
# exists must name one of its exercises (tests/tooling/test_reference.py); remove a chapter from here once written.
PLANNED: dict[str, tuple[str, list[str]]] = {}  # e.g. {"07": ("07_topic", ["an_exercise"])}
LEARN_IT = re.compile(r"^\*\*Learn it:\*\*\s*(.+)$", re.MULTILINE)
LINK_ITEM = re.compile(r"ch(\d\d)(?:/([A-Za-z_][A-Za-z0-9_]*))?")


class BuildError(Exception):
    pass


@dataclass(frozen=True)
class Cell:
    kind: str  # "markdown" or "code"
    source: str
    tags: tuple[str, ...] = ()
    where: str = ""  # "reference/src/quick_reference.py, cell 12", for error messages

    def tagged(self, tag: str) -> bool:
        return tag in self.tags


@dataclass(frozen=True)
class Link:
    """Where the course teaches an entry: ``ch02/logits_to_ave_logit_diff`` or ``ch02``."""

    chapter: str  # "02"
    exercise: str | None
    stem: str  # "02_caching": the chapter's notebook is chapters/<stem>.ipynb

    @property
    def href(self) -> str:  # relative to reference/
        return f"../chapters/{self.stem}.ipynb"

    @property
    def text(self) -> str:
        return f"ch{self.chapter} · {self.exercise}" if self.exercise else f"chapter {self.chapter}"


@dataclass(frozen=True)
class Note:
    """A stale or subtly wrong snippet of the sheets, and what changed."""

    sheet: str  # the sheet's snippet (the first code span of the **Sheet:** line)
    now: str  # the one-line note (the text after **Now:**)
    section: str


@dataclass
class Section:
    title: str
    cells: list[Cell] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "s-" + re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


@dataclass
class Reference:
    title: Cell
    preamble: list[Cell]  # cells before the first section (setup, introduction)
    sections: list[Section]
    stems: dict[str, str]  # chapter number -> notebook stem, for the Learn-it links

    def cells(self) -> list[Cell]:
        return [self.title, *self.preamble, *(c for s in self.sections for c in s.cells)]

    def notes(self) -> list[Note]:
        return [parse_note(c, s.title) for s in self.sections for c in s.cells if c.tagged("changed")]

    def links(self) -> list[Link]:
        return [link for s in self.sections for link in s.links]


def chapter_stems(root: Path = ROOT) -> dict[str, str]:
    """``{"02": "02_caching", ...}``: the chapters that exist, then the planned ones."""
    stems = {number: stem for number, (stem, _) in PLANNED.items()}
    stems.update({p.stem[:2]: p.stem for p in sorted((root / "chapters" / "src").glob("[0-9][0-9]_*.py"))})
    return stems


def parse_links(line: str, where: str, stems: dict[str, str]) -> list[Link]:
    """The links of a Learn-it line.

    Example:
        >>> [link.href for link in parse_links("ch02/logit_lens · ch04", "here", {"02": "02_caching", "04": "04_x"})]
        ['../chapters/02_caching.ipynb', '../chapters/04_x.ipynb']
    """
    links = []
    for item in (part.strip() for part in line.split("·")):
        match = LINK_ITEM.fullmatch(item)
        if not match:
            raise BuildError(f"{where}: {item!r} in a Learn-it line is not chNN or chNN/exercise_name")
        if match[1] not in stems:
            raise BuildError(f"{where}: no chapter {match[1]} (chapters/src/{match[1]}_*.py) and none planned")
        links.append(Link(match[1], match[2], stems[match[1]]))
    return links


def parse_note(cell: Cell, section: str) -> Note:
    sheet = re.search(r"^\*\*Sheet:\*\*\s*`([^`]+)`", cell.source, re.MULTILINE)
    now = re.search(r"^\*\*Now:\*\*(.+?)(?:\n\s*\n|\Z)", cell.source, re.MULTILINE | re.DOTALL)
    if not sheet or not now:
        raise BuildError(f"{cell.where}: a 'changed' note needs a '**Sheet:** `snippet`' line and a '**Now:**' line")
    return Note(sheet[1], " ".join(now[1].split()), section)  # the Now paragraph, as one line


def parse(path: Path = ROOT / SOURCE, root: Path = ROOT) -> Reference:
    """The reference's cells, grouped into sections, checked against the conventions above."""
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    stems = chapter_stems(root)
    cells = [Cell(c.cell_type, c.source, tuple(c.metadata.get("tags", [])), f"{rel}, cell {i}")
             for i, c in enumerate(jupytext.read(path, fmt="py:percent").cells, start=1)]
    if not cells or cells[0].kind != "markdown" or not cells[0].source.startswith("# "):
        raise BuildError(f"{rel}: the first cell must be the title (markdown, '# ...')")
    preamble: list[Cell] = []
    sections: list[Section] = []
    for i, cell in enumerate(cells[1:], start=1):
        unknown = set(cell.tags) - TAGS
        if unknown:
            raise BuildError(f"{cell.where}: unknown tags {sorted(unknown)} (known: {sorted(TAGS)})")
        if cell.tagged("online"):
            following = cells[i + 1] if i + 1 < len(cells) else None
            if cell.kind != "code" or following is None or following.kind != "code" or following.tags:
                raise BuildError(f"{cell.where}: an 'online' code cell must be followed by its shipped-model "
                                 "equivalent (a plain code cell)")
        if cell.kind == "markdown" and cell.source.startswith("## "):
            title = cell.source.splitlines()[0][3:].strip()
            links = [link for line in LEARN_IT.findall(cell.source) for link in parse_links(line, cell.where, stems)]
            sections.append(Section(title, [], links))
        if sections:
            sections[-1].cells.append(cell)
        else:
            preamble.append(cell)
        if cell.tagged("changed"):
            parse_note(cell, sections[-1].title if sections else "")
    titles = [s.title for s in sections]
    if len(set(titles)) != len(titles):
        raise BuildError(f"{rel}: two sections have the same title")
    return Reference(cells[0], preamble, sections, stems)


def _with_links(text: str, stems: dict[str, str]) -> str:
    """``text`` with its Learn-it line written as markdown links to the chapter notebooks."""

    def links(match: re.Match) -> str:
        rendered = " · ".join(f"[{link.text}]({link.href})" for link in parse_links(match[1], "markdown", stems))
        return f"**Learn it:** {rendered}"

    return LEARN_IT.sub(links, text)


def _banner(target: str) -> str:
    return (f"*Generated from `{SOURCE}` by `make build`: do not edit this {target} in the repository; edit the "
            "source.*")


def render_notebook(ref: Reference) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "circuit_school": {"kind": "reference", "generated_from": str(SOURCE)},
    }
    cells = [("markdown", ref.title.source), ("markdown", _banner("notebook"))]
    for cell in ref.cells()[1:]:
        if cell.kind == "markdown":
            cells.append(("markdown", _with_links(cell.source, ref.stems)))
        elif cell.tagged("online"):
            body = "\n".join("    " + line if line else line for line in cell.source.splitlines())
            cells.append(("code", "if ONLINE:  # gpt2-small from the Hugging Face hub (ONLINE is set in the first "
                          "code cell)\n" + body))
        else:
            cells.append(("code", cell.source))
    for i, (kind, source) in enumerate(cells):
        new = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        cell = new(source)
        cell.id = f"reference-{i:03d}"
        nb.cells.append(cell)
    return nbformat.writes(nb) + "\n"


CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --rule: #d9dde5; --code: #f6f7f9; --warn: #fff5e0; --warnrule: #e0a030;
        --online: #eef4ff; --onlinerule: #6b8fd6; }
* { box-sizing: border-box; }
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0;
       padding: 1rem 1.2rem; }
header h1 { font-size: 1.9em; margin: 0 0 .2rem; }
header p { margin: .2rem 0; color: var(--muted); }
nav.toc { font-size: .92em; margin: .6rem 0 1rem; columns: 16rem auto; }
nav.toc a { color: var(--ink); text-decoration: none; display: block; }
main { columns: 42rem auto; column-gap: 1.4rem; column-rule: 1px solid var(--rule); }
section { break-inside: avoid-column; margin: 0 0 .9rem; }
section.long { break-inside: auto; }
h2 { font-size: 1.18em; margin: 0 0 .3rem; padding-bottom: .1rem; border-bottom: 2px solid var(--ink); }
p, ul, ol { margin: .25rem 0; }
ul, ol { padding-left: 1.2rem; }
code { font: 11px/1.35 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
p code, li code, td code { background: var(--code); padding: 0 .2em; border-radius: 3px; }
.code { background: var(--code); border-left: 3px solid var(--rule); margin: .3rem 0; padding: .3rem .45rem;
        overflow-x: auto; break-inside: avoid; }
.code pre { margin: 0; font: 11px/1.35 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
            white-space: pre-wrap; }
.code.online { background: var(--online); border-left-color: var(--onlinerule); }
.label { font-size: .78em; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin-top: .35rem; }
.changed { background: var(--warn); border-left: 3px solid var(--warnrule); padding: .25rem .45rem; margin: .3rem 0;
           break-inside: avoid; }
.changed p { margin: .1rem 0; }
.learn { font-size: .92em; color: var(--muted); }
.learn a { color: #2456b3; }
table { border-collapse: collapse; font-size: .92em; margin: .3rem 0; }
td, th { border: 1px solid var(--rule); padding: .1rem .35rem; text-align: left; vertical-align: top; }
footer { color: var(--muted); font-size: 11px; margin-top: 1rem; }
@media print {
  @page { size: A4 landscape; margin: 8mm; }
  body { font-size: 8.5px; padding: 0; }
  code, .code pre { font-size: 7.2px; }
  nav.toc { display: none; }
  main { columns: 2; column-gap: 5mm; }
  a { color: inherit; text-decoration: none; }
}
"""


MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def _code_html(source: str, kind: str) -> str:
    source = re.sub(r"\n{3,}", "\n\n", source)  # one blank line between definitions is enough on paper
    code = highlight(source, PythonLexer(), HtmlFormatter(nowrap=True))
    return f'<div class="code {kind}"><pre><code>{code.rstrip()}</code></pre></div>'


def _cell_html(cell: Cell, previous: Cell | None, stems: dict[str, str]) -> str:
    """One cell of a section: prose (its Learn-it line apart), a note box, or a code block with its label."""
    if cell.kind == "markdown":
        body = cell.source.split("\n", 1)[1] if cell.source.startswith("## ") else cell.source
        if cell.tagged("changed"):
            return f'<div class="changed">{MARKDOWN.render("⚠️ " + body.strip())}</div>'
        learn = LEARN_IT.search(body)
        parts = [MARKDOWN.render(LEARN_IT.sub("", body).strip())]
        if learn:
            parts.append(f'<div class="learn">{MARKDOWN.render(_with_links(learn[0], stems))}</div>')
        return "\n".join(parts)
    if cell.tagged("online"):
        return '<div class="label">online · gpt2-small</div>\n' + _code_html(cell.source, "online")
    label = '<div class="label">offline · shipped models</div>\n' if previous and previous.tagged("online") else ""
    return label + _code_html(cell.source, "")


def _section_html(section: Section, stems: dict[str, str]) -> str:
    shown = [c for c in section.cells if not c.tagged("setup")]
    body = "\n".join(_cell_html(c, shown[i - 1] if i else None, stems) for i, c in enumerate(shown))
    long = sum(len(c.source.splitlines()) for c in shown) > 45
    css_class = ' class="long"' if long else ""  # a long section may break across columns
    return f'<section id="{section.anchor}"{css_class}>\n<h2>{html.escape(section.title)}</h2>\n{body}\n</section>'


def render_html(ref: Reference, root: Path = ROOT) -> str:
    pins = {p.name: p.version for p in read_pins(root / "requirements.txt")}
    versions = " · ".join(f"{name} {pins[name]}" for name in SHOWN_PINS if name in pins)
    title, _, subtitle = ref.title.source.partition("\n")
    intro = "\n".join(MARKDOWN.render(c.source) for c in ref.preamble if c.kind == "markdown")
    toc = "\n".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in ref.sections)
    sections = "\n".join(_section_html(s, ref.stems) for s in ref.sections)
    notes = "\n".join(f'<li><a href="#{Section(n.section).anchor}">{html.escape(n.section)}</a>: '
                      f"<code>{html.escape(n.sheet)}</code></li>" for n in ref.notes())
    style = CSS + HtmlFormatter(style="default").get_style_defs(".code")
    return f"""<!DOCTYPE html>
<!-- {_banner("page")} -->
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title[2:].strip())}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{html.escape(title[2:].strip())}</h1>
{MARKDOWN.render(subtitle.strip())}
<p>Checked against {versions}.</p>
<p>{MARKDOWN.renderInline(_banner("page"))}</p>
</header>
{intro}
<nav class="toc">{toc}</nav>
<main>
{sections}
<section id="s-changed">
<h2>What changed since the sheets ({len(ref.notes())} notes)</h2>
<ul>
{notes}
</ul>
</section>
</main>
<footer>Circuit School · every code block on this page runs in <code>make test</code> on the shipped models.</footer>
</body>
</html>
"""


def render_all(root: Path = ROOT) -> dict[Path, str]:
    """The generated files, as {path: text}."""
    ref = parse(root / SOURCE, root)
    return {root / NOTEBOOK: render_notebook(ref), root / HTML_PAGE: render_html(ref, root)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list stale generated files and exit 1 if any")
    args = parser.parse_args(argv)
    return sync_generated(render_all, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
