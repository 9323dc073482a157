"""A long grading run loses nothing: killed at any moment, the same command finishes the job with a gradebook
byte-identical to an uninterrupted run's; interrupted, it writes an honest partial gradebook (INCOMPLETE rows that
keep their full maximum) and exits non-zero; no process of it is left behind."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from utils.build import ROOT

pytestmark = pytest.mark.tooling

EXAMPLES = ROOT / "examples" / "submissions"
CLASS = ["complete", "partial", "bad/wrong_values", "bad/infinite_loop", "stubs"]
GRADEBOOK = ["grades.csv", "grades.json", "junit.xml", "run.json"]


# session-scoped: when pytest-xdist's processes steal work, this module's tests need not run one after another, and a
# module fixture would be graded again each time they resume
@pytest.fixture(scope="session")
def class_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    for name in CLASS:
        (folder / f"{name}.ipynb").parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / f"{name}.ipynb", folder / f"{name}.ipynb")
    return folder


def _command(folder, out, *extra):
    return [sys.executable, "-m", "utils.grading", str(folder), "--out", str(out), "--timeout", "2", *extra]


def _run(folder, out, *extra, env=None):
    return subprocess.run(_command(folder, out, *extra), cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


class Gradebook(dict):
    """A gradebook's files by name (and the folder they came from)."""

    out = None


def _files(out) -> Gradebook:
    found = Gradebook({name: (out / name).read_bytes() for name in GRADEBOOK})
    found |= {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "feedback").rglob("*.md"))}
    found.out = out
    return found


