"""A verdict depends on the learner's notebook alone: not on the class, the order, or the worker's past.

A class built from the real notebooks of every chapter — complete, with functions missing, with a syntax error,
crashing, timing out, changing the model — is graded together, in another order over two jobs, and each learner
alone (a fresh grader and worker each); every (learner, exercise) gets the same status and message every time.
"""

import random

import nbformat
import pytest

from utils.build import ROOT
from utils.checking import Status
from utils.grading import GradeOptions, grade

pytestmark = pytest.mark.tooling

SOLUTIONS = ROOT / "chapters" / "solutions"
TIMEOUT = 5.0  # per exercise, counting only the learner's calls: ample for every honest function here


def _variant(stem: str, change=None, keep_only: set[str] | None = None) -> str:
    """The solutions notebook of chapter ``stem`` with one exercise cell changed by ``change(source)`` (a function of
    the cell that defines that exercise), or with only the exercise definitions in ``keep_only`` left."""
    nb = nbformat.read(SOLUTIONS / f"{stem}_solutions.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "\ndef " not in "\n" + cell.source:
            continue
        defined = {line[4:].split("(")[0] for line in cell.source.splitlines() if line.startswith("def ")}
        if keep_only is not None and defined and not defined & keep_only:
            cell.source = "# (not done)"
        elif change is not None:
            cell.source = change(cell.source)
    return nbformat.writes(nb)


def _first(name: str, new_body: str):
    """A change that replaces the body of the first function ``name`` with ``new_body``."""
    done = []

    def change(source: str) -> str:
        if done or f"def {name}(" not in source:
            return source
        done.append(True)
        head = source[:source.index(f"def {name}(")]
        signature = source[source.index(f"def {name}("):].split(":\n", 1)[0] + ":\n"
        return head + signature + "".join(f"    {line}\n" for line in new_body.splitlines())
    return change


CLASS = {
    "a_missing": lambda: _variant("01_tokenization", keep_only={"count_tokens"}),
    "b_syntax_error": lambda: _variant("02_caching", _first("logit_lens", "return (")),
    "c_crashes": lambda: _variant("03_hooks", _first("get_ablation_scores", "import os\nos._exit(7)")),
    "d_times_out": lambda: _variant("04_induction", _first("induction_scores",  # asleep: the suite's cores stay busy
                                                            "import time\nwhile True:\n    time.sleep(0.05)")),
    "e_changes_the_model": lambda: _variant("06_saes", _first("latent_top_logits",
                                                               "model.W_E.data.zero_()\nreturn None")),
    "f_complete": lambda: _variant("00_pytorch_einops"),
    "g_missing_a_loop": lambda: _variant("05_patching", _first("get_act_patch_resid_pre", "return undefined_name")),
    "z_ok": lambda: _variant("01_tokenization"),
}


def _verdicts(results) -> dict:
    return {(r.learner, r.chapter, r.exercise): (r.status, r.message) for r in results}


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    for learner, make in CLASS.items():
        (folder / f"{learner}.ipynb").write_text(make())
    return folder


def test_a_missing_function_does_not_change_the_next_learners_verdict(class_folder):
    """Graded together, a learner whose notebook lacks functions must not make the next learner's correct functions
    fail (a large input sent to the worker was once marked as delivered though the worker never unpacked it). Alone,
    every one of z_ok's functions passes (the test below grades each learner alone)."""
    paths = [class_folder / "a_missing.ipynb", class_folder / "z_ok.ipynb"]
    together = _verdicts(grade(paths, class_folder, GradeOptions(timeout=TIMEOUT)))
    z_ok = {k: v for k, v in together.items() if k[0] == "z_ok"}
    assert z_ok and all(status == Status.PASS for status, _ in z_ok.values()), z_ok
    assert together[("a_missing", "ch01_tokenization", "get_log_probs")][0] == Status.MISSING


def test_verdicts_are_the_same_together_shuffled_and_alone(class_folder):
    options = GradeOptions(timeout=TIMEOUT)
    paths = sorted(class_folder.glob("*.ipynb"))
    together = _verdicts(grade(paths, class_folder, options))
    shuffled_paths = paths[:]
    random.Random(0).shuffle(shuffled_paths)
    shuffled = _verdicts(grade(shuffled_paths, class_folder, GradeOptions(timeout=TIMEOUT, jobs=2)))
    alone = {}
    for path in paths:
        alone |= _verdicts(grade([path], class_folder, options))
    for name, other in (("shuffled over two jobs", shuffled), ("alone", alone)):
        differ = {k: (v, other.get(k)) for k, v in together.items() if other.get(k) != v}
        assert not differ and set(other) == set(together), f"together vs {name}: {differ}"
    statuses = {status for status, _ in together.values()}  # the class really has every kind of learner
    assert {Status.PASS, Status.MISSING, Status.CRASHED, Status.TIMEOUT, Status.CHANGED_MODEL, Status.ERROR} <= statuses
    # every learner is a chapter's solutions notebook with one change: every other exercise passes through the worker
    # (models, caches, hook points, factored matrices and SAEs make the trip; what test_grading once checked alone)
    changed = {"b_syntax_error": "logit_lens", "c_crashes": "get_ablation_scores", "d_times_out": "induction_scores",
               "e_changes_the_model": "latent_top_logits", "g_missing_a_loop": "get_act_patch_resid_pre"}
    failed = {k: v for k, v in together.items() if v[0] != Status.PASS and k[0] != "a_missing"
              and changed.get(k[0]) != k[2]}
    assert not failed, failed
