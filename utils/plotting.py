"""Figures in the chapters: offline everywhere, set up once by the setup cell (``setup_figures``).

Plotly 7 emits only its own mime type, which JupyterLab and VS Code render and every other viewer drops
(nbconvert's HTML export, GitHub, a report). After :func:`setup_figures`, each figure's output carries

- ``application/vnd.plotly.v1+json``, for JupyterLab and VS Code, as before;
- ``text/html``: the figure drawn by plotly.js, which the setup cell's own output embeds **once per notebook**
  (no CDN, no network), with a one-line caption inside that shows only where scripts do not run (GitHub, an
  untrusted notebook) and says where to see the figure;
- ``image/png`` too, when ``CS_FIGURE_PNG=1`` and kaleido finds a Chrome/Chromium (plotly 7 draws static
  images only through a browser, which PyPI does not ship: so it is opt-in, for notebooks meant for GitHub).

circuitsvis views always use the package's inlined bundle (its own ``_repr_html_`` switches to a CDN when
online, after a one-second probe of the network), with the same kind of caption for viewers that run no scripts.

:func:`layer_head_heatmap` draws ``[layer, head]`` tables with one tick per layer and head (``L1``, ``H0``;
hover says ``L1H0``). :func:`expect` turns an exercise's result into a CPU tensor for a figure, or stops the
demo cell with "fix `logit_lens` first: ..." when the result has the wrong shape or non-finite values.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import sys
import uuid
import warnings
from typing import Any, Sequence

RENDERER = "circuit_school"
PNG_ENV = "CS_FIGURE_PNG"  # "1": also embed a static PNG of every figure (needs kaleido and a Chrome/Chromium)
FIGURE_HEIGHT = 480  # px, when the figure does not set its own height

_CAPTION_STYLE = ("font: 13px sans-serif; color: #555; border: 1px dashed #bbb; padding: 6px 10px; "
                  "margin: 4px 0;")


def _caption(kind: str, title: str) -> str:
    what = f"{kind} <b>{html.escape(title)}</b>" if title else kind
    return (f"<div class='cs-figure-fallback' style='{_CAPTION_STYLE}'>&#128202; {what}: this view needs JavaScript. "
            "In Jupyter, run the cell (or trust the notebook); elsewhere, open the notebook in Jupyter, VS Code or "
            "its HTML export (<code>jupyter nbconvert --to html</code>), which work offline.</div>")


# --------------------------------------------------------------------------------------------------------
# plotly
# --------------------------------------------------------------------------------------------------------
def plotlyjs_bundle() -> dict[str, str]:
    """The output that loads plotly.js into the page once (the setup cell displays it)."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    source = get_plotlyjs()
    assert "</script" not in source.lower(), "plotly.js cannot be inlined in a <script> element"
    return {"text/html": (
        "<script type='text/javascript'>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script type='text/javascript'>/* plotly.js {get_plotlyjs_version()}, embedded once by the setup cell so "
        f"that the figures below need no network */\n{source}</script>")}