@pytest.fixture(scope="session")
def uninterrupted(class_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    result = _run(class_folder, out, "--jobs", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    return _files(out)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            continue
    return alive


def _journaled(out) -> int:
    return len(list((out / ".journal").glob("*.json"))) if (out / ".journal").is_dir() else 0


def _start_and_stop(folder, out, sig, until, *extra, env=None) -> tuple[int, set[int]]:
    """Start grading, send ``sig`` once ``until()`` holds; the exit code and the processes it had started."""
    process = subprocess.Popen(_command(folder, out, *extra), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    family: set[int] = set()
    deadline = time.monotonic() + 300
    while process.poll() is None and not until() and time.monotonic() < deadline:
        family |= _descendants(process.pid)
        time.sleep(0.05)
    family |= _descendants(process.pid)
    if process.poll() is None:
        process.send_signal(sig)
    process.communicate(timeout=120)
    return process.returncode, family


@pytest.mark.parametrize("moment, jobs", [("before the first learner finishes", "1"),
                                          ("in the middle of a learner", "2"),
                                          ("while the gradebook is written", "1")])
def test_killed_then_run_again_gives_the_uninterrupted_gradebook(moment, jobs, class_folder, uninterrupted,
                                                                 tmp_path):
    out = tmp_path / "out"
    if moment == "while the gradebook is written":  # killed by the fault point after grades.csv, before the rest
        result = _run(class_folder, out, "--jobs", jobs, env={"CS_GRADING_KILL_AT": "gradebook"})
        assert result.returncode == -signal.SIGKILL
        assert not (out / "grades.json").exists() and (out / "grades.csv").exists()
        family: set[int] = set()
    else:
        def until():
            started = any(out.glob(".journal/*.json")) if moment != "before the first learner finishes" else False
            return started or (moment == "before the first learner finishes" and (out / ".journal").is_dir())
        code, family = _start_and_stop(class_folder, out, signal.SIGKILL, until, "--jobs", jobs)
        assert code == -signal.SIGKILL
        assert _journaled(out) < len(CLASS)
    time.sleep(1)
    assert not _alive(family), "a grading or worker process outlived the killed run"
    again = _run(class_folder, out, "--jobs", jobs)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _files(out) == uninterrupted


def test_an_interrupted_run_writes_an_honest_partial_gradebook(class_folder, tmp_path):
    out = tmp_path / "out"
    code, family = _start_and_stop(class_folder, out, signal.SIGINT, lambda: _journaled(out) >= 1, "--jobs", "1")
    assert code != 0
    time.sleep(1)
    assert not _alive(family)
    graded = json.loads((out / "grades.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert set(graded) == set(CLASS) and not run["complete"]
    incomplete = {learner for learner, rows in graded.items() if any(r["status"] == "INCOMPLETE"
                                                                     for r in rows.values())}
    assert incomplete and incomplete == set(run["incomplete_learners"]) and len(incomplete) < len(CLASS) + 1
    for learner in incomplete:  # the row keeps the chapter's full maximum
        assert sum(r["max_points"] for r in graded[learner].values()) == 10
    rows = {r.split(",")[0]: r.split(",") for r in (out / "grades.csv").read_text().splitlines()[1:]}
    assert all(rows[learner][-1] == "10" for learner in incomplete)


def test_shards_merged_equal_one_run(class_folder, uninterrupted, tmp_path):
    """Three shards, graded as separate processes (as a Slurm array or a CI matrix would), merged: one run's files."""
    outs = [tmp_path / f"shard{k}" for k in (1, 2, 3)]
    shards = [subprocess.Popen(_command(class_folder, out, "--jobs", "1", "--shard", f"{k}/3"), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for k, out in zip((1, 2, 3), outs)]
    for shard in shards:
        assert shard.wait(600) in (0, 1), shard.stderr.read().decode()[-2000:]  # 1: a shard with no learner
    present = [out for out in outs if (out / "grades.json").exists()]
    graded = [set(json.loads((out / "grades.json").read_text())) for out in present]
    assert sum(map(len, graded)) == len(CLASS) and set().union(*graded) == set(CLASS)  # each learner exactly once
    merged = subprocess.run([sys.executable, "-m", "utils.grading", "merge", *map(str, present), "--out",
                             str(tmp_path / "merged")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert _files(tmp_path / "merged") == uninterrupted


def test_a_second_run_regrades_only_the_changed_learner(class_folder, uninterrupted, tmp_path):
    """The journal is a cache keyed by the notebook: after one learner finished their notebook, only they are graded
    again (the others' results come from the uninterrupted run's journal)."""
    folder, out = tmp_path / "class", tmp_path / "out"
    shutil.copytree(class_folder, folder)
    shutil.copytree(uninterrupted.out, out)
    shutil.copy(EXAMPLES / "complete.ipynb", folder / "partial.ipynb")  # one learner finishes their notebook
    again = _run(folder, out, "--jobs", "1")
    assert again.returncode == 0
    assert f"{len(CLASS) - 1} unchanged since the last run and not regraded" in again.stdout
    graded = json.loads((out / "grades.json").read_text())
    assert all(r["status"] == "PASS" for r in graded["partial"].values())


def test_a_dask_local_cluster_gives_one_runs_gradebook(class_folder, uninterrupted, tmp_path):
    """Learners sent as tasks to a dask.distributed LocalCluster (one worker process, grading with its own grader and
    sandboxed worker, as each machine of a real cluster does): the same files as one run. (Spreading learners over
    several processes is what --jobs 2 does in the tests above.)"""
    result = _run(class_folder, tmp_path / "out", "--jobs", "1", "--dask", "local")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _files(tmp_path / "out") == uninterrupted


def test_dask_tasks_are_sent_by_name_even_from_the_command_line():
    """``python -m utils.grading`` runs this module as ``__main__``: its tasks must still name ``utils.grading``, so
    each Dask worker keeps one grader and one sandboxed worker for all its learners (shipped by value, each task had
    globals of its own: a new grader and worker per learner)."""
    import runpy

    import utils.grading

    as_run = runpy.run_module("utils.grading", run_name="cs_as_main", alter_sys=True)  # -m, short of main()
    assert as_run["_grade_bytes"].__module__ == "cs_as_main"
    assert as_run["_dask_task"]() is utils.grading._grade_bytes
