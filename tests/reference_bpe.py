"""The obviously-correct BPE trainer, kept only to check the fast one against.

After every merge it recounts every adjacent pair of every chunk occurrence in the corpus,
then merges the winner everywhere: slow (quadratic), but there is nothing to get wrong.
Same tie rule as ``sml/tokenizer/train.py``: highest count, then smallest (left, right).
"""

from collections import Counter


def naive_train(chunks: list[str], n_merges: int) -> tuple[list[tuple[int, int]], list[list[int]]]:
    """Return the merges and the final token ids of every chunk occurrence."""
    seqs = [list(c.encode("utf-8")) for c in chunks]
    merges = []
    for new_id in range(256, 256 + n_merges):
        counts: Counter = Counter()
        for s in seqs:
            counts.update(zip(s, s[1:]))
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        merges.append(best)
        seqs = [merge(s, best, new_id) for s in seqs]
    return merges, seqs


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each occurrence of ``pair`` (left to right, no overlaps) by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
