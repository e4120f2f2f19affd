"""Benchmark: the evaluate stage's data work on a big split, in bounded memory.

    .venv/bin/python bench/evaluate_data.py [--tokens 50000000] [--vocab-size 4096]

Writes a uint16 token file of Zipf-distributed ids (like text: a few very common tokens,
a long tail), then counts the bigram floor (train = the file, val = its last 5%) two ways,
each in a fresh process so its peak RSS is its own:
- baseline: the whole file as one int64 array and ``np.unique`` over every pair code (what
  ``sml/evaluate.py`` did before issue 12);
- now: ``sml.evaluate.bigram_loss``, chunked over the memory map.
Prints seconds, the process's peak RSS (both import sml.evaluate, and so torch; the pages
of the memory-mapped file it reads count too) and the loss of each; both must agree.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def baseline_bigram(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    """The pre-chunking bigram floor: int64 copies of everything, one np.unique over all pairs."""
    train = np.asarray(train, dtype=np.int64)
    val = np.asarray(val, dtype=np.int64)
    unigram = (np.bincount(train, minlength=vocab_size) + 1.0) / (len(train) + vocab_size)
    firsts = np.bincount(train[:-1], minlength=vocab_size).astype(np.float64)
    pair_codes, pair_counts = np.unique(train[:-1] * vocab_size + train[1:], return_counts=True)
    a, b = val[:-1], val[1:]
    codes = a * vocab_size + b
    where = np.searchsorted(pair_codes, codes).clip(max=len(pair_codes) - 1)
    seen = np.where(pair_codes[where] == codes, pair_counts[where], 0)
    return float(-np.log((seen + unigram[b]) / (firsts[a] + 1.0)).mean())


def measure(which: str, path: str, vocab_size: int) -> dict:
    from sml.evaluate import bigram_loss  # both pay for importing torch: it is in the stage either way

    tokens = np.memmap(path, dtype=np.uint16, mode="r")
    val = tokens[int(len(tokens) * 0.95):]
    start = time.perf_counter()
    loss = (baseline_bigram if which == "baseline" else bigram_loss)(tokens, val, vocab_size)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "loss": loss, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=50_000_000)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--measure", choices=["baseline", "now", "generate"], help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "generate":  # child processes, so that the parent stays small: a child's
        rng = np.random.default_rng(0)  # peak RSS counts what it was forked with
        ((rng.zipf(1.2, args.tokens) - 1) % args.vocab_size).astype(np.uint16).tofile(args.file)
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.file, args.vocab_size)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.bin"
        subprocess.run([sys.executable, __file__, "--measure", "generate", "--file", str(path), "--tokens",
                        str(args.tokens), "--vocab-size", str(args.vocab_size)], check=True)
        print(f"{args.tokens:,} tokens ({path.stat().st_size / 1e6:,.0f} MB of uint16), vocab {args.vocab_size:,}")
        results = {}
        for which in ("baseline", "now"):
            out = subprocess.run([sys.executable, __file__, "--measure", which, "--file", str(path),
                                  "--vocab-size", str(args.vocab_size)], capture_output=True, text=True, check=True)
            r = results[which] = json.loads(out.stdout)
            print(f"{which:>9}: {r['seconds']:6.1f} s, peak RSS {r['peak_rss_mb']:7,.0f} MB,"
                  f" bigram val loss {r['loss']:.6f} nats/token")
        same = abs(results["now"]["loss"] - results["baseline"]["loss"]) < 1e-9
        peak = {k: r["peak_rss_mb"] for k, r in results.items()}
        print(f"peak RSS {peak['baseline']:,.0f} MB -> {peak['now']:,.0f} MB ({peak['baseline'] / peak['now']:.1f}x"
              " less),"
              f" {results['baseline']['seconds'] / results['now']['seconds']:.2f}x the speed; losses"
              f" {'agree' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
