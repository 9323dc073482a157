"""Instructor grading over the shipped example submissions: every (learner, exercise) gets exactly the
expected status, bad input stays contained (the hostile examples by the sandbox), and the gradebook is deterministic."""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import nbformat
import pytest

from examples import make_submissions
from utils.build import ROOT
from utils.sandbox import containment

pytestmark = pytest.mark.tooling


def grade(folder, out, *extra, env=None):
    """``make grade`` on ``folder``, in one grading process (the suite keeps every core busy already; --jobs has its
    own tests in test_resume.py and test_independence.py)."""
    jobs = [] if "--jobs" in extra else ["--jobs", "1"]
    result = subprocess.run([sys.executable, "-m", "utils.grading", str(folder), "--out", str(out), "--device", "cpu",
                             *jobs, *extra], cwd=ROOT, capture_output=True, text=True, timeout=900,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def require_sandbox():
    """The sandbox is required in CI (.ci/run installs bubblewrap); elsewhere a test that needs it is skipped."""
    found = containment()
    if not found.available:
        assert not os.environ.get("CI"), f"CI must be able to sandbox learner code: {found.reason}"
        pytest.skip(found.reason)


class Listener:
    """A local TCP listener that records whatever connects (a hostile example tries to)."""

    def __init__(self, port):
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.2)
        self.received, self.stop = [], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            with conn:
                self.received.append(conn.recv(100))

    def close(self):
        self.stop = True
        self.thread.join()
        self.server.close()


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def _site_packages_files() -> set[str]:
    import transformer_lens

    return {str(p) for p in __import__("pathlib").Path(transformer_lens.__file__).parent.rglob("*")}


def test_example_submissions_are_fresh():
    stale = [p for p, text in make_submissions.build().items() if not p.exists() or p.read_text() != text]
    assert not stale, f"run `make examples`: stale {[str(p.relative_to(ROOT)) for p in stale]}"


def test_examples_get_exactly_the_expected_statuses(tmp_path):
    """Every example, the hostile ones included: the sandbox contains every attack (the course, the packages and the
    gradebook unchanged, no process left, no connection made, no secret in any feedback)."""
    require_sandbox()
    secret = "cs-instructor-token-7f3a9"
    (tmp_path / "hidden.py").write_text(f"# {secret}-hidden\nHIDDEN_CASES = {{}}\n")
    out = tmp_path / "out"
    git_before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    packages_before = _site_packages_files()
    listener = Listener(make_submissions.HOSTILE_PORT)
    try:
        result = grade(ROOT / "examples" / "submissions", out, "--timeout", "6", "--hidden-cases",
                       str(tmp_path / "hidden.py"), env={"CS_INSTRUCTOR_TOKEN": secret})
    finally:
        listener.close()
    assert listener.received == [], "a hostile example reached a local listener"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                          text=True).stdout == git_before
    assert _site_packages_files() == packages_before
    assert _processes_with("cs-hostile") == [], "a process started by a hostile example outlived grading"
    tmp_path = out
    graded = json.loads((tmp_path / "grades.json").read_text())
    with open(make_submissions.EXPECTED) as f:
        expected = {(row["learner"], row["exercise"]): row["status"] for row in csv.DictReader(f)}
    got = {(learner, exercise): r["status"] for learner, rows in graded.items() for exercise, r in rows.items()}
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, f"(learner, exercise): (got, expected) {wrong}"
    extra = {k: v for k, v in got.items() if k not in expected}
    # an unreadable notebook cannot say which chapter it is: it is UNREADABLE for every chapter's exercises
    assert all(learner == "unreadable" and status == "UNREADABLE" for (learner, _), status in extra.items()), extra
    assert "bad/syntax_error" in result.stdout and "notebooks graded" in result.stdout  # the terminal summary
    # messages are specific, and the same words as the in-notebook check line
    broken = nbformat.read(ROOT / "examples" / "submissions" / "bad" / "syntax_error.ipynb", as_version=4)
    cell = 1 + next(i for i, c in enumerate(broken.cells) if c.source.startswith("def split_heads"))  # 1-based
    message = graded["bad/syntax_error"]["ch00_pytorch_einops.split_heads"]["message"]
    assert f"cell {cell}, line 2: SyntaxError" in message, message
    assert "near misses: merge_head" in graded["bad/renamed"]["ch00_pytorch_einops.merge_heads"]["message"]
    assert "SIGSEGV" in graded["bad/segfault"]["ch00_pytorch_einops.next_token_log_probs"]["message"]
    feedback = (tmp_path / "feedback" / "bad" / "wrong_values.md").read_text()
    assert "❌ top_k_next_tokens — WRONG_VALUES" in feedback and "reading the first position" in feedback
    assert (tmp_path / "junit.xml").exists()
    rows = list(csv.reader((tmp_path / "grades.csv").open()))
    assert rows[0][0] == "learner" and rows[0][-2:] == ["total", "max"]
    assert dict((r[0], r[-2]) for r in rows[1:])["complete"] == "10"
    hostile = {learner: rows["ch01_tokenization.count_tokens"]["message"] for learner, rows in graded.items()
               if learner.startswith("hostile/")}
    assert "tried to write `solutions/ch01_tokenization.py`" in hostile["hostile/a_writes_the_course"]
    assert "tried to write `" in hostile["hostile/b_writes_site_packages"]
    assert "no network" in hostile["hostile/f_opens_a_socket"]
    assert "processes" in hostile["hostile/g_forks_many_processes"]
    assert "temporary folder" in hostile["hostile/h_fills_the_disk"]
    everything = "\n".join(p.read_text() for p in (tmp_path / "feedback").rglob("*.md")) + (
        tmp_path / "grades.json").read_text()
    other_notebook = make_submissions.BAD["wrong_values"][0]["top_k_next_tokens"].splitlines()[-1].strip()
    for leaked in (secret, other_notebook):
        assert leaked not in everything, f"{leaked!r} reached the feedback"
    assert "pwned" not in (tmp_path / "grades.csv").read_text()
    assert "Learner code: sandboxed" in result.stdout


