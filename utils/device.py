"""Choosing the device every chapter, checker and grader runs on.

Policy (documented in the README):

- ``CS_DEVICE`` (e.g. ``CS_DEVICE=cpu``) or an explicit argument always wins.
- Otherwise CUDA if available, else CPU.
- Apple's MPS is **opt-in** (``CS_DEVICE=mps``): some torch versions give silently wrong results on MPS for
  ops TransformerLens uses, which is why TransformerLens itself never picks MPS automatically. A learner on a
  Mac who opts in gets looser checker tolerances (see ``checks/helpers.py``), and
  ``describe_device`` says when MPS was available but not chosen, so the choice is always visible.

Example:
    >>> from utils.device import get_device, describe_device
    >>> get_device()                     # torch.device('cpu') on a laptop without CUDA
    >>> print(describe_device())         # "Device: cpu (auto; set CS_DEVICE=... to change)"
"""

from __future__ import annotations

import os

import torch

ENV_VAR = "CS_DEVICE"
KNOWN = ("cpu", "cuda", "mps")


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def get_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``preferred``, else ``$CS_DEVICE``, else CUDA if available, else CPU.

    Raises ``RuntimeError`` with a clear message when the requested device does not exist here.
    """
    choice = preferred if preferred not in (None, "", "auto") else os.environ.get(ENV_VAR, "auto")
    choice = str(choice).strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = choice.split(":")[0]
    if kind not in KNOWN:
        raise RuntimeError(f"Unknown device {choice!r}: use one of {', '.join(KNOWN)} (or 'auto').")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"Device {choice!r} was requested but torch.cuda.is_available() is False here.")
    if kind == "mps" and not mps_available():
        raise RuntimeError(f"Device {choice!r} was requested but MPS is not available in this torch build.")
    return torch.device(choice)


def describe_device(device: torch.device | None = None) -> str:
    """One line a learner can read: which device, why, and how to change it."""
    device = device or get_device()
    how = f"from ${ENV_VAR}" if os.environ.get(ENV_VAR) else "auto"
    line = f"Device: {device} ({how}; set {ENV_VAR}=cpu|cuda|mps to change)"
    if device.type == "cpu" and mps_available():
        line += (
            f". Apple MPS is available but off by default (known wrong-result bugs in some torch versions);"
            f" set {ENV_VAR}=mps to try it."
        )
    return line
