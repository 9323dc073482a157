"""Build the example learner submissions in examples/submissions/ and their expected grading statuses.

Each example starts from a generated learner notebook and replaces exercise cells: with the reference solution
(a complete learner), with nothing (stubs left), or with one kind of bad input each. The statuses every
(learner, exercise) must get are written next to them in ``examples/expected_statuses.csv``;
``tests/tooling/test_grading.py`` grades the folder and compares.

- chapter 0 (``complete``, ``partial``, ``stubs``, ``unreadable``, ``bad/*``): every kind of bad input;
- chapter 1 (``isolation/*``): learners whose functions change the shared model or torch's global state while
  returning correct values, graded CHANGED_MODEL for that function; then ``isolation/z_correct``, graded after all
  of them, which must pass everything (one learner can never change another's grade);
- chapter 1 (``hostile/*``): learners whose ``count_tokens`` attacks the grader (writes the course or the packages,
  starts a daemon, reads the class, leaks the environment, opens a socket, forks 200 processes, fills the disk,
  hangs holding a child) before answering; each is contained by the sandbox, and ``hostile/z_correct`` passes.

Usage: ``python -m examples.make_submissions`` (generated files: do not edit them by hand).
"""

from __future__ import annotations

import csv
import inspect
import io
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solutions import ch00_pytorch_einops, ch01_tokenization  # noqa: E402
from utils.build import exercise_names  # noqa: E402

OUT = ROOT / "examples" / "submissions"
EXPECTED = ROOT / "examples" / "expected_statuses.csv"


class ChapterFiles:
    """A chapter's learner notebook, exercise names and reference sources."""

    def __init__(self, chapter: str, stem: str, reference):
        self.chapter, self.notebook = chapter, ROOT / "chapters" / f"{stem}.ipynb"
        self.exercises = exercise_names(ROOT / "chapters" / "src" / f"{stem}.py")
        self.solutions = {name: inspect.getsource(getattr(reference, name)) for name in self.exercises}

    def body(self, name: str, *lines: str) -> str:
        """A learner's version of exercise ``name``: the reference signature with these body lines."""
        signature = self.solutions[name].split('"""')[0].rstrip() + "\n"
        return signature + "\n".join("    " + line for line in lines) + "\n"

    def solution_with(self, name: str, *lines: str) -> str:
        """The reference solution of ``name`` with ``lines`` run first (a correct function with a side effect)."""
        head, doc, rest = self.solutions[name].split('"""', 2)
        return head + '"""' + doc + '"""\n' + "".join("    " + line + "\n" for line in lines) + rest.lstrip("\n")


CH0 = ChapterFiles("ch00_pytorch_einops", "00_pytorch_einops", ch00_pytorch_einops)
CH1 = ChapterFiles("ch01_tokenization", "01_tokenization", ch01_tokenization)
EXERCISES, SOLUTIONS, body = CH0.exercises, CH0.solutions, CH0.body


