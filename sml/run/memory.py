"""Will it fit? The memory one training step needs, counted tensor by tensor, and the peak FLOP/s.

Training holds four kinds of memory at its peak, the start of the backward pass:
1. the model's state: float32 weights, their gradients and AdamW's two moments, 16 bytes a
   parameter (plus, under autocast, a bfloat16/float16 copy of each matmul weight);
2. activations: every tensor the forward pass saved for backward, layer by layer. Their
   count is read off ``sml/model.py`` below, one comment per tensor, and a test measures
   what autograd really saves (``tests/test_memory.py``);
3. the logits: (B, T, V) scores, their float32 log-probabilities and two gradients, often
   the largest single part of a small model;
4. on CUDA, the runtime itself (context, cuBLAS workspace, allocator slack): a rough constant.
Only the micro-batch (``train.batch_size``) matters: ``train.grad_accum`` runs micro-batches
one after another, so it raises the tokens per step but not the peak.

``peak_flops`` gives the matmul peak that MFU divides by: a datasheet figure for known GPUs,
otherwise a measured square matmul.

Left out on purpose: torch.compile (it fuses and recomputes, so it usually saves less than
this eager count), the short-lived gradients of activations during backward (about one
layer's worth, while the layers behind it are already freed), and ZeRO/FSDP sharding.
"""

import functools
import math
import os
import re
import time
from dataclasses import dataclass

import torch

from sml.config import ModelConfig
from sml.model import GPT, MLP
from sml.run.device import synchronize
from sml.run.errors import SMLError

