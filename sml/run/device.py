"""Where and in what precision the model runs: decided once, here, and printed.

- Device: ``auto`` picks CUDA, then Apple's MPS, then the CPU. If an NVIDIA GPU is in the
  machine but this torch cannot use it (PyPI's Windows wheel is CPU-only), ``auto`` says so.
  With several GPUs, each process takes ``cuda:<local_rank>``.
- Precision: matmuls run under autocast in bfloat16 where the hardware does it natively
  (CUDA GPUs from Ampere on; CPUs with AVX-512 BF16 or AMX: ~2.5x the fp32 rate here),
  float16 with a gradient scaler on older GPUs, float32 otherwise. Weights and optimizer
  state stay float32 ("mixed" precision). float32 matmuls on CUDA use TF32.
- ``torch.compile``: ``auto`` compiles on CUDA under Linux, where Triton makes it pay.
- Deterministic mode, on request: the same seed gives the same numbers, a little slower.
- CPU threads (``pick_threads``): torch's default, one per core, collapses when another
  program is busy on a core (every op waits for its slowest thread: 977 against 15,563
  tokens/s with one thread, NOTES.md). So the train stage times the model's kind of work with
  all cores and with one, and keeps the faster; ``train.threads`` sets it instead.

Every stage that runs the model (train, evaluate, sample, plot) picks its device through
``pick_runtime``, and errors name that stage's params key (``sample.device = ...``).

Left out on purpose: launching several processes (torchrun does that), and float16/bfloat16
weights.
"""

import contextlib
import importlib.util
import os
import platform
import shutil
import sys
import time
import warnings
from dataclasses import dataclass

import torch

from sml.run.errors import SMLError


@dataclass(frozen=True)
class Runtime:
    """The device, the autocast dtype, and whether to compile, scale gradients, be deterministic."""

    device: torch.device
    dtype: torch.dtype
    compile: bool
    deterministic: bool = False

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
        """One line for the run's header: 'device NVIDIA A100, autocast bfloat16, compile on'."""
        cuda = self.device.type == "cuda"
        name = torch.cuda.get_device_name(self.device) if cuda else self.device.type
        dtype = str(self.dtype).removeprefix("torch.")
        if cuda and self.dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest":
            dtype += " (TF32 matmuls)"
        line = f"device {name}, autocast {dtype}, compile {'on' if self.compile else 'off'}"
        return line + (", deterministic" if self.deterministic else "")


def pick_runtime(device: str = "auto", dtype: str = "auto", compile: str | bool = "auto", *,
                 key: str = "train", deterministic: bool = False, local_rank: int = 0) -> Runtime:
    """Resolve the ``<key>.device``, ``<key>.dtype`` and ``<key>.compile`` choices.

    ``key`` is the params section the choices come from, so that errors name it. On CUDA
    this also sets process-wide state, once, before any work: the current GPU
    (``cuda:<local_rank>``, one process per GPU) and TF32 for float32 matmuls (10 mantissa
    bits instead of 23, several times faster on Ampere and later; training rarely notices).
    ``deterministic`` makes torch use deterministic kernels (and raise on an op that has
    none): the same seed then gives the same numbers on the same machine.
    """
    dev = pick_device(device, key=key)
    if deterministic:
        if dev.type == "cuda":
            # cuBLAS reads this once, when it starts (at the first matmul): set it before that.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    if dev.type == "cuda":
        dev = _take_gpu(local_rank)
    return Runtime(dev, pick_dtype(dtype, dev, key=key), pick_compile(compile, dev, key=key), deterministic)


def _take_gpu(local_rank: int) -> torch.device:
    """Make ``cuda:<local_rank>`` this process's GPU, with TF32 for float32 matmuls (both process-wide)."""
    if not 0 <= local_rank < torch.cuda.device_count():
        raise SMLError(f"local rank {local_rank} needs cuda:{local_rank}, but this torch sees"
                       f" {torch.cuda.device_count()} GPU(s): start at most one process per GPU")
    dev = torch.device("cuda", local_rank)
    torch.cuda.set_device(dev)
    torch.set_float32_matmul_precision("high")  # cudnn.allow_tf32 (convolutions) is on by default
    return dev


