"""Broken on purpose: on a tie in the pair counts, the largest pair wins instead of the smallest."""

from tests.solutions.bpe import *  # noqa: F403
from tests.solutions.bpe import merge

EXPECT = "yours took the largest pair"


def learn_merges(chunk_counts, n_merges):
    words = [(list(chunk.encode("utf-8")), count) for chunk, count in chunk_counts.items()]
    merges = []
    for i in range(n_merges):
        counts = {}
        for ids, count in words:
            for pair in zip(ids, ids[1:]):
                counts[pair] = counts.get(pair, 0) + count
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], p))
        merges.append(best)
        words = [(merge(ids, best, 256 + i), count) for ids, count in words]
    return merges