# learner -> ({exercise: cell source}, extra cells, {exercise: expected status}); unlisted exercises: the
# reference solution and PASS, unless the learner is "stubs"/"partial".
BAD = {
    "syntax_error": ({"split_heads": body("split_heads", "return einops.rearrange(x, 'b p (h d) -> b p h d', h=")},
                     [], {"split_heads": "MISSING"}),
    "renamed": ({"merge_heads": SOLUTIONS["merge_heads"].replace("def merge_heads", "def merge_head")},
                [], {"merge_heads": "MISSING"}),
    "exception": ({"attention_scores": body("attention_scores", "return q[:, :, :, 100]")}, [],
                  {"attention_scores": "ERROR"}),
    "infinite_loop": ({"apply_causal_mask": body("apply_causal_mask", "while True:", "    pass")}, [],
                      {"apply_causal_mask": "TIMEOUT"}),
    "os_exit": ({"attention_pattern": body("attention_pattern", "import os", "os._exit(3)")}, [],
                {"attention_pattern": "CRASHED"}),
    "segfault": ({"next_token_log_probs": body("next_token_log_probs", "import ctypes",
                                               "return ctypes.string_at(0)")}, [], {"next_token_log_probs": "CRASHED"}),
    "memory_blowup": ({"top_k_next_tokens": body("top_k_next_tokens", "hog = bytearray(2**36)  # 64 GiB",
                                                 "return hog")}, [], {"top_k_next_tokens": "CRASHED"}),
    "wrong_types": ({"split_heads": body("split_heads", "return x.reshape(*x.shape[:2], n_heads, -1).tolist()"),
                     "merge_heads": body("merge_heads", "return z.flatten(-2).numpy()"),
                     "attention_scores": body("attention_scores", "class AlwaysEqual:",
                                              "    def __eq__(self, other):", "        return True",
                                              "return AlwaysEqual()")},
                    [], {"split_heads": "WRONG_TYPE", "merge_heads": "WRONG_TYPE", "attention_scores": "WRONG_TYPE"}),
    "wrong_shape_dtype_device": (
        {"split_heads": body("split_heads", "return x.reshape(*x.shape[:2], -1, n_heads)"),
         "merge_heads": body("merge_heads", "return z.flatten(-2).double()"),
         "attention_scores": body("attention_scores", "b, h, n_q, n_k = q.shape[0], q.shape[2], q.shape[1], k.shape[1]",
                                  "return torch.zeros(b, h, n_q, n_k, device='meta')")},
        [], {"split_heads": "WRONG_SHAPE", "merge_heads": "WRONG_DTYPE", "attention_scores": "WRONG_DEVICE"}),
    "nan": ({"masked_mean": body("masked_mean",
                                 "return (x * mask[..., None]).sum(1) / mask.sum(-1, keepdim=True)")},
            [], {"masked_mean": "NAN"}),
    "wrong_values": ({"attention_pattern": body("attention_pattern",
                                                "s = einops.einsum(q, k, 'b i h d, b j h d -> b h i j')",
                                                "return s.softmax(-1)"),
                      "top_k_next_tokens": body("top_k_next_tokens", "return logits[:, 0].topk(k).indices")},
                     [], {"attention_pattern": "WRONG_VALUES", "top_k_next_tokens": "WRONG_VALUES"}),
    "mutates_inputs": ({"apply_causal_mask": body("apply_causal_mask", "n = scores.shape[-1]",
                                                  "mask = torch.ones(n, n, dtype=torch.bool).triu(1)",
                                                  "return scores.masked_fill_(mask, float('-inf'))"),
                        "attention_pattern": body("attention_pattern", "q.mul_(0)", "k.mul_(0)",
                                                  "b, h, n_q, n_k = q.shape[0], q.shape[2], q.shape[1], k.shape[1]",
                                                  "return torch.zeros(b, h, n_q, n_k)")},
                       [], {"attention_pattern": "WRONG_VALUES"}),
    "magics": ({}, ["%pip install einops\n!ls\nfiles = !ls", "%%time\nimport math"], {}),
    "imports_reference": ({"split_heads": "from solutions.ch00_pytorch_einops import split_heads",
                           "merge_heads": "import solutions.ch00_pytorch_einops as ref\n\n\n"
                                          + body("merge_heads", "return ref.merge_heads(z)")},
                          [], {"split_heads": "ERROR", "merge_heads": "ERROR"}),
}


