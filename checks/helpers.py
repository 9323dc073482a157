"""What every chapter's checkers share (as SAE-Lens's ``tests/helpers.py``): seeded random inputs, the shipped models
per device, and the per-device tolerances an exercise's outputs are compared with. In a checker module::

    @chapter.exercise(dims="batch", tol=METRIC)             # logit differences: 1e-4 on CPU, looser on GPUs
    def logit_diff(device):                                 # (no tol=: DEFAULT)
        model = chapter_model(chapter, device)              # the model chapters.toml declares, loaded once per device
        x = randn(2, 5, model.cfg.d_model, device=device, seed=1)   # the same numbers on every device
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from utils.checking import Tolerances

if TYPE_CHECKING:
    from utils.checkers import Chapter

# --------------------------------------------------------------------------------------------------------------
# Tolerances (atol, rtol) per device type: every table the checkers use, here. CPU float32 kernels are deterministic
# up to summation order; CUDA reorders reductions (and may use TF32); MPS has the loosest float32 arithmetic of the
# three. A tolerance covers float rounding, never another reading of the spec (README, "Contributing").
# --------------------------------------------------------------------------------------------------------------
DEFAULT: Tolerances = {"cpu": (1e-5, 1e-4), "cuda": (1e-4, 1e-3), "mps": (1e-3, 1e-2)}
"""An exercise's tolerance unless it names another: 1e-5 absolute on CPU covers a learner who sums in another
order."""

LOSS: Tolerances = {"cpu": (1e-4, 1e-4), "cuda": (1e-3, 1e-3), "mps": (5e-3, 1e-2)}
"""Losses, log-probabilities and SAE metrics: log-softmax of logits of size ~10 computed by another formula (log of
softmax, logsumexp) moves ~1e-5."""

METRIC: Tolerances = {"cpu": (1e-4, 1e-4), "cuda": (2e-3, 1e-2), "mps": (1e-2, 1e-2)}
"""Logit differences and what is built from them (direct logit attribution, patching metrics): differences of two
logits after a full forward pass, possibly patched."""

LOGITS: Tolerances = {"cpu": (1e-4, 1e-3), "cuda": (2e-3, 1e-2), "mps": (5e-3, 1e-2)}
"""Logits and products of weight matrices (OV/QK circuits, composition scores, a trained probe's logits): sums over
d_model or d_vocab terms, relative error grows with their size."""

PATTERNS: Tolerances = {"cpu": (1e-5, 1e-3), "cuda": (1e-4, 1e-3), "mps": (1e-3, 1e-2)}
"""Attention patterns (probabilities in [0, 1]): tight absolute, relative for the near-zero entries."""


# --------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------
def randn(*shape: int, device: torch.device, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """Standard normal numbers drawn on the CPU from ``seed`` (the same values on every device), moved to ``device``."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator) * scale).to(device)


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (for ``torch.randint``/``torch.randperm`` cases)."""
    return torch.Generator().manual_seed(seed)


class ModelNotShipped(RuntimeError):
    """A checker needs a model or an SAE that ``models/`` does not hold (yet): the check cannot run here."""


def shipped_model(name: str, device: torch.device, **options):
    """The shipped model ``models/<name>`` on ``device``, loaded once per process (``utils.models.cached_model``;
    ``options`` such as ``sae_transformer=True`` pick a variant). Raises :class:`ModelNotShipped` when it is absent."""
    from utils.models import MODELS_DIR, cached_model

    if not (MODELS_DIR / name / "config.json").exists():
        raise ModelNotShipped(f"models/{name} is not shipped yet")
    return cached_model(name, device, **options)


def shipped_sae(name: str | None, device: torch.device, what: str = "this SAE"):
    """The shipped SAE ``models/saes/<name>`` on ``device`` (``utils.models.cached_sae``). Raises
    :class:`ModelNotShipped` when it is absent (``name=None``: no such SAE is shipped; ``what`` names it)."""
    from utils.models import SAES_DIR, cached_sae

    if name is None or not (SAES_DIR / name / "cfg.json").exists():
        raise ModelNotShipped(f"models/saes/{name} is not shipped yet" if name else f"{what} is not shipped yet")
    return cached_sae(name, device)


def chapter_model(chapter: Chapter, device: torch.device, **options):
    """The model ``chapter`` runs on (its ``model`` in ``chapters/chapters.toml``) on ``device``: the checkers of a
    chapter name no model themselves."""
    from utils.chapters import spec

    return shipped_model(spec(chapter.name).model, device, **options)
