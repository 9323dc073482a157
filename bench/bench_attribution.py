"""Attribution patching against the exact sweeps, side by side in one run: chapter 5's ``get_attr_patch_resid_pre`` and
``get_attr_patch_attn_head_out`` (one forward and one backward pass) against the same sweeps done exactly by
``transformer_lens.patching`` (one forward pass per patch) and by the chapter's batched engine (``fast``).

Two models: the shipped ``mlp4l`` on the chapter's IOI prompts (16 prompts of 16 tokens, names swapped), and a
``gpt2-small``-shaped model with random weights (12 layers, 12 heads, d_model 768, d_vocab 50257; speed does not
depend on the weights) on random tokens, whose "corrupted" prompts change a third of the positions. Each method runs
``--repeats`` times, alternately; the best time counts (the machine is shared). The library and the engine must agree
(atol 1e-4); the agreement of AtP with the exact results is reported as a correlation (on random weights it says
nothing about AtP's quality: the point there is speed).

Results: printed, and written to ``bench/attribution_results.json`` with the conditions.

Usage: ``python -m bench.bench_attribution [--threads 1] [--repeats 2] [--gpt2-prompts 2] [--gpt2-tokens 12]``.
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
os.environ.setdefault("TQDM_DISABLE", "1")

OUT = ROOT / "bench" / "attribution_results.json"
# (AtP function of the chapter, the exact function with the same output, in transformer_lens.patching and in `fast`)
PAIRS = [("get_attr_patch_resid_pre", "get_act_patch_resid_pre"),
         ("get_attr_patch_attn_head_out", "get_act_patch_attn_head_out_all_pos")]


def gpt2_shaped(seed: int = 0):
    """A HookedTransformer with GPT-2 small's shapes and random weights (no tokenizer: tokens are ids)."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
                                  n_ctx=1024, act_fn="gelu_new", normalization_type="LN", device="cpu", seed=seed)
    return HookedTransformer(cfg).eval()


def _metric(model, tokens, corrupted, answers):
    from utils.data import LogitDiffMetric

    def logit_diff(t):
        a = model(t)[:, -1].gather(-1, answers)
        return (a[:, 0] - a[:, 1]).mean().item()

    return LogitDiffMetric(answers, logit_diff(corrupted), logit_diff(tokens))


def mlp4l_inputs():
    from solutions.ch05_patching import FRAMES
    from utils.corpus import TRAIN_NAMES
    from utils.data import ioi_same_length, single_token_names
    from utils.models import load_model

    model = load_model("mlp4l", device="cpu")
    data = ioi_same_length(model, FRAMES, single_token_names(model, TRAIN_NAMES), n_pairs=2, seed=0)
    corrupted = data.swapped(model).tokens
    _, cache = model.run_with_cache(data.tokens)
    return model, corrupted, cache, _metric(model, data.tokens, corrupted, data.answer_tokens)


def gpt2_inputs(n_prompts: int, n_tokens: int):
    import torch

    model = gpt2_shaped()
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, model.cfg.d_vocab, (n_prompts, n_tokens), generator=g)
    corrupted = tokens.clone()
    changed = torch.rand(n_prompts, n_tokens, generator=g) < 1 / 3
    corrupted[changed] = torch.randint(1, model.cfg.d_vocab, (int(changed.sum()),), generator=g)
    answers = torch.randint(1, model.cfg.d_vocab, (n_prompts, 2), generator=g)
    _, cache = model.run_with_cache(tokens)
    return model, corrupted, cache, _metric(model, tokens, corrupted, answers)


def compare(model, corrupted, cache, metric, repeats: int) -> dict:
    import torch
    from transformer_lens import patching

    from solutions import ch05_patching as chapter

    rows = {}
    for atp_name, exact_name in PAIRS:
        seconds = {"atp": [], "library": [], "engine": []}
        fns = {"atp": getattr(chapter, atp_name), "library": getattr(patching, exact_name),
               "engine": getattr(chapter.fast, exact_name)}
        outs = {}
        for _ in range(repeats):
            for method, fn in fns.items():
                start = time.perf_counter()
                outs[method] = fn(model, corrupted, cache, metric)
                seconds[method].append(time.perf_counter() - start)
        diff = (outs["engine"] - outs["library"]).abs().max().item()
        if not torch.allclose(outs["engine"], outs["library"], atol=1e-4, rtol=0):
            raise SystemExit(f"{exact_name}: the engine differs from transformer_lens.patching by {diff:.2e}")
        best = {method: min(times) for method, times in seconds.items()}
        exact, estimate = outs["library"].flatten(), outs["atp"].flatten()
        rows[atp_name] = dict(
            atp_s=round(best["atp"], 3), library_s=round(best["library"], 3), engine_s=round(best["engine"], 3),
            speedup_vs_library=round(best["library"] / best["atp"], 1),
            speedup_vs_engine=round(best["engine"] / best["atp"], 1), patches=int(exact.numel()),
            correlation=round(torch.corrcoef(torch.stack([exact, estimate]))[0, 1].item(), 3),
            engine_vs_library_max_abs_diff=diff)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CI machine is shared: 1)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each method; the best time counts")
    parser.add_argument("--gpt2-prompts", type=int, default=2)
    parser.add_argument("--gpt2-tokens", type=int, default=12)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    results = {}
    with torch.no_grad():
        for label, make in [("mlp4l", mlp4l_inputs),
                            ("gpt2-small-shaped", lambda: gpt2_inputs(args.gpt2_prompts, args.gpt2_tokens))]:
            model, corrupted, cache, metric = make()
            rows = compare(model, corrupted, cache, metric, args.repeats)
            results[label] = dict(prompts=int(corrupted.shape[0]), tokens=int(corrupted.shape[1]), functions=rows)
            print(f"\n{label}: {corrupted.shape[0]} prompts x {corrupted.shape[1]} tokens (CPU, {args.threads} "
                  f"thread(s))")
            print(f"  {'AtP function':<30} {'patches':>7} {'AtP':>8} {'library':>9} {'engine':>8} {'x library':>9} "
                  f"{'x engine':>8} {'corr':>6}")
            for name, r in rows.items():
                print(f"  {name:<30} {r['patches']:>7} {r['atp_s']:>7.3f}s {r['library_s']:>8.2f}s "
                      f"{r['engine_s']:>7.2f}s {r['speedup_vs_library']:>8.1f}x {r['speedup_vs_engine']:>7.1f}x "
                      f"{r['correlation']:>6.2f}")
    conditions = dict(date=time.strftime("%Y-%m-%d %H:%M"), device="cpu", threads=args.threads,
                      cpu_count=os.cpu_count(), load_average_before=[round(x, 2) for x in load_before],
                      load_average_after=[round(x, 2) for x in os.getloadavg()], torch=torch.__version__,
                      python=platform.python_version(), repeats=args.repeats)
    Path(args.out).write_text(json.dumps(dict(conditions=conditions, models=results), indent=2) + "\n")
    print(f"\nload average {conditions['load_average_before']} -> {conditions['load_average_after']}; "
          f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