# chapter 1: each learner returns correct values but changes the model or torch's global state on the way.
ISOLATION = {
    "a_zeroes_W_E": {"count_tokens": CH1.solution_with("count_tokens", "model.W_E.data.zero_()")},
    "b_scales_W_Q": {"count_tokens": CH1.solution_with("count_tokens", "model.blocks[0].attn.W_Q.data.mul_(0)")},
    "c_no_default_bos": {"count_tokens": CH1.solution_with("count_tokens", "model.cfg.default_prepend_bos = False")},
    "d_tokenizer_settings": {"multi_token_words": CH1.solution_with(
        "multi_token_words", "model.tokenizer.padding_side = 'left'", "model.tokenizer.add_tokens(['<new>'])")},
    "e_train_mode": {"token_position": CH1.solution_with("token_position", "model.train()")},
    "f_leaves_a_hook": {"token_position": CH1.solution_with(
        "token_position", "model.add_hook('blocks.0.hook_resid_post', lambda x, hook: x * 0, is_permanent=True)")},
    "g_replaces_a_parameter": {"count_tokens": CH1.solution_with(
        "count_tokens", "import torch", "model.blocks[0].attn.W_Q = torch.nn.Parameter(torch.zeros_like("
        "model.blocks[0].attn.W_Q))")},
    "h_attn_result_on": {"multi_token_words": CH1.solution_with("multi_token_words",
                                                                "model.set_use_attn_result(True)")},
    "i_leaves_hook_ctx": {"greedy_generate": CH1.solution_with(
        "greedy_generate", "model.run_with_hooks(model.to_tokens(prompt), return_type=None, "
        "fwd_hooks=[('blocks.0.hook_resid_post', lambda x, hook: hook.ctx.update(resid=x))])")},
}
# chapter 1, hostile: each learner's count_tokens does one thing learner code must not do while grading, then answers
# correctly (the attacks of a hostile class; bounded, so that they stay harmless where no sandbox is available, where
# the grader skips this folder anyway); then z_correct, graded after them, must pass everything.
HOSTILE_PORT = 47613  # tests/tooling/test_sandbox.py listens there
_COURSE = ["import pathlib, utils", "course = pathlib.Path(utils.__file__).resolve().parents[1]"]
HOSTILE = {
    "a_writes_the_course": (_COURSE + [
        "with open(course / 'solutions' / 'ch01_tokenization.py', 'a') as f:", "    f.write('\\n# pwned\\n')",
        "with open(course / 'checks' / 'ch01_tokenization.py', 'a') as f:", "    f.write('\\n# pwned\\n')"],
        "ERROR"),
    "b_writes_site_packages": (["import pathlib, transformer_lens",
                                "target = pathlib.Path(transformer_lens.__file__).parent / 'pwned.py'",
                                "target.write_text('PWNED = True')"], "ERROR"),
    "c_starts_a_daemon": (_COURSE + [
        "import subprocess, sys",
        "grades = course / 'examples' / 'submissions' / 'hostile' / 'grades' / 'grades.csv'",
        "subprocess.Popen([sys.executable, '-c', 'import sys, time; time.sleep(20); '",
        "                  'open(sys.argv[1], \"a\").write(\"pwned,1\\\\n\")', str(grades), 'cs-hostile-daemon'],",
        "                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"], "PASS"),
    "d_reads_the_class": ([
        "import glob, os, pathlib",
        "found = open(f'/proc/{os.getppid()}/cmdline').read().split(chr(0)) if os.getppid() else []",
        "paths = [p for p in found if p.endswith('.py') or os.path.isdir(p)]",
        "texts = [open(p).read() for p in paths if os.path.isfile(p)]",
        "texts += [open(p).read() for d in paths if os.path.isdir(d) for p in glob.glob(d + '/**/*.ipynb', "
        "recursive=True)]",
        "raise RuntimeError('read ' + repr(found) + ' and ' + ' | '.join(texts))"], "ERROR"),
    "e_leaks_the_environment": (["import os", "raise RuntimeError('environment: ' + repr(dict(os.environ)))"],
                                "ERROR"),
    "f_opens_a_socket": (["import socket",
                          f"with socket.create_connection(('127.0.0.1', {HOSTILE_PORT}), timeout=2) as s:",
                          "    s.sendall(b'pwned')"], "ERROR"),
    "g_forks_many_processes": (["import os, time",
                                "for _ in range(200):",
                                "    if os.fork() == 0:",
                                "        time.sleep(60)",
                                "        os._exit(0)",
                                "time.sleep(5)"], "ERROR"),
    "h_fills_the_disk": (["import os", "block = b'x' * 2**24",
                          "with open('fill.bin', 'wb') as f:",
                          "    for _ in range(64):  # 1 GiB at most",
                          "        f.write(block)", "        f.flush()", "os.remove('fill.bin')"], "ERROR"),
    "i_hangs_holding_a_child": (["import subprocess, sys",
                                 "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', "
                                 "'cs-hostile-child'])",
                                 "while True:", "    pass"], "TIMEOUT"),
}


# Constants are kept when a notebook is graded, and run: these change torch's global state for the whole process.
GLOBAL_STATE_CELL = """import torch

DTYPE = torch.set_default_dtype(torch.float64)
GRAD = torch.set_grad_enabled(False)
THREADS = torch.set_num_threads(1)
DETERMINISTIC = torch.use_deterministic_algorithms(True)
SEED = torch.manual_seed(1234)"""


