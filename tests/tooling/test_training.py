"""A few-step smoke run of the model training script (CI never trains the shipped models; it loads them)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from training import train_model
from utils.models import PROCESSING_DEFAULTS, load_model_folder

pytestmark = pytest.mark.tooling


@pytest.mark.timeout(300)
def test_train_model_smoke_run_writes_a_loadable_model_and_its_card(tmp_path):
    """4 steps of mlp4l with the MLP-off warm-up (2 steps), the MLP ramp (1 step), then 2 steps of the IOI phase
    (v2 corpus, rows starting at documents, random tokens after text), the stage-1 copy and the card."""
    cmd = [sys.executable, "-m", "training.train_model", "--config", "mlp4l", "--name", "smoke",
           "--models-dir", str(tmp_path), "--tokens", "16384", "--warmup-tokens", "4096",
           "--warmup-max-tokens", "8192", "--mlp-ramp-tokens", "4096", "--eval-every", "1", "--device", "cpu",
           "--ioi-tokens", "8192", "--ioi-eval-tokens", "4096", "--pseudo-names-frac", "0.1",
           "--stage1-dir", str(tmp_path / "stage1")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(train_model.ROOT)}
    run = subprocess.run(cmd, cwd=train_model.ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    folder = tmp_path / "smoke"
    info = json.loads((folder / "train_info.json").read_text())
    assert info["steps"] == 4 and info["tokens_seen"] == 16384 and info["warmup_tokens"] == 8192, info
    assert info["warmup_mlp_off"] is True and not info["stopped_early"]
    assert "warm-up done at 8,192 tokens" in run.stdout + run.stderr
    assert [entry["mlp_scale"] for entry in info["log"]] == [0, 0, 0, 1]  # off in the warm-up, then ramped in
    phase = info["ioi_phase"]
    assert phase["steps"] == 2 and phase["tokens"] == 8192 and len(phase["log"]) == 2, phase
    assert (tmp_path / "stage1" / "model.safetensors").exists()
    card = (folder / "README.md").read_text()
    assert "## Measured properties" in card and "--warmup-mlp-off --mlp-ramp-tokens 4096" in card
    assert "**IOI phase**" in card and "--ioi-tokens 8192" in card and "training names x held-out frames" in card
    model = load_model_folder(folder, "cpu", **{opt: False for opt in PROCESSING_DEFAULTS})
    assert model.cfg.n_layers == 4 and not model.cfg.attn_only
    tokens = torch.tensor([[0, 5, 6, 7]])
    assert torch.isfinite(model(tokens)).all()
