"""Grading part 2: byte-level BPE, learning merges, encoding a chunk, decoding (mine/bpe.py).

The checks run the learner's ``learn_merges``, ``encode_chunk`` and ``decode`` on tiny
inputs, a few hundred bytes with non-ASCII UTF-8 among them ("héllo wörld — 日本"), and
compare with the reference (``learn_merges`` in sml/tokenizer/train.py, ``encode_chunk``
and ``decode`` in sml/tokenizer/tokenizer.py). The classic mistakes are looked for first,
so that the message names them: pair counts not weighted by how often a chunk occurs,
pairs counted across chunk borders, the wrong tie rule, merges applied in the wrong order
when encoding. The encode and decode checks use the reference's merges, so each function
is graded on its own, whichever the learner writes first.
"""

from collections.abc import Callable

from sml.learn.core import Mismatch, Part, check
from sml.tokenizer.pretokenize import compile_pattern
from sml.tokenizer.tokenizer import decode as reference_decode
from sml.tokenizer.tokenizer import encode_chunk as reference_encode
from sml.tokenizer.tokenizer import render_bytes
from sml.tokenizer.train import count_chunks, merge_pair
from sml.tokenizer.train import learn_merges as reference_learn

Pair = tuple[int, int]
TEXT = 2 * ("héllo wörld — 日本 héllo. Hello world, hello wörld! 日本語の本は日本の本 — héllo héllo wörld.\n"
            "The lower the lowest; the newest, the widest: wörld wörld hello 日本, 日本, 日本.\n")  # 414 bytes
COUNTS = dict(count_chunks([TEXT], compile_pattern("gpt4")))  # {" wörld": 10, " 日本": 8, ...}: 21 chunks
N_MERGES = 60  # more than TEXT has pairs for: the reference stops after 58


# ---- learn_merges ---------------------------------------------------------------------------

@check("pairs are counted once per occurrence of a chunk", "learn_merges")
def weighted(mine):
    counts = {"ab": 5, "cdcd": 1}  # "ab" occurs 5 times; "cd" twice, in a chunk seen once
    _same_merges(mine.learn_merges(dict(counts), 1), counts, 1)


@check("no pair crosses a chunk border", "learn_merges")
def borders(mine):
    counts = {"a": 5, "b": 5, "ab": 1}  # only "ab" holds a pair; joined up, "a a a a a b ..." would hold more
    _same_merges(mine.learn_merges(dict(counts), 1), counts, 1)


@check("ties: the smallest pair wins", "learn_merges")
def ties(mine):
    counts = {"ba": 2, "cb": 2, "ac": 2}  # three pairs, each occurring twice
    got = mine.learn_merges(dict(counts), 1)
    _well_formed(got, 1)
    want = reference_learn(counts, 1)
    if got != want:
        chosen = got[0] if got else None
        why = {(98, 97): "the first pair seen (max() and most_common() return the first of equal counts)",
               (99, 98): "the largest pair"}.get(chosen, _show(chosen, got) if chosen else "no pair at all")
        raise Mismatch(f"in {counts} every pair occurs twice: on a tie the smallest pair wins, comparing"
                       f" (left id, right id), so merge 0 is {_show(want[0], want)}; yours took {why}")
    _same_merges(mine.learn_merges(dict(counts), 3), counts, 3)


@check("learning stops early when no pair is left", "learn_merges")
def stops(mine):
    counts = {"ab": 2, "c": 3}
    _same_merges(mine.learn_merges(dict(counts), 5), counts, 5)


@check(f"the merges of a short text ({len(TEXT.encode())} bytes, non-ASCII included)", "learn_merges")
def text_merges(mine):
    _same_merges(mine.learn_merges(dict(COUNTS), N_MERGES), COUNTS, N_MERGES)


