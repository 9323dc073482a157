"""Checkers for chapter 0 (PyTorch, einops & jaxtyping warm-up).

Each exercise yields its cases (random tensors from a seeded generator, built on the checker's device, plus
edge cases); ``tests/framework.py`` compares the learner's function with ``solutions.ch00_pytorch_einops``
on each and ``checks/mutants/ch00_pytorch_einops.py`` holds the known mistakes.
"""

import torch
import torch.nn.functional as F
from torch import nn

from checks.helpers import LOGITS, randn, seeded
from checks.mutants.ch00_pytorch_einops import MUTANTS
from utils.checkers import Chapter
from utils.checking import Case, CheckFailure, Status, compare

chapter = Chapter("ch00_pytorch_einops", mutants=MUTANTS)



@chapter.exercise(dims="batch pos head d_head")
def split_heads(device):
    yield Case((randn(2, 5, 32, device=device), 4), label="batch=2, pos=5, d_model=32, n_heads=4")
    yield Case((randn(1, 3, 12, device=device, seed=1), 3), label="d_model=12, n_heads=3")
    yield Case((randn(2, 2, 6, device=device, seed=2), 1), label="a single head")


@chapter.exercise(dims="batch pos d_model")
def merge_heads(device):
    yield Case((randn(2, 5, 4, 8, device=device),), label="batch=2, pos=5, 4 heads of d_head=8")
    yield Case((randn(1, 1, 3, 2, device=device, seed=1),), label="one position, 3 heads of d_head=2")


@chapter.exercise(dims="batch head posQ posK")
def attention_scores(device):
    yield Case((randn(2, 6, 3, 8, device=device), randn(2, 6, 3, 8, device=device, seed=1)),
               label="batch=2, 6 positions, 3 heads, d_head=8")
    yield Case((randn(1, 4, 2, 16, device=device, seed=2), randn(1, 7, 2, 16, device=device, seed=3)),
               label="4 query positions, 7 key positions")


@chapter.exercise(dims="batch head posQ posK")
def apply_causal_mask(device):
    yield Case((randn(2, 3, 5, 5, device=device),), label="batch=2, 3 heads, 5 positions")
    yield Case((randn(1, 1, 1, 1, device=device, seed=1),), label="a single position (nothing to mask)")


@chapter.exercise(dims="batch head posQ posK")
def attention_pattern(device):
    yield Case((randn(2, 6, 3, 8, device=device, scale=2.0), randn(2, 6, 3, 8, device=device, seed=1, scale=2.0)),
               label="batch=2, 6 positions, 3 heads, d_head=8")
    yield Case((randn(1, 1, 1, 4, device=device, seed=2), randn(1, 1, 1, 4, device=device, seed=3)),
               label="a single position")


def _tokens(batch, pos, d_vocab, device, seed):
    return torch.randint(0, d_vocab, (batch, pos), generator=seeded(seed)).to(device)


@chapter.exercise(dims="batch pos_minus_1")
def next_token_log_probs(device):
    yield Case((randn(3, 7, 50, device=device, scale=3.0), _tokens(3, 7, 50, device, 1)),
               label="batch=3, pos=7, d_vocab=50")
    yield Case((randn(1, 2, 10, device=device, seed=2), _tokens(1, 2, 10, device, 3)), label="two tokens")


@chapter.exercise(dims="batch k")
def top_k_next_tokens(device):
    yield Case((randn(3, 5, 100, device=device), 5), label="batch=3, pos=5, d_vocab=100, k=5")
    yield Case((randn(2, 1, 20, device=device, seed=1), 1), label="one position, k=1")


def _mask(batch, pos, device, seed, p=0.6):
    mask = torch.rand(batch, pos, generator=seeded(seed)) < p
    mask[:, 0] = True
    return mask.to(device)


@chapter.exercise(dims="batch d_model")
def masked_mean(device):
    yield Case((randn(3, 6, 8, device=device), _mask(3, 6, device, 1)), label="batch=3, pos=6, some padding")
    empty_row = _mask(2, 4, device, 2)
    empty_row[1] = False
    yield Case((randn(2, 4, 5, device=device, seed=3), empty_row), label="a row with no real tokens")


