"""What pristine state costs per learner call, and why ``utils/isolation.py`` compares exactly.

Three ways to keep a shared model pristine between learner calls, measured on the shipped models (one CPU thread):

- ``exact``: compare every parameter and buffer with the snapshot taken at load (``torch.equal``), restore only
  what changed — names the change exactly (what ``pristine`` does, with the cfg/tokenizer/hook checks on top);
- ``fingerprint``: a random projection of each tensor compared with the one taken at load — cheaper only if the
  tensors are large, and a change can (rarely) go unnoticed; restoring still needs the snapshot;
- ``restore``: copy the snapshot back after every call without looking — cannot tell the learner anything.

Also the whole guard (``pristine``: global state, RNG, every check) around a call that does nothing, and a plain
forward pass of a short prompt for scale. Results: printed and bench/isolation_results.json.

Usage: ``python -m bench.bench_isolation`` (``make bench``).
"""

import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.isolation import _SNAPSHOTS, find_changes, pristine  # noqa: E402
from utils.models import load_model  # noqa: E402


def per_call_ms(fn, n: int = 200) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return round((time.perf_counter() - start) / n * 1000, 3)


def main() -> int:
    torch.set_num_threads(1)
    results = {}
    for name in ("attn2l", "mlp4l"):
        model = load_model(name, device="cpu")
        snap = _SNAPSHOTS[model]
        params = [(p, values) for p, values, _ in snap.params.values()]
        weights = [torch.randn(values.shape) for _, values in params]
        prints = [float((values * w).sum()) for (_, values), w in zip(params, weights)]
        tokens = model.to_tokens("When Mary and John went to the store, John gave a drink to")

        def guard():
            with pristine([model]):
                pass

        results[name] = {
            "parameters": sum(values.numel() for _, values in params),
            "exact_compare_ms": per_call_ms(lambda: all(torch.equal(p.detach(), v) for p, v in params)),
            "fingerprint_ms": per_call_ms(lambda: [float((p.detach() * w).sum()) == f
                                                   for (p, _), w, f in zip(params, weights, prints)]),
            "restore_everything_ms": per_call_ms(lambda: [p.data.copy_(v) for p, v in params]),
            "find_changes_ms": per_call_ms(lambda: find_changes(model, snap)),
            "pristine_guard_ms": per_call_ms(guard),
            "forward_pass_ms": per_call_ms(lambda: model(tokens), n=50),
        }
    (ROOT / "bench" / "isolation_results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
