"""Device and precision choices: auto picks the best available, explicit choices are checked."""

import pytest
import torch

import sml.device as device_module
from sml.device import pick_device, pick_dtype, pick_runtime
from sml.errors import SMLError


def test_auto_on_a_cpu_only_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "nvidia_gpu_present", lambda: False)
    runtime = pick_runtime("auto", "auto", "auto")
    assert runtime.device.type == "cpu" and runtime.compile is False
    expected = torch.bfloat16 if device_module.cpu_has_fast_bf16() else torch.float32
    assert runtime.dtype == expected and not runtime.use_scaler
    assert "device cpu" in runtime.describe()


def test_auto_prefers_mps_to_the_cpu_and_keeps_it_float32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto").type == "mps"
    assert pick_dtype("auto", torch.device("mps")) == torch.float32


def test_auto_warns_when_an_nvidia_gpu_is_unusable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "nvidia_gpu_present", lambda: True)
    with pytest.warns(UserWarning, match="NVIDIA GPU is present but this torch has no CUDA"):
        assert pick_device("auto").type == "cpu"


@pytest.mark.parametrize("choice", ["cuda", "mps"])
def test_an_unavailable_device_fails_with_the_key(monkeypatch, choice):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(SMLError, match=f"train.device = '{choice}', but this torch cannot use {choice}"):
        pick_device(choice)


def test_dtypes_on_cuda_and_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert pick_dtype("auto", torch.device("cuda")) == torch.float16  # an older GPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert pick_dtype("float32", torch.device("cuda")) == torch.float32
    with pytest.raises(SMLError, match="float16' is not supported on the CPU"):
        pick_dtype("float16", torch.device("cpu"))
    assert pick_runtime("cpu", "bfloat16", True).compile is True
