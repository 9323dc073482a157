"""The class at a glance: what a class got wrong, from a gradebook's results.

Written next to the gradebook (``utils/grading.py``), or again from its ``grades.json``::

    python -m utils.class_report OUT      # OUT/grades.json -> OUT/mistakes.csv, OUT/report.html

- ``mistakes.csv``: one row per (chapter, exercise, named mistake or status): how many learners, their share of the
  learners graded on that exercise, and who (sorted);
- ``report.html``: one page that needs no network (plotly.js inlined once). Per chapter: the answers per exercise
  (bars: passed, a known mistake, another wrong answer, an error, not attempted); for each exercise the named
  mistakes ranked by how many learners made them, then the other wrong answers grouped by the kind of difference
  (shape, dtype, type, NaN, values in which output field, the exception raised); a learners × exercises heatmap;
- :func:`top_lines`: the most common wrong answers of the class, one line each, at the top of the page and after
  the grading summary in the terminal.

The same results give byte-identical files, whatever their order.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from utils.checking import Status
from utils.grading import Result

# How a (learner, exercise) looks in the figures, in this order (bottom to top of the bars).
CATEGORIES = {"passed": "#2e8b57", "known mistake": "#e0a526", "other wrong answer": "#d9534f",
              "error": "#7b3f99", "not attempted": "#c8c8c8"}
_ERRORS = {Status.ERROR, Status.TIMEOUT, Status.CRASHED, Status.CHANGED_MODEL}
_NOT_ATTEMPTED = {Status.NOT_ATTEMPTED, Status.MISSING, Status.UNREADABLE}
_COMPARED = {Status.WRONG_VALUES, Status.WRONG_SHAPE, Status.WRONG_DTYPE, Status.WRONG_DEVICE, Status.WRONG_TYPE,
             Status.NAN}
_UNATTEMPTED_WORDS = {s.value.lower().replace("_", " ") for s in _NOT_ATTEMPTED}  # their difference()
_FIELD = re.compile(r"\boutput(?:\[[^\]]*\])*")  # "output", "output[0]", "output['logits'][1]"
_RAISED = re.compile(r"\braised ([A-Za-z_][\w.]*)")  # "raised KeyError: 'x'"


def _named(results: Iterable[Result]) -> list[Result]:
    """The results in report order (chapter, exercise, learner)."""
    return sorted(results, key=lambda r: (r.chapter, r.exercise, r.learner))


def category(r: Result) -> str:
    if r.passed:
        return "passed"
    if r.mistake:
        return "known mistake"
    if r.status in _ERRORS:
        return "error"
    return "not attempted" if r.status in _NOT_ATTEMPTED else "other wrong answer"


def difference(r: Result) -> str:
    """The kind of an unnamed wrong answer: "wrong values in output[0]", "wrong shape", "raised KeyError", ..."""
    first_line = r.message.split("\n")[0]
    if r.status == Status.ERROR:
        raised = _RAISED.search(first_line)
        return f"raised {raised[1]}" if raised else "error"
    words = {Status.NAN: "NaN"}.get(r.status, r.status.value.lower().replace("_", " "))
    field = _FIELD.search(first_line) if r.status in _COMPARED else None
    return f"{words} in {field[0]}" if field else words


@dataclass(frozen=True)
class Group:
    """The learners who answered one exercise the same way (the same named mistake, status or difference)."""

    chapter: str
    exercise: str
    kind: str  # "mistake", "status" or "difference"
    what: str
    learners: tuple[str, ...]
    of: int  # learners graded on the exercise
    category: str  # of its answers (one of CATEGORIES: a key says which, so every answer of a group has the same)

    @property
    def count(self) -> int:
        return len(self.learners)

    @property
    def share(self) -> float:
        return self.count / self.of


def _by_exercise(results: Iterable[Result]) -> dict[tuple[str, str], list[Result]]:
    grouped: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in sorted(results, key=lambda r: (r.chapter, r.exercise, r.learner)):
        grouped[r.chapter, r.exercise].append(r)
    return dict(sorted(grouped.items()))


def groups(results: Iterable[Result], key: Callable[[Result], tuple[str, str]]) -> list[Group]:
    """Each exercise's results grouped by ``key`` (-> (kind, what)), the largest group first."""
    found = []
    for (chapter, exercise), rows in _by_exercise(results).items():
        by_key: dict[tuple[str, str], list[Result]] = defaultdict(list)
        for r in rows:
            by_key[key(r)].append(r)
        found += [Group(chapter, exercise, kind, what, tuple(r.learner for r in same), len(rows), category(same[0]))
                  for (kind, what), same in by_key.items()]
    return sorted(found, key=lambda g: (g.chapter, g.exercise, -g.count, g.kind, g.what))


