"""Checks of an executed solutions notebook, run by tests/tooling/test_notebooks.py on the one execution of each
chapter (each notebook is executed once per test session):

- figures are for every viewer: exported to HTML with nbconvert, the notebook shows every plotly figure and
  circuitsvis view without the network (every plotly output carries offline HTML besides plotly's mime type;
  plotly.js is embedded once; circuitsvis inlines its bundle; no output loads a script from a URL). Where Chromium
  is installed, chapter 4's HTML is also rendered headless, offline, and every figure must have been drawn
  (plotly's SVG in each figure, no fallback caption left in a circuitsvis view);
- it is quiet: no red boxes (stderr: warnings, progress bars), no errors, no stray reprs.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import nbformat

from tests.tooling.browser import CHROMIUM, dump_dom
from utils.chapters import chapters

PLOTLY = "application/vnd.plotly.v1+json"
NETWORK = re.compile(r"""(src\s*=\s*["']?(https?:)?//|from\s+["']https?://|import\s*\(?\s*["']https?://|cdn\.plot\.ly|"""
                     r"""unpkg\.com|jsdelivr|cdnjs)""", re.I)


def _outputs(nb):
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            yield index, cell, output


def _html(nb) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


def check_figures_offline(nb: nbformat.NotebookNode, name: str, render: bool = True) -> None:
    """Every figure of the executed notebook ``nb`` (a chapter's ``name``) is in its HTML export, offline; with
    ``render``, chapter 4's export is also drawn in headless Chromium."""
    plotly_js = [output for _, _, output in _outputs(nb)
                 if "embedded once by the setup cell" in output.get("data", {}).get("text/html", "")]
    assert len(plotly_js) == 1, "plotly.js must be embedded exactly once, by the setup cell"
    figures, views = [], []
    for index, cell, output in _outputs(nb):
        data = output.get("data", {})
        html = data.get("text/html", "")
        if PLOTLY in data:
            assert "class='cs-figure'" in html, f"cell {index}: a plotly figure without offline HTML:\n{cell.source}"
            figures.append(re.search(r"id='(cs-fig-[0-9a-f]+)'", html)[1])
        if "CircuitsVis.render(" in html:
            views.append(re.search(r'id="(circuits-vis-[0-9a-f-]+)"', html)[1])
            assert "cs-figure-fallback" in html, f"cell {index}: a circuitsvis view without its no-script caption"
        if html and output is not plotly_js[0]:
            assert not NETWORK.search(html), f"cell {index}: an output loads from the network: " \
                f"{NETWORK.search(html)[0]!r}"
    page = _html(nb)
    assert page.count("embedded once by the setup cell") == 1
    for element_id in figures + views:
        assert page.count(element_id) >= 2, f"{element_id} is missing from the HTML export"  # the div + its script
    spec = next(c for c in chapters() if name.startswith(c.stem))
    if "plotly" in spec.figures:
        assert figures, f"{spec.stem} declares plotly figures (chapters/chapters.toml) and shows none"
    if "circuitsvis" in spec.figures:
        assert views, f"{spec.stem} declares circuitsvis views (chapters/chapters.toml) and shows none"
    if render and name.startswith("04"):  # the chapter with the most figures of both kinds; ~20 s of Chromium
        _render_offline(page, figures, views, name)


def _render_offline(page: str, figures: list[str], views: list[str], name: str) -> None:
    """Render the HTML in headless Chromium (no network) and check that every figure was drawn."""
    if CHROMIUM is None or not (figures or views):
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name.replace(".ipynb", ".html")
        path.write_text(page)
        dom = dump_dom(path)
    assert dom, "Chromium rendered nothing"
    for figure in figures:
        drawn = re.search(rf"id=\"{figure}\"[^>]*>(.{{0,3000}})", dom, re.S)
        assert drawn and "main-svg" in drawn[1], f"plotly figure {figure} was not drawn offline"
    for view in views:
        drawn = re.search(rf"id=\"{view}\"[^>]*>(.{{0,600}})", dom, re.S)
        assert drawn and "cs-figure-fallback" not in drawn[1] and drawn[1].strip(), f"circuitsvis {view} was not drawn"


def check_quiet(nb: nbformat.NotebookNode) -> None:
    """No red boxes (stderr: warnings, progress bars), no errors, no stray reprs of objects a cell ends with."""
    for index, cell, output in _outputs(nb):
        where = f"cell {index}:\n{cell.source[:300]}"
        assert output.output_type != "error", f"{where}\nraised {output.ename}: {output.evalue}"
        assert not (output.output_type == "stream" and output.name == "stderr"), f"{where}\nwrote to stderr: " \
            f"{output.text[:500]}"
        if output.output_type == "execute_result":
            text = output.get("data", {}).get("text/plain", "")
            assert not re.search(r" object at 0x|^<[\w.]+>$|grad_mode|^None$", text), f"{where}\nshows a stray " \
                f"repr: {text[:200]}"