def pick_device(choice: str, *, key: str = "train") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit choice must be available."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if choice == "auto":
        if cuda:
            return torch.device("cuda")
        if mps:
            return torch.device("mps")
        if nvidia_gpu_present():
            warnings.warn(
                "an NVIDIA GPU is present but this torch has no CUDA support, so the model runs on"
                " the CPU. On Windows install torch from PyTorch's CUDA index (see README).",
                stacklevel=2,
            )
        return torch.device("cpu")
    if (choice == "cuda" and not cuda) or (choice == "mps" and not mps):
        raise SMLError(f"{key}.device = {choice!r}, but this torch cannot use {choice}: use auto or cpu")
    return torch.device(choice)


def pick_dtype(choice: str, device: torch.device, *, key: str = "train") -> torch.dtype:
    """``auto`` -> the fastest dtype the device runs well; explicit choices are checked."""
    if choice == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if cuda_has_native_bf16() else torch.float16
        if device.type == "cpu" and cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32
    if choice == "float16" and device.type == "cpu":
        raise SMLError(f"{key}.dtype = 'float16' is not supported on the CPU: use bfloat16 or float32")
    if choice == "bfloat16" and device.type == "cuda" and not cuda_has_native_bf16():
        raise SMLError(f"{key}.dtype = 'bfloat16', but this GPU only emulates bfloat16 (slowly; native"
                       " from Ampere on): use float16 or auto")
    if choice == "bfloat16" and device.type == "mps" and macos_major() < 14:
        raise SMLError(f"{key}.dtype = 'bfloat16' needs macOS 14 or later on MPS (this is macOS"
                       f" {platform.mac_ver()[0] or 'unknown'}): set {key}.dtype: float32 (or auto)")
    return getattr(torch, choice)


def pick_compile(choice: str | bool, device: torch.device, *, key: str = "train") -> bool:
    """``auto`` -> compile on CUDA under Linux only; ``true`` is refused where it cannot work."""
    if choice == "auto":
        return device.type == "cuda" and os_platform() == "linux"
    # torch.compile generates GPU kernels with Triton, which PyPI has no Windows build of:
    # without it the first forward pass fails deep inside the compiler.
    if choice and device.type == "cuda" and os_platform() == "win32" and not triton_installed():
        raise SMLError(f"{key}.compile = true, but torch.compile needs Triton, which is not installed"
                       f" on this Windows machine: set {key}.compile: false (or auto)")
    return bool(choice)


SLOWER_BY = 0.9  # all cores are kept unless they run at less than this share of one thread's speed


def pick_threads(threads: int, device: torch.device, width: int, rows: int, picked: int = 0) -> tuple[int, str]:
    """Set torch's CPU threads for this process; return how many, and why (for the header).

    ``threads``: ``train.threads`` (0: pick). ``picked``: the count a resumed run picked when it
    started (kept: another count computes other bits, and resuming is bit-exact). Else, on a
    CPU, ``_threads_rate`` at the model's ``width`` and ``rows`` with every core and with one.
    OMP_NUM_THREADS, when set (by the user, or for several processes), is kept as it is.
    """
    if threads:
        torch.set_num_threads(threads)
        return threads, "train.threads"
    if os.environ.get("OMP_NUM_THREADS") or device.type != "cpu":
        return torch.get_num_threads(), "OMP_NUM_THREADS" if os.environ.get("OMP_NUM_THREADS") else "torch's default"
    if picked:
        torch.set_num_threads(picked)
        return picked, "picked when the run started"
    cores = torch.get_num_threads()
    if cores == 1:
        return 1, "one core"
    rates = _in_turns(cores, lambda n: _threads_rate(n, width, rows))
    best = cores if rates[cores] >= SLOWER_BY * rates[1] else 1  # one thread only when clearly faster
    torch.set_num_threads(best)
    return best, (f"measured: {cores} threads ran this model's kind of work at {rates[cores] / rates[1]:.2f}x"
                  f" one thread's speed" + ("" if best == cores else ": is another program busy on this machine?"))


