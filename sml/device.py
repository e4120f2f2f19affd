"""Where and in what precision the model runs: decided once, here, and printed.

- Device: ``auto`` picks CUDA, then Apple's MPS, then the CPU. If an NVIDIA GPU is in the
  machine but this torch cannot use it (PyPI's Windows wheel is CPU-only), ``auto`` says so.
- Precision: matmuls run under autocast in bfloat16 where the hardware does it natively
  (CUDA GPUs from Ampere on; CPUs with AVX-512 BF16 or AMX: ~2.5x the fp32 rate here),
  float16 with a gradient scaler on older GPUs, float32 otherwise. Weights and optimizer
  state stay float32 ("mixed" precision).
- ``torch.compile``: ``auto`` compiles on CUDA under Linux, where Triton makes it pay.

Left out on purpose: multi-GPU, and float16/bfloat16 weights.
"""

import contextlib
import os
import shutil
import sys
import warnings
from dataclasses import dataclass

import torch

from sml.errors import SMLError


@dataclass(frozen=True)
class Runtime:
    """The device, the autocast dtype, and whether to compile and scale gradients."""

    device: torch.device
    dtype: torch.dtype
    compile: bool

    @property
    def use_scaler(self) -> bool:
        """float16 gradients underflow without loss scaling; bfloat16's range needs none."""
        return self.dtype == torch.float16

    def autocast(self):
        """Context in which forward passes run in the low-precision dtype (if any)."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def describe(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else self.device.type
        dtype = str(self.dtype).removeprefix("torch.")
        return f"device {name}, autocast {dtype}, compile {'on' if self.compile else 'off'}"


def pick_runtime(device: str = "auto", dtype: str = "auto", compile: str | bool = "auto") -> Runtime:
    """Resolve the ``train.device``, ``train.dtype`` and ``train.compile`` choices."""
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    comp = (dev.type == "cuda" and sys.platform == "linux") if compile == "auto" else bool(compile)
    return Runtime(dev, dt, comp)


def pick_device(choice: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit choice must be available."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if choice == "auto":
        if cuda:
            return torch.device("cuda")
        if mps:
            return torch.device("mps")
        if nvidia_gpu_present():
            warnings.warn(
                "an NVIDIA GPU is present but this torch has no CUDA support, so training runs on"
                " the CPU. On Windows install torch from PyTorch's CUDA index (see README).",
                stacklevel=2,
            )
        return torch.device("cpu")
    if (choice == "cuda" and not cuda) or (choice == "mps" and not mps):
        raise SMLError(f"train.device = {choice!r}, but this torch cannot use {choice}: use auto or cpu")
    return torch.device(choice)


def pick_dtype(choice: str, device: torch.device) -> torch.dtype:
    """``auto`` -> the fastest dtype the device runs well; explicit choices are checked."""
    if choice == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32
    if choice == "float16" and device.type == "cpu":
        raise SMLError("train.dtype = 'float16' is not supported on the CPU: use bfloat16 or float32")
    return getattr(torch, choice)


def cpu_has_fast_bf16() -> bool:
    """True on x86 CPUs with native bfloat16 matmul (AVX-512 BF16 or AMX)."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((check and check()) or (amx and amx()))


def nvidia_gpu_present() -> bool:
    """Is there an NVIDIA GPU (driver installed), whatever torch can do with it?"""
    return shutil.which("nvidia-smi") is not None or os.path.exists("/proc/driver/nvidia/gpus")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