def status_key(r: Result) -> tuple[str, str]:
    """mistakes.csv's rows: the named mistake of a wrong answer, else the status."""
    return ("mistake", r.mistake) if r.mistake and not r.passed else ("status", r.status.value)


def report_key(r: Result) -> tuple[str, str]:
    """The report's groups: the named mistake, else the kind of difference (PASS as a status)."""
    if r.passed:
        return "status", r.status.value
    return ("mistake", r.mistake) if r.mistake else ("difference", difference(r))


# --------------------------------------------------------------------------------------------------------
# mistakes.csv and the top lines
# --------------------------------------------------------------------------------------------------------
def mistakes_csv(results: Iterable[Result]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["chapter", "exercise", "kind", "mistake_or_status", "count", "share", "learners"])
    for g in groups(_named(results), status_key):
        writer.writerow([g.chapter, g.exercise, g.kind, g.what, g.count, f"{g.share:.3f}", ";".join(g.learners)])
    return buffer.getvalue()


def _top(results: Iterable[Result], n: int) -> list[Group]:
    """The most common wrong answers (named or not; not the unattempted), most learners first."""
    wrong = [g for g in groups(_named(results), report_key)
             if g.kind == "mistake" or (g.kind == "difference" and g.what not in _UNATTEMPTED_WORDS)]
    return sorted(wrong, key=lambda g: (-g.count, -g.share, g.kind != "mistake", g.chapter, g.exercise, g.what))[:n]


def _line(g: Group) -> str:
    return (f"`{g.exercise}` ({g.chapter}): {round(100 * g.share)}% — {g.what} "
            f"({g.count} of {g.of} learner{'s' if g.of != 1 else ''})")


def top_lines(results: Iterable[Result], n: int = 5) -> list[str]:
    """The class's ``n`` most common wrong answers, one line each, e.g.
    "`attention_scores` (ch02_caching): 41% — forgetting the 1/sqrt(d_head) scale (17 of 41 learners)"."""
    return [_line(g) for g in _top(results, n)]