def pick_decode_threads(model: torch.nn.Module, device: torch.device) -> tuple[int, str, float | None]:
    """Set the CPU threads for sampling from ``model``: the faster of every core and one for its
    one-token step, timed (a 1 x C row is often too small to share between threads: each of a
    decode step's dozens of tiny matmuls then waits for the other thread). Returns (count, why,
    the eager steps per second at that count, or None where nothing was timed).
    """
    if os.environ.get("OMP_NUM_THREADS") or device.type != "cpu" or torch.get_num_threads() == 1:
        why = "OMP_NUM_THREADS" if os.environ.get("OMP_NUM_THREADS") else "as set"
        return torch.get_num_threads(), why, None
    from sml.kvcache import KVCache

    cores, was_training = torch.get_num_threads(), model.training
    cache, token = KVCache(model, 1, device), torch.zeros(1, 1, dtype=torch.long, device=device)
    steps = min(16, model.cfg.block_size - 1)

    def steps_per_s(n: int) -> float:
        torch.set_num_threads(n)
        cache.reset()
        model(token, cache=cache)  # warm-up: the thread pool, the buffers
        start = time.perf_counter()
        for _ in range(steps):
            model(token, cache=cache)
        return steps / (time.perf_counter() - start)

    model.eval()
    try:
        with torch.inference_mode(), small_ops(device):
            rates = _in_turns(cores, steps_per_s)
    finally:
        model.train(was_training)
    best = cores if rates[cores] >= rates[1] else 1
    torch.set_num_threads(best)
    return (best, f"timed: one thread ran its decode step at {rates[1] / rates[cores]:.2f}x the speed of {cores}",
            rates[best])


@contextlib.contextmanager
def small_ops(device: torch.device):
    """On a CPU, the enclosed work runs without oneDNN: a decode step's operations are one row
    each, and oneDNN's setup per call outweighs them (an exact GELU of 512 numbers: ~10-15 us
    with it, ~2 us in PyTorch's own kernel; the whole step at nanoGPT's CPU size: 12% faster
    without it, docs/benchmarks.md). Elsewhere, or with oneDNN already off, nothing changes."""
    if device.type != "cpu" or not torch.backends.mkldnn.enabled:
        yield
        return
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = True


def _in_turns(cores: int, rate_of) -> dict[int, float]:
    """``rate_of(n)`` on every core and on one, in turns, the best of two each: on a shared machine
    one moment of noise is not a verdict."""
    rates: dict[int, float] = {}
    for n in (cores, 1, cores, 1):
        rates[n] = max(rates.get(n, 0.0), rate_of(n))
    return rates


# Compiling the one-token step (torch.compile; the cache's fixed shapes make it one graph), as
# measured on CPUs (docs/benchmarks.md, "A decode step with fixed shapes"): 1.44x-1.63x the eager
# speed, after about 16 s of compiling on a first run (3-6 s once PyTorch's cache is warm).
COMPILED_SPEEDUP = {"cpu": 1.5}
COMPILE_SECONDS = {"cpu": 16.0}


def compile_pays(device: torch.device, tokens: int, steps_per_s: float | None) -> tuple[bool, str]:
    """Whether compiling the decode step pays for writing ``tokens`` at ``steps_per_s`` eager, and
    one line that says so: the break-even is the compile time over the seconds saved per token.

    >>> compile_pays(torch.device("cpu"), 1_500, 1_000.0)
    (False, 'eager decode step: 1,500 tokens to write; compiling (~16 s) pays from ~48,000 tokens here')
    """
    if device.type not in COMPILED_SPEEDUP:
        return False, f"eager decode step (compiling it on {device.type}: no measured break-even yet)"
    if not steps_per_s:
        return False, "eager decode step (not timed here, so no break-even for compiling it)"
    saved = 1 / steps_per_s - 1 / (steps_per_s * COMPILED_SPEEDUP[device.type])  # seconds per token
    break_even = COMPILE_SECONDS[device.type] / saved
    if tokens >= break_even:
        return True, f"compiled decode step: {tokens:,} tokens to write; compiling pays from ~{break_even:,.0f} here"
    return False, (f"eager decode step: {tokens:,} tokens to write; compiling (~{COMPILE_SECONDS[device.type]:.0f} s)"
                   f" pays from ~{break_even:,.0f} tokens here")


