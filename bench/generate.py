"""Benchmark: generation speed with and without the KV cache, in tokens/s.

    .venv/bin/python bench/generate.py [--new-tokens 500]

Each model has random weights (speed does not depend on them) and generates the same
number of new tokens with temperature 0.8, uncached (the whole window re-run per token)
and cached (one position per token), best of 3. Shapes: nanoGPT's small CPU model
(4 layers, 4 heads, 128 dims, context 64, learned positions, 65 characters), the cpu
preset, and the shipped GPU shape. nanoGPT's own uncached sample.py runs ~420-550 tokens/s
on this machine at the first shape (the figure given in issue 4).

The last line states the cache's speed-up at nanoGPT's shape.
"""

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from sml.config import load_params
from sml.generate import generate
from sml.model import GPT

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=500)
    args = parser.parse_args()
    shipped, cpu = load_params(REPO / "params.yaml"), load_params(REPO / "params.yaml", "cpu")
    shapes = {
        "nanoGPT CPU size": (dataclasses.replace(cpu.model, n_layer=4, n_head=4, n_embd=128, block_size=64,
                                                 positions="learned", dropout=0.0), 65),
        "cpu preset": (dataclasses.replace(cpu.model, dropout=0.0), cpu.tokenizer.vocab_size),
        "shipped (GPU) shape": (dataclasses.replace(shipped.model, dropout=0.0), shipped.tokenizer.vocab_size),
    }
    print(f"{args.new_tokens} new tokens, temperature 0.8, CPU, {torch.get_num_threads()} threads, best of 3")
    speedups = {}
    for name, (cfg, vocab) in shapes.items():
        torch.manual_seed(0)
        model = GPT(cfg, vocab)
        rates = [best_rate(model, args.new_tokens, use_cache) for use_cache in (False, True)]
        speedups[name] = rates[1] / rates[0]
        print(f"{name:>20} ({cfg.n_layer}x{cfg.n_head}x{cfg.n_embd}, context {cfg.block_size}, {cfg.positions}):"
              f" uncached {rates[0]:7,.0f} tokens/s | cached {rates[1]:7,.0f} tokens/s"
              f" | speed-up {speedups[name]:.1f}x")
    print(f"kv-cache speed-up: {speedups['nanoGPT CPU size']:.1f}x")


def best_rate(model: GPT, new_tokens: int, use_cache: bool, repeats: int = 3) -> float:
    list(generate(model, [0], 20, use_cache=use_cache))  # warm-up
    best = 0.0
    for seed in range(repeats):
        start = time.perf_counter()
        n = sum(1 for _ in generate(model, [0], new_tokens, temperature=0.8, seed=seed, use_cache=use_cache))
        best = max(best, n / (time.perf_counter() - start))
    return best


if __name__ == "__main__":
    main()