# --------------------------------------------------------------------------------------------------------
# report.html
# --------------------------------------------------------------------------------------------------------
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #222; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 40px; }
h3 { margin: 24px 0 6px; font-size: 15px; }
table { border-collapse: collapse; margin: 4px 0 12px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; white-space: nowrap; }
tr td:first-child { border-left-width: 4px; }
details summary { cursor: pointer; }
code { background: #f4f4f4; padding: 0 3px; }
.muted { color: #666; }
"""


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    source = get_plotlyjs()
    assert "</script" not in source.lower(), "plotly.js cannot be inlined in a <script> element"
    return f"<script type='text/javascript'>/* plotly.js {get_plotlyjs_version()}, inlined */\n{source}</script>"


def _figure(fig, div_id: str) -> str:
    from utils.plotting import figure_html

    return figure_html(fig.to_dict(), div_id=div_id)


def _bars(chapter: str, by_exercise: dict[str, list[Result]]):
    import plotly.graph_objects as go

    exercises = list(by_exercise)
    fig = go.Figure()
    for name, color in CATEGORIES.items():
        counts = [sum(category(r) == name for r in rows) for rows in by_exercise.values()]
        shares = [100 * c / len(rows) for c, rows in zip(counts, by_exercise.values())]
        fig.add_bar(name=name, x=exercises, y=shares, marker_color=color, customdata=counts,
                    text=[f"{round(s)}%" if c else "" for s, c in zip(shares, counts)], textposition="inside",
                    hovertemplate="%{x}: %{customdata} learners (%{y:.0f}%)<extra>" + name + "</extra>")
    fig.update_layout(barmode="stack", title=f"{chapter}: answers per exercise", yaxis_title="% of learners",
                      yaxis_range=[0, 100], height=400, uniformtext_minsize=10, uniformtext_mode="hide")
    return fig


def _heatmap(chapter: str, by_exercise: dict[str, list[Result]]):
    import plotly.graph_objects as go

    exercises = list(by_exercise)
    learners = sorted({r.learner for rows in by_exercise.values() for r in rows})
    cells = {(r.learner, r.exercise): r for rows in by_exercise.values() for r in rows}
    names = list(CATEGORIES)
    z, hover = [], []
    for learner in learners:
        row = [cells.get((learner, e)) for e in exercises]
        z.append([names.index(category(r)) if r else None for r in row])
        hover.append([html.escape(f"{learner} · {e}: {r.status.value}" + (f" — {r.mistake}" if r.mistake else ""))
                      if r else "" for e, r in zip(exercises, row)])
    k = len(names)
    scale = [[(i + edge) / k, color] for i, color in enumerate(CATEGORIES.values()) for edge in (0, 1)]
    fig = go.Figure(go.Heatmap(z=z, x=exercises, y=[html.escape(x) for x in learners], text=hover, zmin=-0.5,
                               zmax=k - 0.5, colorscale=scale, xgap=1, ygap=1,
                               hovertemplate="%{text}<extra></extra>", showscale=False))
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(type="category", side="top")
    fig.update_layout(title=f"{chapter}: learners × exercises (colors as in the bars)",
                      height=min(2000, 200 + 18 * len(learners)), margin=dict(t=120))
    return fig


def _group_rows(rows: list[Group]) -> str:
    lines = []
    for g in rows:
        who = "".join(f"<li>{html.escape(learner)}</li>" for learner in g.learners)
        lines.append(f"<tr class='{g.kind}' data-exercise='{html.escape(g.chapter)}.{html.escape(g.exercise)}' "
                     f"data-count='{g.count}'><td style='border-left-color: {CATEGORIES[g.category]}'>"
                     f"{html.escape(g.what)}</td><td class='n'>{g.count}</td>"
                     f"<td class='n'>{round(100 * g.share)}%</td><td><details><summary>{g.count} learner"
                     f"{'s' if g.count != 1 else ''}</summary><ul>{who}</ul></details></td></tr>")
    return "\n".join(lines)


def _exercise_html(exercise: str, rows: list[Result], found: list[Group]) -> str:
    passed = sum(r.passed for r in rows)
    head = f"<h3><code>{html.escape(exercise)}</code> — {passed} of {len(rows)} passed " \
           f"({round(100 * passed / len(rows))}%)</h3>"
    named = [g for g in found if g.kind == "mistake"]
    other = [g for g in found if g.kind == "difference"]
    if not named and not other:
        return head + "\n<p class='muted'>Every learner passed.</p>"
    return (head + "\n<table><tr><th>known mistake, then other wrong answers by kind of difference</th>"
            "<th>learners</th><th>share</th><th>who</th></tr>\n" + _group_rows(named + other) + "\n</table>")


def report_html(results: Iterable[Result]) -> str:
    results = _named(results)
    by_exercise = _by_exercise(results)
    found = groups(results, report_key)
    chapters = sorted({c for c, _ in by_exercise})
    learners = {r.learner for r in results}
    passed = sum(r.passed for r in results)
    top = "".join("<li>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(line)) + "</li>"
                  for line in top_lines(results))
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>", "<title>Class report</title>",
             f"<style>{_STYLE}</style>", _plotlyjs(), "</head><body>", "<h1>Class report</h1>",
             f"<p>{len(learners)} learners, {len(chapters)} chapter{'s' if len(chapters) != 1 else ''}; "
             f"{passed} of {len(results)} exercise answers passed"
             f"{f' ({round(100 * passed / len(results))}%)' if results else ''}.</p>",
             "<h2>Most common wrong answers</h2>", f"<ul class='top'>{top}</ul>" if top else
             "<p class='muted'>No wrong answers.</p>",
             "<p>" + " · ".join(f"<a href='#{html.escape(c)}'>{html.escape(c)}</a>" for c in chapters) + "</p>"]
    for chapter in chapters:
        exercises = {e: rows for (c, e), rows in by_exercise.items() if c == chapter}
        n = len({r.learner for rows in exercises.values() for r in rows})
        parts += [f"<section id='{html.escape(chapter)}'><h2>{html.escape(chapter)}</h2>",
                  f"<p>{n} learner{'s' if n != 1 else ''}.</p>",
                  _figure(_bars(chapter, exercises), f"cs-fig-{chapter}-bars")]
        for exercise, rows in exercises.items():
            parts.append(_exercise_html(exercise, rows, [g for g in found if (g.chapter, g.exercise) ==
                                                         (chapter, exercise)]))
        parts += [_figure(_heatmap(chapter, exercises), f"cs-fig-{chapter}-heatmap"), "</section>"]
    parts += ["</body></html>", ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------
def write_class_report(results: list[Result], out: Path) -> None:
    """Write mistakes.csv and report.html to ``out`` (each whole or not at all)."""
    from utils.journal import atomic_write

    atomic_write(Path(out) / "mistakes.csv", mistakes_csv(results))
    atomic_write(Path(out) / "report.html", report_html(results))


def results_from_grades_json(text: str) -> list[Result]:
    """The results a ``grades.json`` records (learner -> "chapter.exercise" -> status, points, message[, mistake])."""
    results = []
    for learner, cells in json.loads(text).items():
        for key, cell in cells.items():
            chapter, _, exercise = key.partition(".")
            results.append(Result(learner, chapter, exercise, Status(cell["status"]), cell["message"],
                                  cell["points"], cell["max_points"], mistake=cell.get("mistake")))
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m utils.class_report OUT   (OUT holds the gradebook's grades.json)", file=sys.stderr)
        return 2
    out = Path(args[0])
    results = results_from_grades_json((out / "grades.json").read_text())
    write_class_report(results, out)
    print("\n".join(top_lines(results)))
    print(f"\nclass report: {out / 'report.html'}, {out / 'mistakes.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