def _threads_rate(threads: int, width: int, rows: int, budget_s: float = 0.05) -> float:
    """Blocks per second of an MLP, a residual and a layer norm (``rows`` x ``width``, like one of
    the model's) on ``threads`` threads: short ops, where a thread kept waiting by a busy core
    holds up every op (2 cores: 1.7x one thread's speed idle, 0.7x beside a busy process)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    F = torch.nn.functional
    try:
        g = torch.Generator().manual_seed(0)  # not the run's random numbers
        shapes = ((rows, width), (width, 4 * width), (4 * width, width))
        x, w1, w2 = (torch.randn(shape, generator=g) for shape in shapes)
        F.layer_norm(F.gelu(x @ w1) @ w2 + x, (width,))  # warm-up: the thread pool, the buffers
        best = 0.0
        for _ in range(3):
            done, start = 0, time.perf_counter()
            while (spent := time.perf_counter() - start) < budget_s or done == 0:
                F.layer_norm(F.gelu(x @ w1) @ w2 + x, (width,))
                done += 1
            best = max(best, done / spent)
        return best
    finally:
        torch.set_num_threads(previous)


def cuda_has_native_bf16() -> bool:
    """True on CUDA GPUs that compute in bfloat16 (Ampere on); Turing and older only emulate it."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


def cpu_has_fast_bf16() -> bool:
    """True on x86 CPUs with native bfloat16 matmul (AVX-512 BF16 or AMX)."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((check and check()) or (amx and amx()))


def macos_major() -> int:
    """The macOS major version (14 for Sonoma), 0 when not on macOS.

    >>> macos_major() >= 0
    True
    """
    release = platform.mac_ver()[0]  # '14.4.1', or '' elsewhere
    return int(release.split(".")[0]) if release else 0


def os_platform() -> str:
    """``sys.platform``: 'linux', 'darwin' or 'win32' (a function, so tests can pretend)."""
    return sys.platform


def triton_installed() -> bool:
    """Can ``torch.compile`` find Triton, its GPU kernel compiler?"""
    return importlib.util.find_spec("triton") is not None


def nvidia_gpu_present() -> bool:
    """Is there an NVIDIA GPU (driver installed), whatever torch can do with it?"""
    return shutil.which("nvidia-smi") is not None or os.path.exists("/proc/driver/nvidia/gpus")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def prepare_decoding(model: torch.nn.Module, device: torch.device, tokens: int, who: str = "sample",
                     out=None) -> torch.nn.Module:
    """Ready ``model`` to write ``tokens`` tokens: its threads picked (``pick_decode_threads``), and
    compiled where that pays (``compile_pays``); one line each on ``out`` (stderr). Returns the
    model to sample from."""
    out = sys.stderr if out is None else out
    threads, why, steps_per_s = pick_decode_threads(model, device)
    if device.type == "cpu":
        print(f"{who}: {threads} CPU thread{'s' * (threads > 1)} for sampling ({why})", file=out)
    compiled, line = compile_pays(device, tokens, steps_per_s)
    print(f"{who}: {line}", file=out)
    return compiled_or_eager(model) if compiled else model


def compiled_or_eager(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile(model)``, tried on one token; the model itself (and a line on stderr) if
    compiling fails here (no C++ compiler on the CPU, say)."""
    from sml.kvcache import KVCache

    compiled = torch.compile(model)
    try:
        with torch.inference_mode():
            compiled(torch.zeros(1, 1, dtype=torch.long, device=next(model.parameters()).device),
                     cache=KVCache(model, 1, next(model.parameters()).device))
    except Exception as e:  # noqa: BLE001 (any backend failure: the eager model computes the same)
        print(f"warning: compiling the decode step failed ({type(e).__name__}): sampling eagerly", file=sys.stderr)
        return model
    return compiled
