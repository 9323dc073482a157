"""Figures are for every viewer: each chapter's solutions notebook, executed headless (as `make notebooks` does)
and exported to HTML with nbconvert, shows every plotly figure and circuitsvis view without the network; and an
executed notebook is quiet (no warning boxes, no stderr, no stray reprs).

The figures are checked in the executed notebook (every plotly output carries offline HTML besides plotly's mime
type; plotly.js is embedded once; circuitsvis inlines its bundle; no output loads a script from a URL) and in
the exported HTML. Where Chromium is installed, chapter 4's HTML is also rendered headless, offline, and every
figure must have been drawn (plotly's SVG in each figure, no fallback caption left in a circuitsvis view).

Chapters 0-4 run here (about 70 s on 2 busy CPU cores); tests/tooling/test_notebooks.py runs them too, for the
check cells.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest

from utils import run_notebooks

pytestmark = pytest.mark.tooling

# Chapters 0-4 (about 70 s of execution). Chapters 5-6 pass too but take ~11 min more on 2 CPU cores, on top of
# test_notebooks.py running them already: checking their figures belongs in that one execution.
NOTEBOOKS = sorted(p for p in (run_notebooks.ROOT / "chapters" / "solutions").glob("*_solutions.ipynb")
                   if p.name[:2] in {"00", "01", "02", "03", "04"})
PLOTLY = "application/vnd.plotly.v1+json"
NETWORK = re.compile(r"""(src\s*=\s*["']?(https?:)?//|from\s+["']https?://|import\s*\(?\s*["']https?://|cdn\.plot\.ly|"""
                     r"""unpkg\.com|jsdelivr|cdnjs)""", re.I)


@functools.cache
def executed(name: str) -> nbformat.NotebookNode:
    """The solutions notebook ``name`` executed offline on CPU (once per test session)."""
    out = Path(tempfile.mkdtemp(prefix="cs-figures-"))
    saved = {k: os.environ.get(k) for k in ("CS_DEVICE", "HF_HUB_OFFLINE")}
    os.environ.update(CS_DEVICE="cpu", HF_HUB_OFFLINE="1")
    try:
        result = run_notebooks.run_notebook(run_notebooks.ROOT / "chapters" / "solutions" / name, 600, out)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    assert result["error"] is None or "check cell" in result["error"], result  # failing checks: test_notebooks
    return nbformat.read(out / name, as_version=4)


def _outputs(nb):
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            yield index, cell, output


def _html(nb) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS], ids=lambda n: n.removesuffix("_solutions.ipynb"))
def test_every_figure_is_in_the_html_export_without_network(name):
    nb = executed(name)
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
    if name.startswith(("02", "03", "04")):
        assert figures and views, "chapters 2-4 draw plotly figures and circuitsvis views"
    if name.startswith("04"):  # the chapter with the most figures of both kinds; ~20 s of Chromium
        _render_offline(page, figures, views, name)


def _render_offline(page: str, figures: list[str], views: list[str], name: str) -> None:
    """Render the HTML in headless Chromium (no network) and check that every figure was drawn."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None or not (figures or views):
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name.replace(".ipynb", ".html")
        path.write_text(page)
        offline = ["--disable-background-networking", "--disable-component-update", "--proxy-server=127.0.0.1:9"]
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", *offline,
                              f"--user-data-dir={tmp}/profile", "--virtual-time-budget=20000", "--dump-dom",
                              path.as_uri()], capture_output=True, text=True, timeout=300).stdout
    assert dom, "Chromium rendered nothing"
    for figure in figures:
        drawn = re.search(rf"id=\"{figure}\"[^>]*>(.{{0,3000}})", dom, re.S)
        assert drawn and "main-svg" in drawn[1], f"plotly figure {figure} was not drawn offline"
    for view in views:
        drawn = re.search(rf"id=\"{view}\"[^>]*>(.{{0,600}})", dom, re.S)
        assert drawn and "cs-figure-fallback" not in drawn[1] and drawn[1].strip(), f"circuitsvis {view} was not drawn"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS], ids=lambda n: n.removesuffix("_solutions.ipynb"))
def test_executed_notebook_is_quiet(name):
    """No red boxes (stderr: warnings, progress bars), no errors, no stray reprs of objects a cell ends with."""
    for index, cell, output in _outputs(executed(name)):
        where = f"cell {index}:\n{cell.source[:300]}"
        assert output.output_type != "error", f"{where}\nraised {output.ename}: {output.evalue}"
        assert not (output.output_type == "stream" and output.name == "stderr"), f"{where}\nwrote to stderr: " \
            f"{output.text[:500]}"
        if output.output_type == "execute_result":
            text = output.get("data", {}).get("text/plain", "")
            assert not re.search(r" object at 0x|^<[\w.]+>$|grad_mode|^None$", text), f"{where}\nshows a stray " \
                f"repr: {text[:200]}"
