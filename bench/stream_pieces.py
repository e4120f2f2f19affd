"""Benchmark: cutting a corpus into safe pieces (train_bpe and encode both do it), in MB/s.

    SML_DATA_MIRROR=../shared/data .venv/bin/python bench/stream_pieces.py [--copies 20]

The text is tiny Shakespeare repeated ``--copies`` times (as found by bench/tokenizer.py),
with an ``<|endoftext|>`` between copies. ``stream_pieces`` cuts it into ~1 MB pieces
twice in the same run: with ``last_safe_cut`` (the backward search over ``findall``'s
chunks) and with ``_last_safe_cut_forward`` (a Python step per chunk, what issue 12 found
would take 10-20 minutes per 2 GB). Both must give the same pieces.
"""

import argparse
import sys
import time
from pathlib import Path

import sml.tokenizer.pretokenize as pretokenize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokenizer import find_corpus  # noqa: E402  (bench/tokenizer.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--corpus", type=Path)
    args = parser.parse_args()
    one = find_corpus(args.corpus).read_text(encoding="utf-8")
    text = "<|endoftext|>".join([one] * args.copies)
    lines = text.splitlines(keepends=True)
    mb = len(text.encode("utf-8")) / 1e6
    print(f"{mb:,.1f} MB: tiny Shakespeare x {args.copies}, pieces of 1 MB")
    fast = pretokenize.last_safe_cut
    results = {}
    for pattern in ("gpt2", "gpt4"):
        compiled, special = pretokenize.compile_pattern(pattern), pretokenize.special_regex(["<|endoftext|>"])
        for name, cut in (("forward", pretokenize._last_safe_cut_forward), ("backward", fast)):
            pretokenize.last_safe_cut = cut
            start = time.perf_counter()
            pieces = list(pretokenize.stream_pieces(lines, compiled, special, 1 << 20))
            seconds = time.perf_counter() - start
            results[pattern, name] = (seconds, pieces)
            print(f"{pattern} {name:>8}: {seconds:6.2f} s = {mb / seconds:7.1f} MB/s, {len(pieces)} pieces")
        pretokenize.last_safe_cut = fast
        (slow_s, slow), (fast_s, quick) = results[pattern, "forward"], results[pattern, "backward"]
        print(f"{pattern}: {slow_s / fast_s:.1f}x faster; pieces {'identical' if slow == quick else 'DIFFER'}")


if __name__ == "__main__":
    main()