def _same_merges(got, counts: dict[str, int], n_merges: int) -> None:
    """Raise Mismatch, naming the mistake, unless ``got`` equals the reference's merges."""
    _well_formed(got, n_merges)
    want = reference_learn(counts, n_merges)
    if got == want:
        return
    if len(got) > len(want) and got[:len(want)] == want:
        raise Mismatch(f"{len(got)} merges learned from {_short(counts)}, where the reference stops after"
                       f" {len(want)}: stop as soon as no pair occurs any more (merge {len(want)} is"
                       f" {_show(got[len(want)], got)}, a pair that is no longer there)")
    if [tuple(t + 1 if t >= 255 else t for t in pair) for pair in got] == want:  # no chunk holds byte 255
        raise Mismatch("your merge i makes token 255 + i: ids 0..255 are the bytes themselves, so merge i makes"
                       " token 256 + i (the first merge makes 256)")
    chunks = [c.encode() for c in counts]
    for i, pair in enumerate(got):
        if not any(reference_decode([256 + i], got) in chunk for chunk in chunks):
            raise Mismatch(f"merge {i} is {_show(pair, got)}, bytes found in no chunk of {_short(counts)}: pairs"
                           " are counted inside each chunk only, never across a chunk border")
    if got == reference_learn(dict.fromkeys(counts, 1), n_merges):
        raise Mismatch(f"your merges of {_short(counts)} are the ones learned when every chunk counts once: a chunk"
                       " seen n times adds n to the count of each of its pairs")
    i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    yours = _show(got[i], got) if i < len(got) else "missing"
    theirs = _show(want[i], want) if i < len(want) else "none: the reference stops here"
    raise Mismatch(f"merge {i} of {_short(counts)} is {yours}, the reference's {theirs} (each merge is the pair"
                   " with the highest count, weighted by chunk frequency; ties go to the smallest pair; merge i"
                   " makes token 256 + i)")


def _well_formed(got, n_merges: int) -> None:
    """A list of at most ``n_merges`` (left id, right id) tuples, each joining ids that exist already."""
    if not isinstance(got, list) or not all(isinstance(p, tuple) and len(p) == 2 for p in got):
        raise Mismatch(f"learn_merges should return a list of (left id, right id) tuples, got {_short(got)}")
    if len(got) > n_merges:
        raise Mismatch(f"learn_merges was asked for {n_merges} merges and returned {len(got)}")
    for i, pair in enumerate(got):
        if not all(isinstance(t, int) and 0 <= t < 256 + i for t in pair):
            raise Mismatch(f"merge {i} is {pair}, but before it only ids 0..{255 + i} exist: merge i makes token"
                           f" 256 + i (the first makes 256), and may only join bytes and earlier merges' tokens")


# ---- encode_chunk ---------------------------------------------------------------------------

@check("encode_chunk with no merges: the chunk's bytes", "encode_chunk")
def no_merges(mine):
    chunk = " héllo 日本".encode()
    got = mine.encode_chunk(chunk, [])
    if not isinstance(got, list) or not all(isinstance(t, int) for t in got):
        raise Mismatch(f"encode_chunk should return a list of ints (token ids), got {_short(got)}")
    if got != list(chunk):
        raise Mismatch(f"encode_chunk({chunk!r}, []) is {got}, expected the bytes themselves, {list(chunk)}: with no"
                       " merges every byte of the UTF-8 is its own token")


@check("encode_chunk merges the earliest-learned pair first", "encode_chunk")
def earliest_first(mine):
    merges = [(98, 97), (97, 98), (99, 97)]  # "ba" makes 256, then "ab" 257, then "ca" 258
    _same_encoding(mine, b"babcab", merges, "with merges [(b, a), (a, b), (c, a)]")


@check("a pair that overlaps itself merges left to right", "encode_chunk")
def overlapping(mine):
    _same_encoding(mine, b"aaa", [(97, 97)], "with merges [(a, a)]",
                   hint="replace each pair from the left and step past it: 'a a a' becomes [256, 97]")
    _same_encoding(mine, b"aaaaa", [(97, 97), (256, 256)], "with merges [(a, a), (256, 256)]")


@check("encode_chunk on every chunk of a short text", "encode_chunk")
def text_encoding(mine):
    merges = reference_learn(COUNTS, N_MERGES)
    for chunk in COUNTS:
        _same_encoding(mine, chunk.encode(), merges, f"with the {len(merges)} merges learned from the text")


def _same_encoding(mine, chunk: bytes, merges: list[Pair], which: str, hint: str = "") -> None:
    got, want = mine.encode_chunk(chunk, list(merges)), reference_encode(chunk, merges)
    if got == want:
        return
    for mistake, alike in MISTAKES:
        if got == alike(chunk, merges) != want:
            raise Mismatch(f"encode_chunk({chunk!r}) {which} is {got}, the reference {want}: {mistake}")
    raise Mismatch(f"encode_chunk({chunk!r}) {which} is {_short(got)}, the reference {want}"
                   + (f": {hint}" if hint else ": repeatedly merge the earliest-learned pair present, until none is"))