CUDA_RUNTIME_BYTES = 500_000_000  # CUDA context + cuBLAS workspace + allocator slack: ~0.3-1 GB, a rough constant
TIGHT, REFUSE = 0.9, 1.0  # share of the device: above TIGHT say so; refuse only above REFUSE (estimates are rough)
F32 = 4  # bytes of a float32: weights, optimizer state, and what autocast keeps in float32


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of one training step, by part, and how they grow with the micro-batch."""

    parts: dict[str, int]  # "weights": bytes, ..., in the order they are described
    batch_size: int  # sequences per micro-batch the estimate is for
    block_size: int  # tokens per sequence
    per_sequence: int  # bytes each more sequence in the micro-batch adds (activations + logits)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        """'estimated peak 3.29 GB = weights 48.8 MB + gradients 48.8 MB + ...'."""
        terms = " + ".join(f"{name} {format_bytes(n)}" for name, n in self.parts.items())
        return f"estimated peak {format_bytes(self.total)} = {terms}"


def estimate_training_memory(model_cfg: ModelConfig, vocab_size: int, batch_size: int, dtype: torch.dtype,
                             world_size: int = 1, device_type: str | None = None) -> MemoryEstimate:
    """Peak memory of one training step of ``GPT`` with AdamW, per process, in bytes.

    ``batch_size`` is the micro-batch; ``dtype`` the autocast dtype (float32: none).
    ``device_type`` picks the kernels whose saved tensors are counted: None or "cuda" (flash
    attention, 1-byte dropout masks; "cuda" also adds ``CUDA_RUNTIME_BYTES``), "cpu" or "mps".
    """
    model = _meta_model(model_cfg, vocab_size)
    n_params = count_parameters(model_cfg, vocab_size)
    parts = {"weights": F32 * n_params, "gradients": F32 * n_params,
             "AdamW": 2 * F32 * n_params}  # exp_avg and exp_avg_sq, float32 like the weights
    if world_size > 1:  # DDP all-reduces from buckets: a second copy of the gradients per process
        parts["DDP buckets"] = F32 * n_params
    if dtype.itemsize < F32:  # autocast casts each matmul weight once; backward keeps the copy
        n_matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        parts["weight copies"] = dtype.itemsize * n_matmul
    parts["activations"] = activation_bytes(model_cfg, batch_size, dtype, device_type)
    parts["logits"] = logits_bytes(batch_size * model_cfg.block_size, vocab_size, dtype)
    if device_type == "cuda":
        parts["CUDA runtime"] = CUDA_RUNTIME_BYTES
    per_sequence = (activation_bytes(model_cfg, 2, dtype, device_type)  # what one more sequence adds
                    - activation_bytes(model_cfg, 1, dtype, device_type)
                    + logits_bytes(model_cfg.block_size, vocab_size, dtype))
    return MemoryEstimate(parts, batch_size, model_cfg.block_size, per_sequence)


def count_parameters(model_cfg: ModelConfig, vocab_size: int) -> int:
    """Parameters of ``GPT(model_cfg, vocab_size)`` (a tied head counts once), allocating none."""
    return _meta_model(model_cfg, vocab_size).param_counts()["total"]


def activation_bytes(cfg: ModelConfig, batch_size: int, dtype: torch.dtype, device_type: str | None = None) -> int:
    """Bytes the forward pass saves for backward (the logits' share aside), read off ``GPT.forward``.

    Counted per token of one Block, then per (B, nh, T, T) attention matrix where one is kept.
    A tensor that is a view of another costs nothing more; one that keeps a view alive keeps
    its whole storage.
    """
    B, T, C, nh = batch_size, cfg.block_size, cfg.n_embd, cfg.n_head
    e = dtype.itemsize  # a matmul input: autocast casts it to `dtype` (float32: 4 bytes, no cast)
    cuda = device_type in (None, "cuda")
    drop = cfg.dropout > 0

    def mask(elem: int) -> int:
        """Bytes per element of a dropout mask: CUDA keeps booleans; CPU and MPS a noise tensor."""
        return 0 if not drop else 1 if cuda else elem

    # A norm keeps its float32 input (the residual stream) and per-token statistics. Outside
    # CUDA's fused kernel, RMSNorm is x * rsqrt(mean(x^2)) * weight and keeps the normalized x too.
    if cfg.norm == "layernorm":
        norm = F32 * C + 2 * F32  # input, mean, 1/std
    else:
        norm = F32 * C + F32 + (0 if cuda else F32 * C)  # input, 1/rms (, x / rms)

    # ---- one Block, per token: x + attn(norm1(x)), then x + mlp(norm2(x)) ----
    kv = (cfg.n_kv_head or nh) * (C // nh)  # the width of k, and of v (C, or less with fewer kv heads)
    attn = norm + e * C  # norm1; the qkv linear's input (norm1's output)
    if cfg.qk_norm:  # RMSNorm of each head's q and k, on the CPU a composite whose saved tensors vary
        # by path: 1/rms per head, the normalised q and k, the joined result (whole: -2% to +8%)
        attn += F32 * (nh + (cfg.n_kv_head or nh)) + 2 * F32 * (C + kv) + F32 * C  # float32 under autocast too
    per_tt = 0  # bytes per element of the (B, nh, T, T) matrices kept, if any
    if cfg.attention == "sdpa" and (cuda or (device_type == "cpu" and not drop)):
        # Flash / memory-efficient attention keeps q, k, v, its output and a logsumexp: no T x T.
        rope = cfg.positions == "rope"
        # qkv's output, whole, while a view of it is kept: v (else v is repeated), or q (no RoPE)
        attn += e * (C + 2 * kv) if kv == C or not rope else 0
        attn += e * 2 * C if kv < C else 0  # k and v repeated for the query heads: new tensors
        attn += e * (C + kv) if rope else 0  # RoPE made new q and k
        attn += e * C + F32 * nh  # the output (proj's input is the same storage); logsumexp per head
    elif cfg.attention == "sdpa":  # CPU with dropout, and MPS: PyTorch's math path, in float32
        attn += F32 * 3 * C + e * C  # q, k, v upcast; proj's input (a contiguous copy of the output)
        per_tt = F32 + (mask(F32) + F32 if drop else 0)  # softmax output, [dropout noise, dropped weights]
    else:  # manual: q @ k^T, mask, softmax, dropout, @ v, written out in CausalSelfAttention.weights
        attn += e * 4 * C  # q, k^T (first matmul), v (second; a copy: torch.matmul can't batch its view); proj's input
        soft = F32 if device_type != "cpu" else e  # CUDA's autocast runs softmax in float32, CPU's in `dtype`
        # `@ v` keeps its left side: the dropped-out weights, or a `dtype` copy of the softmax output,
        # or (no dropout, no cast) the softmax output itself, already counted.
        left = e if drop or soft != e else 0
        per_tt = soft + mask(soft) + left  # softmax output, [dropout mask], `@ v`'s input
    attn += C * mask(e)  # resid_drop on proj's output
    with torch.device("meta"):
        H = MLP(cfg).proj.in_features  # the hidden width, as sml.model builds it (4C, ~8C/3, mlp_hidden)
    if cfg.mlp == "swiglu":
        mlp = e * 4 * H  # fc's output (gate and up are views of it: 2H), silu(gate), proj's input
    elif cfg.mlp == "relu2":
        mlp = e * 2 * H  # relu's output (its own backward's and square's input), proj's input
    else:
        mlp = e * 2 * H  # gelu's input (fc's output) and proj's input (gelu's output)
    mlp += norm + e * C + C * mask(e)  # norm2; fc's input; the MLP's dropout
    block = B * T * (attn + mlp) + B * nh * T * T * per_tt
    block += T * T if cfg.attention == "manual" else 0  # the causal mask, bool, made per layer
    if cfg.positions == "rope" and cfg.attention == "manual":  # rope written out: cos and sin (T, hs/2)
        block += T * (C // nh) * e
    elif cfg.positions == "rope":  # the rows of RoPE's tables for these positions (T, hs), in `dtype`
        block += 2 * T * (C // nh) * e

    # ---- outside the blocks, per token ----
    outside = 8 + 8  # token ids (the embedding keeps them) and targets (the loss does), int64
    outside += C * mask(F32)  # dropout on the float32 embeddings
    outside += norm + e * C  # norm_f; lm_head's input
    learned = 8 * T if cfg.positions == "learned" else 0  # the position ids of wpe
    return cfg.n_layer * block + B * T * outside + learned


def logits_bytes(n_tokens: int, vocab_size: int, dtype: torch.dtype) -> int:
    """Bytes of the logits and the loss at their peak, the start of backward, for ``n_tokens`` (B * T).

    The (B*T, V) logits in ``dtype``, kept by the caller all step; cross-entropy's float32
    log-probabilities, saved for backward (the float32 upcast of the logits is freed once they
    exist); and in log_softmax's backward, its incoming and outgoing float32 gradients at once.
    """
    return n_tokens * vocab_size * (dtype.itemsize + F32 + 2 * F32)


def device_memory(device: torch.device) -> int | None:
    """Total bytes of ``device``'s memory, or None where it cannot say (e.g. CPU RAM on Windows)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "mps":
        recommended = getattr(torch.mps, "recommended_max_memory", None)
        return int(recommended()) if recommended is not None else None
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # Windows has no sysconf
            return None
    return None


def check_fits(estimate: MemoryEstimate, available: int | None, where: str) -> str:
    """The line to print: ``estimate`` against ``available`` bytes of ``where``.

    Raises ``SMLError`` (one line, with the largest ``train.batch_size`` and ``model.block_size``
    that would fit) above ``REFUSE`` x available: the estimate is within a few % for the tensors,
    but the allocator's fragmentation and other processes' memory are not in it.
    """
    need = estimate.total
    if available is None:
        return f"{estimate.describe()}; the memory of {where} is unknown: not checked"
    share = need / available
    line = f"{estimate.describe()}: {share:.0%} of {format_bytes(available)} on {where}"
    if share <= TIGHT:
        return line
    if share <= REFUSE:
        return line + " (tight: if it runs out of memory, lower train.batch_size)"
    B, T, per_seq = estimate.batch_size, estimate.block_size, estimate.per_sequence
    fixed = need - B * per_seq  # weights, optimizer state, runtime: what no batch size changes
    room = max(available - fixed, 0)
    max_batch = room // per_seq
    if max_batch >= 1:  # per-sequence bytes grow about linearly with T (T^2 only for manual attention)
        advice = (f"set train.batch_size to at most {max_batch} (the micro-batch: raise train.grad_accum to keep"
                  f" the tokens per step) or model.block_size to at most about {T * room // (B * per_seq)}")
    elif T * room // per_seq >= 2:
        advice = f"even train.batch_size 1 is too much: with it, model.block_size at most about {T * room // per_seq}"
    else:
        advice = (f"weights, optimizer state and runtime alone need {format_bytes(fixed)}, which train.batch_size"
                  " and model.block_size cannot change: make the model smaller (model.n_layer, model.n_embd)")
    raise SMLError(f"training needs about {format_bytes(need)} but {where} has {format_bytes(available)}"
                   f" ({share:.0%}): {advice}")


# Dense (no sparsity) tensor-core peaks in TFLOP/s: (name in torch.cuda.get_device_name(), float16 and
# bfloat16, TF32). Datasheet figures, halved where the datasheet quotes sparsity; real matmuls reach
# 60-80% of them. GeForce cards multiply float16/bfloat16 with float32 accumulation (what PyTorch
# uses) at half their headline float16 rate: those rows are SMs x boost clock x 512 FLOPs, which
# matches NVIDIA's Ampere/Ada whitepapers and its "AI TOPS" figures. Volta and Turing (TF32 None)
# have float16 tensor cores only. The first row whose name appears as a whole word wins.
GPU_PEAK_TFLOPS: list[tuple[str, float, float | None]] = [
    ("B200", 2250, 1100), ("H200 NVL", 835, 418), ("H200", 989, 495), ("H100 NVL", 835, 418),
    ("H100 PCIe", 756, 378), ("H100", 989, 495), ("A100", 312, 156), ("L40S", 362, 183), ("L40", 181, 90.5),
    ("L4", 121, 60), ("A10", 125, 62.5), ("T4", 65, None), ("V100S", 130, None), ("V100-PCIE", 112, None),
    ("V100", 125, None),
    ("RTX 6000 Ada", 364, 182), ("RTX A6000", 155, 77.4), ("RTX A5000", 111, 55.6), ("RTX A4000", 76.7, 38.4),
    ("RTX 5090", 209.5, 104.8), ("RTX 5080", 112.6, 56.3), ("RTX 5070 Ti", 87.9, 43.9), ("RTX 5070", 61.7, 30.9),
    ("RTX 5060 Ti", 47.4, 23.7),
    ("RTX 4090", 165.2, 82.6), ("RTX 4080 SUPER", 104.4, 52.2), ("RTX 4080", 97.5, 48.7),
    ("RTX 4070 Ti SUPER", 88.2, 44.1), ("RTX 4070 Ti", 80.2, 40.1), ("RTX 4070 SUPER", 71.0, 35.5),
    ("RTX 4070", 58.3, 29.1), ("RTX 4060 Ti", 44.1, 22.1), ("RTX 4060", 30.2, 15.1),
    ("RTX 3090 Ti", 80.0, 40.0), ("RTX 3090", 71.2, 35.6), ("RTX 3080 Ti", 68.2, 34.1), ("RTX 3080", 59.5, 29.8),
    ("RTX 3070 Ti", 43.5, 21.7), ("RTX 3070", 40.6, 20.3), ("RTX 3060 Ti", 32.4, 16.2), ("RTX 3060", 25.5, 12.7),
]


def peak_flops(device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    """Peak matmul FLOP/s of ``device`` in ``dtype``, for MFU, and where the figure comes from.

    A known GPU's datasheet figure (float32 counts as TF32 when PyTorch allows TF32); anything
    else, measured: the best rate of a square matmul (``measured_matmul_flops``).
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        row = _datasheet_row(name)
        if row is not None:
            _, half, tf32 = row
            if dtype == torch.float16 or (dtype == torch.bfloat16 and tf32 is not None):
                return half * 1e12, f"datasheet: {name} dense {_name(dtype)}"
            if dtype == torch.float32 and tf32 is not None and torch.get_float32_matmul_precision() != "highest":
                return tf32 * 1e12, f"datasheet: {name} dense TF32"
    flops, n = _measured_peak(device, dtype)
    return flops, f"measured: {n}x{n} {_name(dtype)} matmul"


@functools.cache
def _measured_peak(device: torch.device, dtype: torch.dtype) -> tuple[float, int]:
    """Measured once per process, in well under a second: returns (FLOP/s, the matrix size n).

    n doubles from 256 until one product takes 10 ms (or reaches 2048 on the CPU, 4096 on MPS,
    8192 on CUDA): big enough to keep the device busy, and small where the dtype is slow (bfloat16
    on a CPU without bf16 instructions runs ~100x slower than float32: a fixed 2048 took 106 s
    there). Then the best of up to 10 runs, because one slow run (another process on a shared
    core, the CPU's clock still rising) would halve the peak and double the MFU.
    """
    n = 256
    while n < _matmul_size(device) and 2 * n**3 / measured_matmul_flops(device, dtype, n, repeats=1) < 0.01:
        n *= 2
    return measured_matmul_flops(device, dtype, n, repeats=10, budget_s=0.3), n


def measured_matmul_flops(device: torch.device, dtype: torch.dtype, n: int | None = None,
                          repeats: int = 5, budget_s: float = 0.5) -> float:
    """Best FLOP/s of an (n, n) @ (n, n) matmul in ``dtype`` (2 n^3 FLOPs), synchronizing the device.

    ``n`` defaults to 2048 on the CPU, 4096 on MPS, 8192 on CUDA. After one untimed warm-up
    (allocation, kernel choice), up to ``repeats`` timed runs, fewer once ``budget_s`` is spent.
    """
    n = n or _matmul_size(device)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    synchronize(device)
    best, spent = math.inf, 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        seconds = time.perf_counter() - start
        best, spent = min(best, seconds), spent + seconds
        if spent > budget_s:
            break
    return 2 * n**3 / best


def format_bytes(n: float) -> str:
    """Bytes in decimal units (1 GB = 1e9 bytes), three significant figures.

    >>> format_bytes(3_290_000_000), format_bytes(48_778_752), format_bytes(999_700_000), format_bytes(512)
    ('3.29 GB', '48.8 MB', '1000 MB', '512 B')
    """
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}" if abs(n) < 100 * size else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


@functools.lru_cache(maxsize=32)
def _meta_model(cfg: ModelConfig, vocab_size: int) -> GPT:
    """The GPT with shapes but no data (the ``meta`` device): its real parameter count, for free."""
    with torch.device("meta"):
        return GPT(cfg, vocab_size)


def _datasheet_row(name: str) -> tuple[str, float, float | None] | None:
    """The first row of GPU_PEAK_TFLOPS whose name is a whole word of ``name`` ('A10' is not 'A100')."""
    if "laptop" in name.lower():  # laptop chips of the same name run lower clocks: measure them
        return None
    return next((r for r in GPU_PEAK_TFLOPS if re.search(rf"\b{re.escape(r[0])}\b", name, re.IGNORECASE)), None)


def _matmul_size(device: torch.device) -> int:
    return {"cpu": 2048, "mps": 4096}.get(device.type, 8192)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
