"""Device choice: environment override, clear errors, visible choice."""

import pytest
import torch

from utils.device import describe_device, get_device

pytestmark = pytest.mark.tooling


def test_override_and_auto(monkeypatch):
    monkeypatch.setenv("CS_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    assert "from $CS_DEVICE" in describe_device()
    monkeypatch.delenv("CS_DEVICE")
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert get_device("cpu") == torch.device("cpu")


def test_unknown_or_unavailable_devices_fail_clearly(monkeypatch):
    with pytest.raises(RuntimeError, match="Unknown device 'tpu'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda.is_available"):
            get_device("cuda")
