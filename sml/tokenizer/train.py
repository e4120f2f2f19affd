"""Training a byte-level BPE tokenizer: learn merges from a corpus, fast, in pure Python.

Byte-pair encoding starts from the 256 byte values and repeatedly merges the most frequent
adjacent pair of tokens into a new token, until the vocabulary is as large as asked.

The textbook loop (see ``tests/reference_bpe.py``) recounts every pair of the whole corpus
after each merge: O(corpus x merges), over a minute for 512 tokens of Shakespeare. This one
does the same merges, in the same order, in well under a second, with three ideas:

1. **Count unique chunks once.** Pre-tokenization (``pretokenize.py``) cuts the text into
   chunks such as " the"; Shakespeare's 1.1 MB has ~300k chunks but only ~15k distinct ones.
   Each distinct chunk is a "word": a list of token ids with a frequency.
2. **Update counts incrementally.** Merging (a, b) only changes the words that contain it. An
   index ``pair -> words`` finds them; for each, we subtract its old pairs and add its new
   ones. Everything else keeps its count.
3. **Find the best pair with a heap.** A max-heap of (count, pair) entries, allowed to go
   stale: an entry is trusted only if its count still equals the live count, otherwise it
   is pushed back with the live count.

Tie rule (deterministic, documented, and shared with the reference trainer): the pair with
the highest count wins; among equal counts, the smallest pair ``(left id, right id)`` wins.

Left out on purpose: parallelism, and merges across chunk borders or special tokens.
"""

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

import regex

from sml.tokenizer.pretokenize import split_special

Pair = tuple[int, int]


def count_chunks(
    texts: Iterable[str], pattern: regex.Pattern, special_re: regex.Pattern | None = None
) -> Counter[str]:
    """Count the distinct pre-token chunks of ``texts``; special tokens are dropped as borders.

    >>> from sml.tokenizer.pretokenize import compile_pattern
    >>> count_chunks(["to be, or not to be"], compile_pattern("gpt2")).most_common(2)
    [(' be', 2), ('to', 1)]
    """
    counts: Counter[str] = Counter()
    for text in texts:
        for piece, is_special in split_special(text, special_re):
            if not is_special:
                counts.update(pattern.findall(piece))
    return counts


def learn_merges(chunk_counts: Counter[str] | dict[str, int], n_merges: int) -> list[Pair]:
    """Learn up to ``n_merges`` merges from chunk frequencies; merge i makes token ``256 + i``.

    Stops early when no pair occurs any more (a tiny corpus cannot fill a large vocabulary).

    >>> learn_merges({"aaab": 2, "ab": 1}, 2)
    [(97, 97), (97, 98)]
    """
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    freqs = list(chunk_counts.values())

    # Pair counts over the whole corpus, and which words hold each pair.
    stats: defaultdict[Pair, int] = defaultdict(int)
    where: defaultdict[Pair, set[int]] = defaultdict(set)
    for i, (word, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in zip(word, word[1:]):
            stats[pair] += freq
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in stats.items()]
    heapq.heapify(heap)

    merges: list[Pair] = []
    while len(merges) < n_merges:
        pair = _pop_best(heap, stats)
        if pair is None:
            break
        new_id = 256 + len(merges)
        merges.append(pair)
        touched = _apply_merge(pair, new_id, words, freqs, stats, where)
        for p in touched:  # only pairs with the new token can have grown
            heapq.heappush(heap, (-stats[p], p))
    return merges


def _pop_best(heap: list[tuple[int, Pair]], stats: dict[Pair, int]) -> Pair | None:
    """Pop the live best pair (highest count, then smallest pair); fix stale entries on the way."""
    while heap:
        neg_count, pair = heapq.heappop(heap)
        live = stats.get(pair, 0)
        if live == 0:  # the pair is gone: drop its entry
            continue
        if live == -neg_count:
            return pair
        heapq.heappush(heap, (-live, pair))  # the count dropped since this entry was pushed
    return None


def _apply_merge(
    pair: Pair,
    new_id: int,
    words: list[list[int]],
    freqs: list[int],
    stats: defaultdict[Pair, int],
    where: defaultdict[Pair, set[int]],
) -> set[Pair]:
    """Merge ``pair`` into ``new_id`` in every word that holds it; keep ``stats`` and ``where`` true.

    Returns the new pairs (those that contain ``new_id``), whose counts went up.
    """
    a, b = pair
    touched: set[Pair] = set()
    # `where` is allowed to over-approximate (entries are never removed), so check each word.
    for i in where.pop(pair):
        word = words[i]
        if len(word) < 2:
            continue
        merged = merge_pair(word, a, b, new_id)
        if merged is None:
            continue
        freq = freqs[i]
        for p in zip(word, word[1:]):
            stats[p] -= freq
        for p in zip(merged, merged[1:]):
            stats[p] += freq
            if new_id in p:
                where[p].add(i)
                touched.add(p)
        words[i] = merged
    del stats[pair]
    return touched


def merge_pair(word: list[int], a: int, b: int, new_id: int) -> list[int] | None:
    """Replace each (a, b) in ``word``, left to right, by ``new_id``; None if there is none.

    Left to right matters when a == b: "a a a" becomes "aa a", as in every BPE.

    >>> merge_pair([1, 2, 1, 2, 2], 1, 2, 9)
    [9, 9, 2]
    """
    out: list[int] = []
    i, n = 0, len(word)
    found = False
    while i < n:
        if i < n - 1 and word[i] == a and word[i + 1] == b:
            out.append(new_id)
            i += 2
            found = True
        else:
            out.append(word[i])
            i += 1
    return out if found else None