@chapter.exercise(dims="batch seq_len d_model")
def batch_positional_embeddings(device):
    yield Case((randn(16, 8, device=device), 3, 5), label="n_ctx=16, d_model=8, batch=3, seq_len=5")
    yield Case((randn(4, 2, device=device, seed=1), 1, 4), label="seq_len = n_ctx")


def probe_data(device, n=240, d_model=16, n_classes=3, seed=0):
    """Gaussian clusters: a linear probe can separate them, an untrained one cannot."""
    generator = seeded(seed)
    centers = torch.randn(n_classes, d_model, generator=generator)
    labels = torch.randint(0, n_classes, (2 * n,), generator=generator)
    acts = centers[labels] + 0.8 * torch.randn(2 * n, d_model, generator=generator)
    acts, labels = acts.to(device), labels.to(device)
    return acts[:n], labels[:n], acts[n:], labels[n:]


PROBE_ACCURACY_SLACK = 0.05  # another optimiser order or init may do slightly worse than the reference


def _probe_logits(device):
    """The transform of train_linear_probe: a trained probe -> its logits on the held-out examples."""
    test_x = probe_data(device)[2]

    def logits(probe):
        if not isinstance(probe, nn.Linear):
            raise CheckFailure(Status.WRONG_TYPE, f"returned {type(probe).__name__}, expected the trained nn.Linear "
                               "probe")
        compare(probe.weight, torch.zeros(3, 16, device=device), name="probe.weight", dims="n_classes d_model",
                values=False)
        weight = probe.weight.detach().as_subclass(torch.Tensor)
        bias = None if probe.bias is None else probe.bias.detach().as_subclass(torch.Tensor)
        return F.linear(test_x, weight, bias)

    return logits


def _judge_probe(attempt):
    """The learner's probe must classify held-out examples about as well as the reference probe (trained
    probes differ with the optimiser's order or init, so their weights are not compared), and the seed must drive
    it: the same seed gives the same probe, another seed another."""
    test_y = probe_data(attempt.device)[3]
    got_acc = (attempt.got.argmax(-1) == test_y).float().mean().item()
    expected_acc = (attempt.expected.argmax(-1) == test_y).float().mean().item()
    if got_acc < expected_acc - PROBE_ACCURACY_SLACK:
        raise CheckFailure(Status.WRONG_VALUES, f"your probe classifies {got_acc:.0%} of held-out examples "
                           f"correctly; the reference reaches {expected_acc:.0%} (allowed shortfall "
                           f"{PROBE_ACCURACY_SLACK:.0%})")
    if attempt.case.kwargs.get("seed") is None:
        return
    again = attempt.transform(attempt.call_again())
    other = attempt.transform(attempt.call_again(seed=attempt.case.kwargs["seed"] + 1))
    if not torch.equal(attempt.got, again) or torch.equal(attempt.got, other):
        raise CheckFailure(Status.WRONG_VALUES, "the same seed must give the same probe and another seed another: "
                           "call torch.manual_seed(seed) before creating the probe")


# Logits of probes are compared with the known mistakes' (for the diagnosis) with a looser tolerance than the
# default: the learner's and the mutant's training loops may sum in different orders. The data are easy (5 steps
# with the defaults reach 98%), so the cases that test n_steps and lr make them matter: too few steps or too small a
# learning rate leaves the probe near its initialisation (60% or less with these seeds).
@chapter.exercise(transform_for=_probe_logits, judge=_judge_probe, tol=LOGITS)
def train_linear_probe(device):
    train_x, train_y, _, _ = probe_data(device)
    yield Case((train_x, train_y, 3), label="3 clusters in d_model=16, 240 training examples")
    yield Case((train_x, train_y, 3), {"seed": 1}, label="seed=1 (the same seed gives the same probe, another "
               "another)")
    yield Case((train_x, train_y, 3), {"n_steps": 400, "lr": 1e-3, "seed": 3},
               label="n_steps=400, lr=1e-3, seed=3 (400 small steps are needed)")
    yield Case((train_x, train_y, 3), {"n_steps": 2, "lr": 1.0, "seed": 3},
               label="n_steps=2, lr=1.0, seed=3 (two large steps)")
