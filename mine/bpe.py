"""Part 2: byte-level BPE, learning merges, encoding a chunk, decoding. LEARN.md, 2. The tokenizer.

Grade it: ``make grade PART=bpe``. Run it: ``dvc exp run -S impl.bpe=mine``. The reference
to compare with once yours passes: ``learn_merges`` in sml/tokenizer/train.py (the fast one;
``tests/reference_bpe.py`` is the textbook loop, the one to write first), ``encode_chunk``
and ``decode`` in sml/tokenizer/tokenizer.py.

The text has already been cut into chunks (words with their leading space, numbers,
punctuation: sml/tokenizer/pretokenize.py), so everything here works on one chunk at a
time, and no merge ever crosses a chunk border. Tokens are ints: 0..255 are the bytes
themselves, and merge i (counting from 0) makes token 256 + i.
"""


def learn_merges(chunk_counts: dict[str, int], n_merges: int) -> list[tuple[int, int]]:
    """Learn up to ``n_merges`` merges from chunk frequencies; merge i makes token 256 + i.

    chunk_counts: each distinct chunk of the training text and how many times it occurs,
        e.g. {" the": 6, " wörld": 10, ",": 8}. Start each chunk as its UTF-8 bytes.
    Returns: the merges, in the order learned, each a (left id, right id) tuple of ints.

    What must hold: each step merges the adjacent pair with the highest count, where a pair
    inside a chunk seen n times counts n times; pairs are counted inside each chunk only,
    never from one chunk into the next; on a tie the smallest pair wins, comparing (left id,
    right id) as tuples; merging replaces each occurrence left to right ("a a a" with (a, a)
    becomes [256, a]); it stops early when no pair is left (a short text cannot give many
    merges).

    >>> learn_merges({"aaab": 2, "ab": 1}, 2)
    [(97, 97), (97, 98)]
    """
    raise NotImplementedError("learn_merges: write it (LEARN.md, 2. The tokenizer)")


def encode_chunk(chunk: bytes, merges: list[tuple[int, int]]) -> list[int]:
    """The token ids of one chunk: its bytes, then the merges applied.

    chunk: the UTF-8 bytes of one chunk, e.g. " héllo".encode().
    merges: as ``learn_merges`` returns them (merge i makes token 256 + i).
    Returns: a list of token ids (ints).

    What must hold: repeatedly merge the adjacent pair that was learned earliest (the lowest
    new id) among those present, each occurrence left to right, until no learned pair is left.
    That replays training, so a training chunk encodes to the very tokens training built.

    >>> encode_chunk(b"aaab", [(97, 97), (97, 98)])
    [256, 257]
    """
    raise NotImplementedError("encode_chunk: write it (LEARN.md, 2. The tokenizer)")


def decode(ids: list[int], merges: list[tuple[int, int]]) -> bytes:
    """The bytes of ``ids``: each token's bytes, joined.

    ids: token ids, each below 256 + len(merges). merges: as ``learn_merges`` returns them.
    Returns: bytes, not str: a token can end in the middle of a UTF-8 character (the caller
    decodes the text, replacing a cut character by U+FFFD).

    What must hold: token t < 256 is the byte t; token 256 + i, made by merge i = (a, b), is
    token a's bytes followed by token b's; decode(encode_chunk(chunk, merges), merges) == chunk.

    >>> decode([256, 257], [(97, 97), (97, 98)])
    b'aaab'
    """
    raise NotImplementedError("decode: write it (LEARN.md, 2. The tokenizer)")
