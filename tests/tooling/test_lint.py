"""ruff over the whole repository; among its rules, library code (utils/, solutions/) must not import tests/."""

import subprocess
import sys

import pytest

from utils.build import ROOT

pytestmark = pytest.mark.tooling


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(ROOT)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
