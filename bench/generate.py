"""Benchmark: generation speed with and without the KV cache, and against nanoGPT, in tokens/s.

    .venv/bin/python bench/generate.py [--new-tokens 500] [--nanogpt ~/src/nanoGPT] [--compile]

Each model has random weights (speed does not depend on them) and generates the same
number of new tokens with temperature 0.8 and top-k 200 (nanoGPT's sample.py settings),
uncached (the whole window re-run per token) and cached (one position per token), best
of 3; the cached sampler also with top-p 0.95 (the sample stage's setting). Shapes:
nanoGPT's small CPU model (4 layers, 4 heads, 128 dims, context 64, learned positions,
65 characters), the cpu preset, and the shipped GPU shape.

With ``--nanogpt`` (a checkout of karpathy/nanoGPT), nanoGPT's own ``GPT.generate`` runs
at its CPU shape in this same process, with the same settings, as the baseline: the last
line is SML's cached sampler against it, the two taking turns (best of 5 each).

With ``--compile``, each shape's model is also compiled (``torch.compile``, default mode):
the seconds its first 20 tokens take (compiling the refill of half a context and the
one-token step: the cache's fixed shapes keep it to those two), then the compiled cached sampler
against the eager one, taking turns (best of 5 each), and how many tokens it takes for the
compile time to pay for itself.
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from sml.config import load_params
from sml.generate import generate
from sml.model import GPT
from sml.run.device import pick_decode_threads

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {"temperature": 0.8, "top_k": 200}  # nanoGPT's sample.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=500)
    parser.add_argument("--nanogpt", type=Path, help="a nanoGPT checkout: its generate() as the baseline")
    parser.add_argument("--compile", action="store_true", help="also time a compiled model, and its compile time")
    args = parser.parse_args()
    shipped, cpu = load_params(REPO / "params.yaml"), load_params(REPO / "params.yaml", "cpu")
    shapes = {
        # nanoGPT's architecture too (GELU, LayerNorm, no biases), not the cpu preset's relu2
        "nanoGPT CPU size": (dataclasses.replace(shipped.model, n_layer=4, n_head=4, n_embd=128, block_size=64,
                                                 positions="learned", dropout=0.0), 65),
        "cpu preset": (dataclasses.replace(cpu.model, dropout=0.0), cpu.tokenizer.vocab_size),
        "shipped (GPU) shape": (dataclasses.replace(shipped.model, dropout=0.0), shipped.tokenizer.vocab_size),
    }
    print(f"{args.new_tokens} new tokens, temperature 0.8, top-k 200, CPU, {torch.get_num_threads()} threads,"
          " best of 3")
    for name, (cfg, vocab) in shapes.items():
        torch.manual_seed(0)
        model = GPT(cfg, vocab)
        rates = [best_rate(model, args.new_tokens, use_cache) for use_cache in (False, True)]
        top_p = best_rate(model, args.new_tokens, True, top_p=0.95)
        print(f"{name:>20} ({cfg.n_layer}x{cfg.n_head}x{cfg.n_embd}, context {cfg.block_size}, {cfg.positions}):"
              f" uncached {rates[0]:7,.0f} tokens/s | cached {rates[1]:7,.0f} tokens/s ({top_p:7,.0f} with top-p"
              f" 0.95) | cache speed-up {rates[1] / rates[0]:.1f}x")
    if args.compile:
        for name, (cfg, vocab) in shapes.items():
            torch.manual_seed(0)
            eager, seconds, compiled = compiled_against_eager(GPT(cfg, vocab), args.new_tokens)
            gain = 1 / eager - 1 / compiled  # seconds saved per token
            pays = f"pays for itself after {seconds / gain:,.0f} tokens" if gain > 0 else "never pays"
            print(f"{name:>20}: compiled {compiled:7,.0f} tokens/s against eager {eager:7,.0f} tokens/s"
                  f" ({compiled / eager:.2f}x) | compiling took {seconds:.1f} s, so it {pays}")
    if args.nanogpt:
        ours, compiled, theirs, theirs_1 = against_nanogpt(args.nanogpt, shapes["nanoGPT CPU size"][0],
                                                           args.new_tokens, args.compile)
        also = f" | SML compiled {compiled:7,.0f} tokens/s" if compiled else ""
        print(f"at nanoGPT's CPU size, taking turns, best of 5: SML cached {ours:7,.0f} tokens/s{also} | nanoGPT's"
              f" generate {theirs:7,.0f} tokens/s (on one thread: {theirs_1:7,.0f})")
        print(f"SML's cached sampler against nanoGPT's generate: {ours / theirs:.2f}x"
              + (f" (compiled: {compiled / theirs:.2f}x)" if compiled else "")
              + f"; against nanoGPT on one thread: {ours / theirs_1:.2f}x")


def against_nanogpt(checkout: Path, cfg, new_tokens: int, compile: bool, rounds: int = 5):
    """SML's cached sampler (and, with ``compile``, a compiled copy) and nanoGPT's
    ``GPT.generate`` (its model.py, imported from ``checkout``) at nanoGPT's CPU shape, one
    run of each in turn so that a machine whose speed drifts slows all alike; the best rate
    of each, in tokens/s: (SML's, SML's compiled or None, nanoGPT's)."""
    sys.path.insert(0, str(checkout))
    from model import GPT as NanoGPT  # nanoGPT's own code, not SML's
    from model import GPTConfig

    torch.manual_seed(0)
    theirs = NanoGPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                               bias=False)).eval()
    ours = GPT(cfg, 65)
    cores = torch.get_num_threads()  # torch's default: what nanoGPT's sample.py runs with
    threads, why, _ = pick_decode_threads(ours, torch.device("cpu"))  # what the sample stage does
    print(f"SML's sampler: {threads} thread(s) ({why}); nanoGPT: torch's default {cores}, and 1")
    samplers = [ours] + ([torch.compile(ours)] if compile else [])
    start_ids = torch.zeros((1, 1), dtype=torch.long)
    best = [0.0, 0.0, 0.0, 0.0]  # SML, SML compiled, nanoGPT, nanoGPT on one thread
    with torch.no_grad():  # as nanoGPT's sample.py
        theirs.generate(start_ids, 20, **SETTINGS)  # warm-up
        for sampler in samplers:  # (compiling, the first time)
            list(generate(sampler, [0] * cfg.block_size, 20))
        for seed in range(rounds):
            torch.set_num_threads(threads)
            for i, sampler in enumerate(samplers):
                best[i] = max(best[i], best_rate(sampler, new_tokens, True, repeats=1))
            for slot, n in ((2, cores), (3, 1)):
                torch.set_num_threads(n)
                torch.manual_seed(seed)
                start = time.perf_counter()
                theirs.generate(start_ids, new_tokens, **SETTINGS)
                best[slot] = max(best[slot], new_tokens / (time.perf_counter() - start))
    torch.set_num_threads(cores)
    return best[0], best[1] or None, best[2], best[3]


