"""Benchmark: training throughput (tokens/s) and model FLOP utilization (MFU), per dtype.

    .venv/bin/python bench/train.py                 # the cpu preset's model shape
    .venv/bin/python bench/train.py --preset none   # the shipped (GPU PC) shape
    .venv/bin/python bench/train.py --device cuda --steps 50
    .venv/bin/python bench/train.py --optimizers adamw muon   # Muon's step cost, AdamW as the baseline

MFU is the share of the machine's matmul peak that training turns into model FLOPs:
tokens/s x FLOPs/token (6 per weight + attention, ``GPT.flops_per_token``) / peak. The peak
is measured in the same run, as the best rate of a large square matmul in that dtype, so
the figure is against this machine, not a datasheet. Each dtype trains the same shape on
random tokens (speed does not depend on the text) with the real training step.

Left out on purpose: torch.compile warm-up (it is reported by the train stage's own log).
"""

import argparse
import dataclasses
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from sml.batches import RandomWindows
from sml.config import load_params
from sml.model import GPT
from sml.optim import make_optimizer
from sml.run.device import Runtime, cpu_has_fast_bf16, pick_device, synchronize
from sml.run.memory import measured_matmul_flops
from sml.train import train_step

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", help="preset in params.yaml, or 'none'")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per dtype")
    parser.add_argument("--vocab-size", type=int, default=None, help="default: preset's tokenizer")
    parser.add_argument("--optimizers", nargs="+", default=["adamw"], choices=["adamw", "muon"],
                        help="train.optimizer values to time, each in the same run")
    args = parser.parse_args()

    params = load_params(REPO / "params.yaml", None if args.preset == "none" else args.preset)
    device = pick_device(args.device)
    vocab = args.vocab_size or params.tokenizer.vocab_size
    model_cfg = dataclasses.replace(params.model, dropout=params.model.dropout)
    cfg = params.train
    print(f"shape: preset {args.preset}: {model_cfg.n_layer} layers, {model_cfg.n_head} heads,"
          f" {model_cfg.n_embd} dims, context {model_cfg.block_size}, vocab {vocab};"
          f" batch {cfg.batch_size} x {cfg.grad_accum}; device {device}; {torch.get_num_threads()} threads")

    dtypes = [torch.float32]
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16()):
        dtypes.append(torch.bfloat16)
    rates = {}
    for dtype in dtypes:
        peak = matmul_peak(dtype, device)
        for optimizer in args.optimizers:
            run_cfg = dataclasses.replace(cfg, optimizer=optimizer)
            tokens_per_s, flops_per_token = training_rate(model_cfg, run_cfg, vocab, dtype, device, args.steps)
            achieved = tokens_per_s * flops_per_token
            rates[dtype, optimizer] = tokens_per_s
            name = str(dtype).removeprefix("torch.")
            print(f"{name:>9} {optimizer:>5}: matmul peak {peak / 1e9:8.1f} GFLOP/s | training {tokens_per_s:9,.0f}"
                  f" tokens/s = {achieved / 1e9:7.1f} GFLOP/s | MFU {achieved / peak:5.1%}")
    first = args.optimizers[0]
    if (torch.bfloat16, first) in rates:
        print(f"bfloat16 speed-up over float32 ({first}):"
              f" {rates[torch.bfloat16, first] / rates[torch.float32, first]:.2f}x")
    for dtype in dtypes:
        if (dtype, "muon") in rates and (dtype, "adamw") in rates:
            print(f"muon steps at {rates[dtype, 'muon'] / rates[dtype, 'adamw']:.2f}x the speed of adamw"
                  f" ({str(dtype).removeprefix('torch.')})")


def matmul_peak(dtype: torch.dtype, device: torch.device) -> float:
    """Best FLOP/s of a large square matmul in ``dtype`` (the figure the train stage uses off the datasheet)."""
    return measured_matmul_flops(device, dtype, repeats=10, budget_s=10.0)


def training_rate(model_cfg, cfg, vocab: int, dtype, device, steps: int) -> tuple[float, int]:
    """Tokens/s of the real training step, after 3 warm-up steps; and the model's FLOPs/token."""
    torch.manual_seed(0)
    model = GPT(model_cfg, vocab).to(device)
    optimizer = make_optimizer(model, cfg, device)
    runtime = Runtime(device, dtype, compile=False)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    tokens = torch.randint(0, vocab, (1 << 20,)).numpy().astype("uint16" if vocab <= 65536 else "uint32")
    sampler = RandomWindows(tokens, model_cfg.block_size, cfg.batch_size, 0, device)
    parts = SimpleNamespace(cfg=cfg, runtime=runtime, model=model, forward=model, ddp=None,
                            optimizer=optimizer, scaler=scaler, sampler=sampler)  # what train_step reads
    for _ in range(3):
        train_step(parts)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(parts)
    synchronize(device)
    seconds = time.perf_counter() - start
    return steps * cfg.batch_size * cfg.grad_accum * model_cfg.block_size / seconds, model.flops_per_token()


if __name__ == "__main__":
    main()
