"""Broken on purpose: each distinct chunk's pairs count once, whatever the chunk's frequency."""

from tests.solutions.bpe import *  # noqa: F403
from tests.solutions.bpe import merge

EXPECT = "every chunk counts once"


def learn_merges(chunk_counts, n_merges):
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    merges = []
    for i in range(n_merges):
        counts = {}
        for ids in words:
            for pair in zip(ids, ids[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        words = [merge(ids, best, 256 + i) for ids in words]
    return merges
