"""Broken on purpose: all chunks are joined into one sequence, so pairs are counted across chunk borders."""

from tests.solutions.bpe import *  # noqa: F403
from tests.solutions.bpe import merge

EXPECT = "never across a chunk border"


def learn_merges(chunk_counts, n_merges):
    ids = [b for chunk, count in chunk_counts.items() for _ in range(count) for b in chunk.encode("utf-8")]
    merges = []
    for i in range(n_merges):
        counts = {}
        for pair in zip(ids, ids[1:]):
            counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        ids = merge(ids, best, 256 + i)
    return merges
