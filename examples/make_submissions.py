"""Build the example learner submissions in examples/submissions/ and their expected grading statuses.

Each example starts from the generated chapter-0 learner notebook and replaces exercise cells: with the
reference solution (a complete learner), with nothing (stubs left), or with one kind of bad input each. The
statuses every (learner, exercise) must get are written next to them in ``examples/expected_statuses.csv``;
``tests/tooling/test_grading.py`` grades the folder and compares.

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

from solutions import ch00_pytorch_einops as reference  # noqa: E402

CHAPTER = "ch00_pytorch_einops"
LEARNER_NOTEBOOK = ROOT / "chapters" / "00_pytorch_einops.ipynb"
OUT = ROOT / "examples" / "submissions"
EXPECTED = ROOT / "examples" / "expected_statuses.csv"
EXERCISES = ["split_heads", "merge_heads", "attention_scores", "apply_causal_mask", "attention_pattern",
             "next_token_log_probs", "top_k_next_tokens", "masked_mean", "batch_positional_embeddings",
             "train_linear_probe"]
SOLUTIONS = {name: inspect.getsource(getattr(reference, name)) for name in EXERCISES}


def body(name: str, *lines: str) -> str:
    """A learner's version of exercise ``name``: the reference signature with these body lines."""
    signature = SOLUTIONS[name].split('"""')[0].rstrip() + "\n"
    return signature + "\n".join("    " + line for line in lines) + "\n"


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


def exercise_of(cell) -> str | None:
    for name in EXERCISES:
        if cell.cell_type == "code" and f"def {name}(" in cell.source and "NotImplementedError" in cell.source:
            return name
    return None


def make_notebook(replacements: dict[str, str], extra_cells: list[str], solved: list[str]) -> str:
    nb = nbformat.read(LEARNER_NOTEBOOK, as_version=4)
    for cell in nb.cells:
        name = exercise_of(cell)
        if name in replacements:
            cell.source = replacements[name]
        elif name in solved:
            cell.source = SOLUTIONS[name]
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
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["learner", "exercise", "status"])
    for learner in sorted(expected):
        for name in EXERCISES:
            writer.writerow([learner, f"{CHAPTER}.{name}", expected[learner][name]])
    files[EXPECTED] = buffer.getvalue()
    return files


def main() -> int:
    for path, text in build().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(BAD) + 4} example submissions to {OUT.relative_to(ROOT)} and {EXPECTED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