def compiled_against_eager(model: GPT, new_tokens: int, rounds: int = 5) -> tuple[float, float, float]:
    """The cached sampler's best rate eager and compiled, taking turns (tokens/s), and the
    seconds the compiled model's first 20 tokens took (mostly compiling)."""
    compiled = torch.compile(model)
    start = time.perf_counter()
    list(generate(compiled, [0] * model.cfg.block_size, 20))  # a full prompt: the refill shape is compiled too
    seconds = time.perf_counter() - start
    best = [0.0, 0.0]
    for _ in range(rounds):
        best[0] = max(best[0], best_rate(model, new_tokens, True, repeats=1))
        best[1] = max(best[1], best_rate(compiled, new_tokens, True, repeats=1))
    return best[0], seconds, best[1]


def best_rate(model: GPT, new_tokens: int, use_cache: bool, repeats: int = 3, top_p: float = 1.0) -> float:
    list(generate(model, [0], 20, use_cache=use_cache))  # warm-up
    best = 0.0
    for seed in range(repeats):
        start = time.perf_counter()
        n = sum(1 for _ in generate(model, [0], new_tokens, **SETTINGS, top_p=top_p, seed=seed, use_cache=use_cache))
        best = max(best, n / (time.perf_counter() - start))
    return best


if __name__ == "__main__":
    main()
