"""The class report (utils/class_report.py): mistakes.csv, report.html and the top lines.

- the counts in mistakes.csv and in the report equal those recomputed from the gradebook's grades.json;
- unnamed wrong answers are grouped by the kind of difference (status, output field, exception type);
- the same results give byte-identical files, whatever their order; learner text is escaped; nothing needs the
  network;
- rendered in headless Chromium, every figure of the report is drawn.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter, defaultdict

import pytest
import torch

from tests.tooling.browser import dump_dom, needs_chromium
from tests.tooling.notebook_checks import NETWORK
from utils import class_report
from utils.checking import Status
from utils.class_report import difference, mistakes_csv, report_html, top_lines
from utils.grading import Result, grades_json

pytestmark = pytest.mark.tooling

SCALE = "forgetting the 1/sqrt(d_head) scale"
CAUSAL = "masking with 0 instead of -inf"
BOS = "forgetting the BOS offset (positions counted without the BOS token)"


def _r(learner: str, chapter: str, exercise: str, status: Status = Status.PASS, message: str = "",
       mistake: str | None = None) -> Result:
    return Result(learner, chapter, exercise, status, message, float(status == Status.PASS), 1.0, mistake=mistake)


def _class() -> list[Result]:
    """Six learners on two chapters, with known mistakes, unnamed wrong answers of every kind, errors, stubs."""
    values = "on the IOI prompts: output[0]: 3 of 12 values differ; max abs diff 0.5"
    results = []
    for i in range(6):
        who = f"group{i % 2}/learner{i}"
        scores = [(Status.WRONG_VALUES, values + f"\n  Your output matches a known mistake: {SCALE}.", SCALE)] * 3 + [
            (Status.WRONG_VALUES, values + f"\n  Your output matches a known mistake: {CAUSAL}.", CAUSAL),
            (Status.WRONG_SHAPE, "on one prompt: output has shape (2, 3), expected (3,)", None),
            (Status.PASS, "", None)]
        pattern = [(Status.WRONG_VALUES, "output['pattern']: 1 of 9 values differ\n  Hint: output[1]", None),
                   (Status.ERROR, "on one prompt: raised KeyError: 'pattern' (your line 3)", None),
                   (Status.NAN, "output has 2 NaN value(s) where the expected output has none", None),
                   (Status.WRONG_DTYPE, "output has dtype torch.float64, expected torch.float32", None),
                   (Status.TIMEOUT, "took longer than 30 s", None), (Status.NOT_ATTEMPTED, "still raises", None)]
        results += [_r(who, "ch02_caching", "attention_scores", *scores[i]), _r(who, "ch02_caching", "pattern",
                                                                              *pattern[i])]
        results.append(_r(who, "ch02_caching", "zz_easy"))
        if i < 4:
            position = (Status.WRONG_VALUES, "output is 3, expected 4", BOS) if i < 3 else (Status.PASS, "", None)
            results.append(_r(who, "ch01_tokenization", "token_position", *position))
    return results


def _grades_json(results: list[Result]) -> str:
    """The gradebook's grades.json, with each result's mistake (added here if the writer does not write it yet)."""
    book = json.loads(grades_json(results))
    for r in results:
        book[r.learner][f"{r.chapter}.{r.exercise}"]["mistake"] = r.mistake
    return json.dumps(book, indent=2)


def test_counts_equal_those_recomputed_from_grades_json(tmp_path, capsys):
    (tmp_path / "grades.json").write_text(_grades_json(_class()))
    assert class_report.main([str(tmp_path)]) == 0
    assert "`attention_scores` (ch02_caching): 50% — " + SCALE in capsys.readouterr().out

    expected, graded = defaultdict(list), Counter()
    for learner, cells in json.loads((tmp_path / "grades.json").read_text()).items():
        for key, cell in cells.items():
            what = cell["mistake"] if cell["mistake"] and cell["status"] != "PASS" else cell["status"]
            expected[key, what].append(learner)
            graded[key] += 1
    rows = list(csv.DictReader(io.StringIO((tmp_path / "mistakes.csv").read_text())))
    got = {(f"{r['chapter']}.{r['exercise']}", r["mistake_or_status"]): r for r in rows}
    assert set(got) == set(expected)
    for key, learners in expected.items():
        assert int(got[key]["count"]) == len(learners)
        assert got[key]["learners"].split(";") == sorted(learners)
        assert float(got[key]["share"]) == pytest.approx(len(learners) / graded[key[0]], abs=1e-3)

    page = (tmp_path / "report.html").read_text()
    for key, learners in expected.items():  # each named mistake's row in the report, with its count
        if key[1] not in Status.__members__:
            row = rf"data-exercise='{re.escape(key[0])}' data-count='{len(learners)}'><td[^>]*>{re.escape(key[1])}</td>"
            assert re.search(row, page), f"no row for {key} with {len(learners)} learners"
    for key, n in graded.items():  # each exercise's pass count, and every wrong answer in exactly one row
        passed = len(expected[key, "PASS"])
        assert f"<code>{key.split('.')[1]}</code> — {passed} of {n} passed" in page
        in_rows = sum(int(c) for c in re.findall(rf"data-exercise='{re.escape(key)}' data-count='(\d+)'", page))
        assert in_rows == n - passed


def test_named_mistakes_come_first_ranked_then_wrong_answers_by_kind_of_difference():
    page = report_html(_class())
    section = page[page.index("<h3><code>attention_scores</code>"):page.index("<h3><code>pattern</code>")]
    rows = re.findall(r"<tr class='(\w+)'[^>]*><td[^>]*>([^<]*)</td>", section)
    assert rows == [("mistake", SCALE), ("mistake", CAUSAL), ("difference", "wrong shape in output")]


@pytest.mark.parametrize("status, message, kind", [
    (Status.WRONG_VALUES, "on the IOI prompts: output[0]: 3 of 12 values differ", "wrong values in output[0]"),
    (Status.WRONG_VALUES, "output['logits'][1]: 1 of 4 values differ", "wrong values in output['logits'][1]"),
    (Status.WRONG_VALUES, "on a hidden case: wrong values (the public cases may not cover this input)",
     "wrong values"),
    (Status.WRONG_SHAPE, "output[1] has shape (2,), expected (3,)", "wrong shape in output[1]"),
    (Status.WRONG_DTYPE, "output has dtype torch.int32, expected torch.int64", "wrong dtype in output"),
    (Status.WRONG_TYPE, "expected a function, got int", "wrong type"),
    (Status.NAN, "output is NaN, expected 1", "NaN in output"),
    (Status.ERROR, "on one prompt: raised torch.OutOfMemoryError: no (line 2)\n raised KeyError",
     "raised torch.OutOfMemoryError"),
    (Status.ERROR, "the grader could not check this exercise", "error"),
    (Status.TIMEOUT, "took longer than 30 s on output[0]", "timeout"),
    (Status.NOT_ATTEMPTED, "still raises NotImplementedError", "not attempted"),
])
def test_unnamed_wrong_answers_are_grouped_by_kind_of_difference(status, message, kind):
    assert difference(_r("a", "ch", "ex", status, message)) == kind


def test_the_mistake_comes_from_the_checker_not_the_message():
    """The diagnosis travels as ``Result.mistake`` (a checker that found a known mistake sets it)."""
    from utils.checkers import Exercise
    from utils.checking import Case, Mutant

    def reference(x):
        return x * 2

    def doubled_twice(x):
        return x * 4

    class Double(Exercise):  # an exercise whose reference is here, not in a solutions module
        reference = property(lambda self: reference)
        hint = property(lambda self: "")

    exercise = Double("double", "ch", lambda device: [Case((torch.ones(3),), label="ones")],
                      mutants=[Mutant(doubled_twice, "multiplying twice")])
    verdict = exercise.verdict(doubled_twice, torch.device("cpu"))
    assert verdict.status == Status.WRONG_VALUES and verdict.mistake == "multiplying twice"


def test_top_lines_rank_the_most_common_wrong_answers():
    assert top_lines(_class(), n=3) == [
        f"`token_position` (ch01_tokenization): 75% — {BOS} (3 of 4 learners)",
        f"`attention_scores` (ch02_caching): 50% — {SCALE} (3 of 6 learners)",
        f"`attention_scores` (ch02_caching): 17% — {CAUSAL} (1 of 6 learners)",
    ]
    assert all("not attempted" not in line for line in top_lines(_class(), n=20))
    assert top_lines([_r("a", "ch", "ex")]) == []


def test_output_is_byte_stable_whatever_the_order():
    results = _class()
    shuffled = results[:]
    random.Random(0).shuffle(shuffled)
    assert mistakes_csv(shuffled) == mistakes_csv(results)
    assert report_html(shuffled) == report_html(results)


def test_learner_text_is_escaped_and_nothing_needs_the_network():
    evil = "<script>alert(1)</script>"
    page = report_html([_r(f"x{evil}", "ch", "ex", Status.ERROR, f"raised ValueError: {evil}"),
                        _r("y", "ch", "ex", Status.WRONG_VALUES, "wrong", mistake=evil)])
    assert evil not in page and "&lt;script&gt;alert(1)" in page
    assert page.count("/* plotly.js") == 1
    rest = re.sub(r"/\* plotly.js .*?</script>", "", page, flags=re.S)  # plotly.js itself names URLs (its logo)
    assert not NETWORK.search(rest) and "<link" not in rest and "@import" not in rest


@needs_chromium
def test_every_figure_is_drawn_in_headless_chromium(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(report_html(_class()))
    figures = re.findall(r"<div id='(cs-fig-[\w-]+)' class='cs-figure'", path.read_text())
    assert len(figures) == 4  # per chapter: the bars and the heatmap
    dom = dump_dom(path)
    assert dom, "Chromium rendered nothing"
    for figure, drawn in zip(figures, re.split(r"<div id=\"cs-fig-[\w-]+\" class=\"cs-figure\"", dom)[1:]):
        assert "main-svg" in drawn.split("<h3>")[0] and "cs-figure-fallback" not in drawn, f"{figure} was not drawn"
    assert dom.count('class="main-svg"') >= len(figures)