def test_grading_uses_points_and_hidden_cases(tmp_path):
    """(Determinism: the independence test grades a class three ways and compares every verdict.)"""
    folder = tmp_path / "class"
    for name in ("complete.ipynb", "partial.ipynb", "bad/wrong_values.ipynb"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "examples" / "submissions" / name, folder / name)
    (tmp_path / "points.toml").write_text("[ch00_pytorch_einops]\nsplit_heads = 3\n")
    (tmp_path / "hidden.py").write_text(
        "import torch\nfrom utils.checking import Case\n"
        "def secret(device):\n    yield Case((torch.full((1, 7, 9), 123.0, device=device), 2))\n"
        "HIDDEN_CASES = {'ch00_pytorch_einops': {'top_k_next_tokens': secret}}\n")
    grade(folder, tmp_path / "out0", "--points", str(tmp_path / "points.toml"), "--hidden-cases",
          str(tmp_path / "hidden.py"))
    rows = {r[0]: r for r in csv.reader((tmp_path / "out0" / "grades.csv").read_text().splitlines())}
    assert rows["complete"][-2:] == ["12", "12"]  # split_heads is worth 3
    graded = json.loads((tmp_path / "out0" / "grades.json").read_text())
    assert graded["complete"]["ch00_pytorch_einops.top_k_next_tokens"]["status"] == "PASS"
    message = graded["bad/wrong_values"]["ch00_pytorch_einops.top_k_next_tokens"]["message"]
    assert "123" not in message  # public cases fail first here; hidden inputs never appear anyway


def test_each_grading_process_sets_up_few_chapters_and_the_long_one_is_shared_at_the_end():
    """--jobs hands a process learners of the chapters it has already set up while any are left (every task once);
    a chapter is shared once nothing else is left."""
    from utils.grading import ChapterAffinity

    counts = {"ch05": 6, "ch01": 3, "ch02": 3}
    lanes = ChapterAffinity([(f"{c}-{i}", (c,)) for c, n in counts.items() for i in range(n)])
    handed = {0: [], 1: []}
    while True:
        tasks = [lanes.next(p) for p in (0, 1)]
        for p, task in enumerate(tasks):
            if task is not None:
                handed[p].append(task.split("-")[0])
        if tasks == [None, None]:
            break
    assert sorted(handed[0] + handed[1]) == sorted(c for c, n in counts.items() for _ in range(n))
    assert set(handed[0]) == {"ch05"} and handed[1][:6] == ["ch01"] * 3 + ["ch02"] * 3, handed

    lanes = ChapterAffinity([(f"ch05-{i}", ("ch05",)) for i in range(4)] + [("ch01-0", ("ch01",))])
    assert [lanes.next(0), lanes.next(1), lanes.next(1), lanes.next(0)] == ["ch05-0", "ch01-0", "ch05-1", "ch05-2"]


def test_without_a_sandbox_the_hostile_examples_are_not_graded():
    from utils.grading import HOSTILE_EXAMPLES, RunInfo, safe_to_grade

    notebooks = [ROOT / "examples" / "submissions" / "complete.ipynb", *sorted(HOSTILE_EXAMPLES.glob("*.ipynb"))]
    assert safe_to_grade(notebooks, RunInfo("NOT SANDBOXED", False, "cpu", 30.0)) == (notebooks[:1], notebooks[1:])
    assert safe_to_grade(notebooks, RunInfo("sandboxed", True, "cpu", 30.0)) == (notebooks, [])