def exercise_of(cell, files: ChapterFiles) -> str | None:
    for name in files.exercises:
        if cell.cell_type == "code" and f"def {name}(" in cell.source and "NotImplementedError" in cell.source:
            return name
    return None


def make_notebook(replacements: dict[str, str], extra_cells: list[str], solved: list[str],
                  files: ChapterFiles = CH0) -> str:
    nb = nbformat.read(files.notebook, as_version=4)
    for cell in nb.cells:
        name = exercise_of(cell, files)
        if name in replacements:
            cell.source = replacements[name]
        elif name in solved:
            cell.source = files.solutions[name]
    for i, source in enumerate(extra_cells):
        cell = nbformat.v4.new_code_cell(source)
        cell.id = f"extra-{i}"
        nb.cells.insert(3, cell)
    return nbformat.writes(nb) + "\n"


def build() -> dict[Path, str]:
    """{path: text} of every example notebook and of the expected-status table."""
    files, expected = {}, {}
    files[OUT / "complete.ipynb"] = make_notebook({}, [], EXERCISES)
    expected["complete"] = dict.fromkeys(EXERCISES, "PASS")
    files[OUT / "partial.ipynb"] = make_notebook({}, [], EXERCISES[:5])
    expected["partial"] = {name: "PASS" if name in EXERCISES[:5] else "NOT_ATTEMPTED" for name in EXERCISES}
    files[OUT / "stubs.ipynb"] = make_notebook({}, [], [])
    expected["stubs"] = dict.fromkeys(EXERCISES, "NOT_ATTEMPTED")
    files[OUT / "unreadable.ipynb"] = '{"cells": [ this is not a notebook\n'
    expected["unreadable"] = dict.fromkeys(EXERCISES, "UNREADABLE")
    for learner, (replacements, extra_cells, statuses) in BAD.items():
        files[OUT / "bad" / f"{learner}.ipynb"] = make_notebook(replacements, extra_cells, EXERCISES)
        expected[f"bad/{learner}"] = {name: statuses.get(name, "PASS") for name in EXERCISES}
    expected = {learner: {f"{CH0.chapter}.{name}": status for name, status in row.items()}
                for learner, row in expected.items()}
    for learner, replacements in ISOLATION.items():
        files[OUT / "isolation" / f"{learner}.ipynb"] = make_notebook(replacements, [], CH1.exercises, CH1)
        expected[f"isolation/{learner}"] = {f"{CH1.chapter}.{name}": "CHANGED_MODEL" if name in replacements
                                            else "PASS" for name in CH1.exercises}
    for learner, (attack, status) in HOSTILE.items():
        replacement = {"count_tokens": CH1.solution_with("count_tokens", *attack)}
        files[OUT / "hostile" / f"{learner}.ipynb"] = make_notebook(replacement, [], CH1.exercises, CH1)
        expected[f"hostile/{learner}"] = {f"{CH1.chapter}.{name}": status if name == "count_tokens" else "PASS"
                                          for name in CH1.exercises}
    files[OUT / "hostile" / "z_correct.ipynb"] = make_notebook({}, [], CH1.exercises, CH1)
    expected["hostile/z_correct"] = {f"{CH1.chapter}.{name}": "PASS" for name in CH1.exercises}
    files[OUT / "isolation" / "y_global_state.ipynb"] = make_notebook({}, [GLOBAL_STATE_CELL], CH1.exercises, CH1)
    files[OUT / "isolation" / "z_correct.ipynb"] = make_notebook({}, [], CH1.exercises, CH1)
    for learner in ("y_global_state", "z_correct"):
        expected[f"isolation/{learner}"] = {f"{CH1.chapter}.{name}": "PASS" for name in CH1.exercises}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["learner", "exercise", "status"])
    for learner in sorted(expected):
        for exercise, status in expected[learner].items():
            writer.writerow([learner, exercise, status])
    files[EXPECTED] = buffer.getvalue()
    return files


def main() -> int:
    for path, text in build().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    n = len(BAD) + len(ISOLATION) + len(HOSTILE) + 7
    print(f"wrote {n} example submissions to {OUT.relative_to(ROOT)} and {EXPECTED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