def _encode_choosing(choose: Callable[[list[Pair], dict[Pair, int]], Pair], once: bool = False):
    """A BPE encoder that merges the pair ``choose`` picks among the learned pairs present (for naming mistakes)."""
    def encode(chunk: bytes, merges: list[Pair]) -> list[int]:
        ranks = {p: 256 + i for i, p in enumerate(merges)}
        ids = list(chunk)
        while present := [p for p in zip(ids, ids[1:]) if p in ranks]:
            pair = choose(present, ranks)
            ids = merge_pair(ids, *pair, ranks[pair])
            if once:
                break
        return ids
    return encode


MISTAKES = (
    ("merges are applied in order of how often their pair occurs in the chunk, not in the order they were"
     " learned: always merge the earliest-learned pair present (the lowest new id)",
     _encode_choosing(lambda present, ranks: max(dict.fromkeys(present),
                                                 key=lambda p: (present.count(p), -ranks[p])))),
    ("the leftmost learned pair is merged first, not the earliest-learned: among the pairs present, merge the"
     " one learned first (the lowest new id), wherever it is", _encode_choosing(lambda present, ranks: present[0])),
    ("the latest-learned pair is merged first: merge the earliest-learned pair present first (the lowest new id),"
     " as training did", _encode_choosing(lambda present, ranks: max(present, key=ranks.get))),
    ("only one merge was applied: keep merging until no learned pair is left",
     _encode_choosing(lambda present, ranks: min(present, key=ranks.get), once=True)),
)


# ---- decode ---------------------------------------------------------------------------------

@check("decode of byte tokens gives bytes, even half a character", "decode")
def byte_tokens(mine):
    for text, ids in (("the bytes of 'héllo 日本'", list("héllo 日本".encode())),
                      ("the first 2 of the 3 bytes of '日'", list("日".encode())[:2])):
        got = mine.decode(ids, [])
        if not isinstance(got, bytes):
            raise Mismatch(f"decode of {text}, with no merges, should return bytes, got {type(got).__name__}: a token"
                           " may end in the middle of a UTF-8 character, so decode joins bytes and leaves text to"
                           " the caller")
        if got != bytes(ids):
            raise Mismatch(f"decode({ids}, []) is {got!r}, expected {bytes(ids)!r}: ids 0..255 are the bytes"
                           " themselves")


@check("decode of every token the merges made", "decode")
def merged_tokens(mine):
    merges = reference_learn(COUNTS, N_MERGES)
    for token in range(256, 256 + len(merges)):
        got, want = mine.decode([token], list(merges)), reference_decode([token], merges)
        if got != want:
            a, b = merges[token - 256]
            raise Mismatch(f"decode([{token}]) is {got!r}, the reference {want!r}: token {token} is merge"
                           f" {token - 256}, ({a}, {b}), so its bytes are token {a}'s bytes followed by token"
                           f" {b}'s ({reference_decode([a], merges)!r} + {reference_decode([b], merges)!r})")
    ids = [t for chunk in COUNTS for t in reference_encode(chunk.encode(), merges)]
    got = mine.decode(ids, merges)
    if got != reference_decode(ids, merges):
        raise Mismatch(f"decode of the whole text's {len(ids)} ids is not the text's bytes: {_short(got)}")


@check("decode(encode_chunk(chunk)) gives the chunk back", "encode_chunk", "decode")
def round_trip(mine):
    merges = reference_learn(COUNTS, N_MERGES)
    for chunk in [*COUNTS, " héllo wörld — 日本語", "\u00e9\u0301 😀"]:
        ids = mine.encode_chunk(chunk.encode(), merges)
        if mine.decode(ids, merges) != chunk.encode():
            raise Mismatch(f"decode(encode_chunk({chunk.encode()!r})) is {mine.decode(ids, merges)!r}: any bytes must"
                           " come back unchanged")


# ---- showing merges in words ------------------------------------------------------------------

def _show(pair: Pair, merges: list[Pair]) -> str:
    """(104, 195) 'h' + '\\xc3': a merge (of well-formed ``merges``) with its two parts' bytes, readable."""
    return f"{tuple(pair)} " + " + ".join(f"'{render_bytes(reference_decode([t], merges))}'" for t in pair)


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


PART = Part("bpe", "byte-level BPE: learning merges, encoding a chunk, decoding",
            ("learn_merges", "encode_chunk", "decode"), "LEARN.md, 2. The tokenizer",
            (weighted, borders, ties, stops, text_merges, no_merges, earliest_first, overlapping, text_encoding,
             byte_tokens, merged_tokens, round_trip))
