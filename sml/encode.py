"""Encoding the corpus: the character split into train/val, and streamed, bounded encoding.

The first ``1 - val_fraction`` of the characters is train, the rest val (nanoGPT's
convention for Shakespeare, so results compare). Each split is read line by line in pieces
of about a megabyte whose borders are chunk borders (``pretokenize.stream_pieces``), so the
ids are exactly those of encoding the whole split at once, and each piece's ids go to disk
before the next is read: memory stays bounded for any corpus size.

Each split must come out with at least 2 tokens (one to predict from, one to predict);
training needs more (``train`` tokens > ``block_size``, for one window), which the train
stage checks before its first step. The sha256 of each file is computed as it is
written (a few ms per MB, next to seconds of encoding) so that ``load_tokens`` can tell a
damaged or swapped file from the one encode wrote. ``meta.json`` goes last, and a stale one
is removed first: a failed encode leaves no ``meta.json`` that could vouch for new ``.bin`` files.

Left out on purpose: shuffling or document boundaries (the corpus is one stream of text).
"""

import hashlib
from pathlib import Path

import numpy as np

from sml.atomic import atomic_open, write_json
from sml.corpus import count_chars, split_lines
from sml.errors import SMLError
from sml.tokenizer import Tokenizer
from sml.tokenizer.pretokenize import stream_pieces
from sml.tokenizer.tokenizer import Backend, SpecialPolicy, TokenizerError
from sml.tokens import SPLITS, token_dtype

MIN_SPLIT_TOKENS = 2  # one token to predict from, one to predict


def encode_corpus(
    corpus: str | Path,
    tok: Tokenizer,
    out_dir: str | Path,
    val_fraction: float,
    special: SpecialPolicy = "allow",
    backend: Backend = "auto",
    piece_chars: int = 1 << 20,
) -> dict:
    """Encode ``corpus`` into ``out_dir``/{train,val}.bin and meta.json; return the meta dict."""
    corpus, out_dir = Path(corpus), Path(out_dir)
    n_chars = count_chars(corpus)
    split_at = int(n_chars * (1 - val_fraction))
    if split_at == 0 or split_at == n_chars:
        raise SMLError(
            f"{corpus}: {n_chars} characters cannot be split with data.val_fraction="
            f"{val_fraction}: both splits need at least one character"
        )
    dtype = token_dtype(tok.vocab_size)
    meta: dict = {
        "tokenizer": str(tok.pattern_name), "vocab_size": tok.vocab_size, "dtype": dtype.name,
        "split_at_char": split_at, "backend": tok.backend_name(backend), "sha256": {},
    }
    (out_dir / "meta.json").unlink(missing_ok=True)
    for split, lines in zip(SPLITS, split_lines(corpus, split_at), strict=True):
        counts = {"tokens": 0, "chars": 0, "bytes": 0}
        digest = hashlib.sha256()
        with atomic_open(out_dir / f"{split}.bin", "wb") as f:
            for piece in stream_pieces(lines, tok.split_re, _special_re(tok, special), piece_chars):
                try:
                    ids = np.asarray(tok.encode(piece, special, backend), dtype=dtype)
                except TokenizerError as e:
                    raise SMLError(f"{corpus}: {e} (data.special_in_text in params.yaml)") from None
                data = ids.astype(dtype.newbyteorder("<"), copy=False).tobytes()
                f.write(data)
                digest.update(data)
                counts["tokens"] += len(ids)
                counts["chars"] += len(piece)
                counts["bytes"] += len(piece.encode("utf-8"))
        meta[split] = counts
        meta["sha256"][split] = digest.hexdigest()
    _check_split_sizes(corpus, meta, val_fraction)
    write_json(out_dir / "meta.json", meta)
    return meta


def _check_split_sizes(corpus: Path, meta: dict, val_fraction: float) -> None:
    """Refuse a split of fewer than ``MIN_SPLIT_TOKENS`` tokens: nothing could be trained or scored."""
    train, val = meta["train"]["tokens"], meta["val"]["tokens"]
    if min(train, val) >= MIN_SPLIT_TOKENS:
        return
    small = "val" if val < MIN_SPLIT_TOKENS else "train"
    fix = ("raise data.val_fraction" if small == "val" else "lower data.val_fraction") + " or use a bigger corpus"
    raise SMLError(
        f"{corpus}: with data.val_fraction={val_fraction} train gets {_tokens(train)} and val"
        f" {_tokens(val)}: each split needs at least {MIN_SPLIT_TOKENS}; {fix}"
    )


def _tokens(n: int) -> str:
    return f"{n:,} token" + ("" if n == 1 else "s")


def _special_re(tok: Tokenizer, special: SpecialPolicy):
    # With special="text" a special token's text is ordinary text, so it may be cut anywhere.
    return None if special == "text" else tok.special_re
