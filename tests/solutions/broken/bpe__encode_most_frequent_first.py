"""Broken on purpose: encoding merges the pair most frequent in the chunk first, as training would, not the
earliest-learned one."""

from tests.solutions.bpe import *  # noqa: F403
from tests.solutions.bpe import merge

EXPECT = "in order of how often their pair occurs in the chunk, not in the order they were learned"


def encode_chunk(chunk, merges):
    ids = list(chunk)
    new_ids = {pair: 256 + i for i, pair in enumerate(merges)}
    while True:
        counts = {}
        for pair in zip(ids, ids[1:]):
            if pair in new_ids:
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            return ids
        best = max(counts, key=lambda p: (counts[p], -new_ids[p]))
        ids = merge(ids, best, new_ids[best])
