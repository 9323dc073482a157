"""Figures in the chapters: set up once by the setup cell (``setup_figures``)."""

from __future__ import annotations


def setup_figures() -> None:
    """Configure plotly for the notebook that calls it."""
