"""Headless Chromium, offline, for the tests that look at a page the way a reader's browser draws it.

``.ci/run`` installs Debian's ``chromium`` when it is missing, so these tests run in CI; elsewhere they are skipped
(``needs_chromium``) when no Chromium is found.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (.ci/run installs Debian's chromium)")

# No network: background services off, and every request sent to a proxy that never answers. No software WebGL
# either: every figure of the course is SVG or HTML, and emulating a GPU on the CPU for plotly's probe of WebGL took
# 12 of the 14 s chapter 4's page needed to render.
OFFLINE = ["--disable-background-networking", "--disable-component-update", "--no-first-run",
           "--proxy-server=127.0.0.1:9", "--disable-software-rasterizer"]


def _chromium(page: Path, *args: str, timeout: float) -> str:
    assert CHROMIUM is not None, "no chromium"
    with tempfile.TemporaryDirectory() as profile:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", *OFFLINE, f"--user-data-dir={profile}",
                   *args, Path(page).resolve().as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout).stdout


def dump_dom(page: Path, budget_ms: int = 20_000, timeout: float = 300) -> str:
    """The page's DOM after its scripts ran (for up to ``budget_ms`` of virtual time)."""
    return _chromium(page, f"--virtual-time-budget={budget_ms}", "--dump-dom", timeout=timeout)


def screenshot(page: Path, png: Path, size: str = "1600,2000", budget_ms: int = 20_000, timeout: float = 300) -> None:
    """A PNG of the page's first ``size`` pixels (width,height), after its scripts ran."""
    _chromium(page, f"--window-size={size}", f"--virtual-time-budget={budget_ms}", f"--screenshot={Path(png)}",
              timeout=timeout)