def _json_for_script(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    import plotly.io as pio

    return pio.to_json(value, validate=False).replace("</", "<\\/")


def _title(fig_dict: dict) -> str:
    title = (fig_dict.get("layout") or {}).get("title")
    if isinstance(title, dict):
        title = title.get("text")
    return re.sub(r"<[^>]+>", " ", str(title or "")).strip()


def figure_html(fig_dict: dict, png: bytes | None = None, div_id: str | None = None) -> str:
    """The figure as an HTML fragment that plotly.js (already on the page) draws, with a no-script caption
    (``div_id``: the element's id, for a page that must be byte-stable; default: a random one)."""
    div_id = div_id or f"cs-fig-{uuid.uuid4().hex[:12]}"
    layout = fig_dict.get("layout") or {}
    height = layout.get("height") or FIGURE_HEIGHT
    fallback = _caption("Interactive figure", _title(fig_dict))
    if png is not None:
        fallback = (f"<img alt='{html.escape(_title(fig_dict))}' style='max-width: 100%;' "
                    f"src='data:image/png;base64,{base64.b64encode(png).decode()}'/>")
    figure = _json_for_script({"data": fig_dict.get("data", []), "layout": layout})
    config = json.dumps({"responsive": True, "displaylogo": False})
    return (f"<div id='{div_id}' class='cs-figure' style='width: 100%;'>{fallback}</div>\n"
            "<script type='text/javascript'>\n"
            "(function () {\n"
            f"  var gd = document.getElementById('{div_id}');\n"
            "  if (!gd || !window.Plotly) { return; }  // no plotly.js on this page: the caption stays\n"
            f"  var fig = {figure};\n"
            f"  gd.replaceChildren(); gd.style.height = '{int(height)}px';\n"
            f"  window.Plotly.newPlot(gd, fig.data, fig.layout, {config});\n"
            "})();\n"
            "</script>")


def _png(fig_dict: dict) -> bytes | None:
    if os.environ.get(PNG_ENV) != "1":
        return None
    try:
        import plotly.io as pio

        return pio.to_image(fig_dict, format="png", validate=False)
    except Exception:  # no kaleido, or no browser for it: the HTML is still there
        return None


def _offline_renderer():
    from plotly.io._base_renderers import MimetypeRenderer, PlotlyRenderer

    class OfflineRenderer(MimetypeRenderer):
        """plotly's mime type (JupyterLab, VS Code) + offline HTML (everything else) [+ PNG, opt-in]."""

        def to_mimebundle(self, fig_dict):
            bundle = PlotlyRenderer().to_mimebundle(dict(fig_dict))
            png = _png(fig_dict)
            bundle["text/html"] = figure_html(fig_dict, png)
            if png is not None:
                bundle["image/png"] = base64.b64encode(png).decode()
            return bundle

    return OfflineRenderer()


# --------------------------------------------------------------------------------------------------------
# circuitsvis
# --------------------------------------------------------------------------------------------------------
_CV_DIV = re.compile(r'^\s*<div id="(circuits-vis-[0-9a-f-]+)" style="([^"]*)"\s*/>')


def circuitsvis_html(rendered) -> str:
    """A circuitsvis view with its bundle inlined (never the CDN), and a caption where scripts do not run."""
    source = rendered.local_src
    match = _CV_DIV.match(source)
    if match is None:  # another circuitsvis layout: keep it as it is, offline
        return source
    div_id, style = match.groups()
    caption = _caption("Interactive circuitsvis view", "")
    source = source.replace("CircuitsVis.render(",
                            f"document.getElementById('{div_id}').replaceChildren();\n    CircuitsVis.render(", 1)
    return f'<div id="{div_id}" style="{style}">{caption}</div>' + source[match.end():]


# --------------------------------------------------------------------------------------------------------
# Set-up
# --------------------------------------------------------------------------------------------------------
def setup_figures() -> None:
    """Configure plotly and circuitsvis for the notebook that calls it (a no-op outside IPython).

    Displays plotly.js once (the output of the calling cell), makes every later ``fig.show()`` emit plotly's
    mime type plus offline HTML, and renders circuitsvis views from their inlined bundle. On Colab plotly
    keeps Colab's own renderer (each Colab output lives in its own frame, so a page-wide plotly.js cannot
    help there).
    """
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    # tqdm.auto (imported by transformer_lens) warns in a red box when ipywidgets is missing, then falls back to
    # text progress bars: that fallback is what we want (widget bars do not survive an HTML export either).
    warnings.filterwarnings("ignore", message="IProgress not found")
    import plotly.io as pio

    if "google.colab" not in sys.modules:
        pio.renderers[RENDERER] = _offline_renderer()
        pio.renderers.default = RENDERER
        display(plotlyjs_bundle(), raw=True)
    try:
        from circuitsvis.utils.render import RenderedHTML
    except ImportError:
        return
    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(RenderedHTML, circuitsvis_html)
    formatters["text/plain"].for_type(RenderedHTML, lambda obj, p, cycle: p.text("<circuitsvis view>"))


# --------------------------------------------------------------------------------------------------------
# Figures the chapters share
# --------------------------------------------------------------------------------------------------------
def layer_head_heatmap(values, *, title: str, color: str = "", midpoint: float | None = 0.0,
                       zmin: float | None = None, zmax: float | None = None, colorscale: str = "RdBu",
                       text_auto: str | bool = ".2f", y_labels: Sequence[str] | None = None,
                       x_labels: Sequence[str] | None = None, y_title: str = "layer", x_title: str = "head"):
    """A heatmap of a ``[layer, head]`` table: one tick per row and column (``L0, L1`` / ``H0, H1``, not
    -0.5 … 1.5), the value on each cell, and ``L1H0 = value`` on hover. Returns the figure (call ``.show()``).

    ``y_labels`` / ``x_labels`` relabel the rows and columns (e.g. ``["L0H0", "L0H1"]`` for a head × head table);
    ``midpoint=None`` uses a sequential scale (give ``colorscale="Blues"``, and ``zmin``/``zmax`` if you like).
    """
    import plotly.express as px

    table = expect(values, "the table", dims=2)
    rows, cols = table.shape
    y_labels = list(y_labels) if y_labels is not None else [f"L{i}" for i in range(rows)]
    x_labels = list(x_labels) if x_labels is not None else [f"H{j}" for j in range(cols)]
    if (len(y_labels), len(x_labels)) != (rows, cols):
        raise ValueError(f"{len(y_labels)} x {len(x_labels)} labels for a {rows} x {cols} table")
    options: dict[str, Any] = dict(color_continuous_scale=colorscale, zmin=zmin, zmax=zmax)
    if midpoint is not None:
        options["color_continuous_midpoint"] = midpoint
    fig = px.imshow(table.numpy(), x=x_labels, y=y_labels, text_auto=text_auto, aspect="auto", title=title,
                    labels=dict(x=x_title, y=y_title, color=color), **options)
    joined = "%{y}%{x}" if x_labels[0].startswith("H") and y_labels[0].startswith("L") else "%{y} → %{x}"
    fig.update_traces(hovertemplate=f"{joined} = %{{z:.3f}}<extra></extra>")
    fig.update_xaxes(type="category", side="bottom")
    fig.update_yaxes(type="category", autorange="reversed")
    # At most MAX_FIGURE_WIDTH pixels wide: a notebook page shows about that much without a scrollbar, and a wide
    # table (one column per position) is read by its last columns too.
    fig.update_layout(height=max(340, 180 + 80 * rows), width=min(MAX_FIGURE_WIDTH, max(460, 260 + 110 * cols)))
    return fig


MAX_FIGURE_WIDTH = 960


def shared_scale(*tables, midpoint: float | None = 0.0) -> dict[str, float]:
    """``zmin`` / ``zmax`` for heatmaps meant to be compared, so that one colour means one value in all of them: the
    range of every table together (symmetric around ``midpoint`` when it is given). Pass it on with ``**``."""
    import torch

    values = torch.cat([expect(t, "the table").flatten() for t in tables])
    if midpoint is None:
        return dict(zmin=values.min().item(), zmax=values.max().item())
    span = (values - midpoint).abs().max().item() or 1.0
    return dict(zmin=midpoint - span, zmax=midpoint + span)


class ExerciseResultError(ValueError):
    """A demo cell got an unusable result from an exercise: the message names the exercise to fix."""


def expect(value, exercise: str, *, shape: Sequence[int] | None = None, dims: int | None = None,
           names: str = ""):
    """``value`` (an exercise's result) as a detached CPU float tensor, ready for a figure.

    Raises :class:`ExerciseResultError` ("fix `logit_lens` first: ...") when it is not a tensor, has another
    shape than ``shape`` (or another number of dimensions than ``dims``), or holds NaN/inf, so that a demo cell
    says which exercise to fix instead of failing inside plotly. ``names`` names the dimensions in the message.
    """
    import torch

    fix = f"fix `{exercise}` first" if exercise != "the table" else "cannot draw this table"
    if isinstance(value, (list, tuple)):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            pass
    if not isinstance(value, torch.Tensor):
        raise ExerciseResultError(f"{fix}: it returned {type(value).__name__}, not a tensor (run its check cell)")
    value = value.detach().float().cpu()
    named = f" [{names}]" if names else ""
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ExerciseResultError(f"{fix}: it returned shape {tuple(value.shape)}, expected {tuple(shape)}{named} "
                                  "(run its check cell to see why)")
    if dims is not None and value.ndim != dims:
        raise ExerciseResultError(f"{fix}: it returned {value.ndim} dimensions {tuple(value.shape)}, expected "
                                  f"{dims}{named} (run its check cell to see why)")
    if not torch.isfinite(value).all():
        raise ExerciseResultError(f"{fix}: its result holds NaN or inf (run its check cell to see why)")
    return value
