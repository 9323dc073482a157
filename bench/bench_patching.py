"""Patching benchmark: chapter 5's batched engine (``solutions.ch05_patching.fast``) against
``transformer_lens.patching``, side by side in one run, on the shipped ``mlp4l`` and the chapter's IOI prompts.

For each of the four functions (``get_act_patch_resid_pre``, ``get_act_patch_block_every``,
``get_act_patch_attn_head_out_all_pos``, ``get_act_patch_attn_head_all_pos_every``) both implementations run on the
same corrupted tokens, clean cache and metric, under ``torch.no_grad()``, alternately, ``--repeats`` times; the best
time of each is kept (the machine is shared: the best run is the least disturbed one). The results must agree
(atol 1e-4): the run fails otherwise. Besides the chapter's dataset (16 prompts of 16 tokens) it measures smaller
batches (``--sizes``), where the library's fixed cost per forward pass weighs more.

Results: printed, and written to ``bench/patching_results.json`` with the conditions (threads, load average, torch
version, CPU count).

Usage: ``python -m bench.bench_patching [--threads 1] [--repeats 2] [--sizes 16,4,2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # the library's progress bars (one per call) would flood the output

FUNCTIONS = ["get_act_patch_resid_pre", "get_act_patch_block_every", "get_act_patch_attn_head_out_all_pos",
             "get_act_patch_attn_head_all_pos_every"]
OUT = ROOT / "bench" / "patching_results.json"


def _dataset(model, n_prompts: int):
    """The chapter's prompts (its FRAMES, training names): 16 = 4 frames x 2 orders x 2 pairs; fewer: fewer frames."""
    from solutions.ch05_patching import FRAMES
    from utils.corpus import TRAIN_NAMES
    from utils.data import LogitDiffMetric, ioi_same_length, single_token_names

    names = single_token_names(model, TRAIN_NAMES)
    n_frames = max(1, min(len(FRAMES), n_prompts // 2))
    data = ioi_same_length(model, FRAMES[:n_frames], names, n_pairs=max(1, n_prompts // (2 * n_frames)), seed=0)
    corrupted = data.swapped(model)
    _, cache = model.run_with_cache(data.tokens)

    def logit_diff(tokens):
        answers = model(tokens)[:, -1].gather(-1, data.answer_tokens)
        return (answers[:, 0] - answers[:, 1]).mean().item()

    metric = LogitDiffMetric(data.answer_tokens, logit_diff(corrupted.tokens), logit_diff(data.tokens))
    return corrupted.tokens, cache, metric


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def run(model, n_prompts: int, repeats: int) -> dict:
    import torch
    from transformer_lens import patching

    from solutions.ch05_patching import fast

    tokens, cache, metric = _dataset(model, n_prompts)
    rows = {}
    for name in FUNCTIONS:
        library_s, ours_s = [], []
        for _ in range(repeats):
            t_lib, expected = _timed(getattr(patching, name), model, tokens, cache, metric)
            t_ours, got = _timed(getattr(fast, name), model, tokens, cache, metric)
            library_s.append(t_lib)
            ours_s.append(t_ours)
        diff = (got - expected).abs().max().item()
        if not torch.allclose(got, expected, atol=1e-4, rtol=0):
            raise SystemExit(f"{name}: the engine differs from transformer_lens.patching by {diff:.2e}")
        rows[name] = dict(library_s=round(min(library_s), 3), ours_s=round(min(ours_s), 3),
                          speedup=round(min(library_s) / min(ours_s), 2), max_abs_diff=diff,
                          forward_passes_library=int(expected.numel()))
    total_lib = sum(r["library_s"] for r in rows.values())
    total_ours = sum(r["ours_s"] for r in rows.values())
    return dict(prompts=int(tokens.shape[0]), tokens=int(tokens.shape[1]), functions=rows,
                total=dict(library_s=round(total_lib, 3), ours_s=round(total_ours, 3),
                           speedup=round(total_lib / total_ours, 2)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CI machine is shared: 1)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each function; the best time counts")
    parser.add_argument("--sizes", default="16,4,2", help="numbers of prompts (the first is the chapter's)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)

    import torch

    from utils.models import load_model

    torch.set_num_threads(args.threads)
    model = load_model("mlp4l", device="cpu")
    load_before = os.getloadavg()
    results = []
    with torch.no_grad():
        for size in [int(s) for s in args.sizes.split(",")]:
            result = run(model, size, args.repeats)
            results.append(result)
            print(f"\n{result['prompts']} prompts x {result['tokens']} tokens (mlp4l, CPU, {args.threads} thread(s))")
            print(f"  {'function':<40} {'library':>9} {'ours':>8} {'speedup':>8}")
            for name, row in result["functions"].items():
                print(f"  {name:<40} {row['library_s']:>8.2f}s {row['ours_s']:>7.2f}s {row['speedup']:>7.1f}x")
            total = result["total"]
            print(f"  {'all four':<40} {total['library_s']:>8.2f}s {total['ours_s']:>7.2f}s {total['speedup']:>7.1f}x")
    conditions = dict(date=time.strftime("%Y-%m-%d %H:%M"), device="cpu", threads=args.threads,
                      cpu_count=os.cpu_count(), load_average_before=[round(x, 2) for x in load_before],
                      load_average_after=[round(x, 2) for x in os.getloadavg()], torch=torch.__version__,
                      python=platform.python_version(), repeats=args.repeats, model="mlp4l")
    Path(args.out).write_text(json.dumps(dict(conditions=conditions, runs=results), indent=2) + "\n")
    print(f"\nload average {conditions['load_average_before']} -> {conditions['load_average_after']}; "
          f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
