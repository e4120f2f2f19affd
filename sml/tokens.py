"""Token files: the corpus encoded once, stored flat, read back without loading it all.

The encode stage splits the corpus by characters into train (the first ``1 - val_fraction``)
and val (the rest: nanoGPT's convention for Shakespeare, so results compare), encodes each,
and writes ``train.bin`` and ``val.bin``: raw little-endian ``uint16`` ids (``uint32`` when
the vocabulary has more than 65,536 ids), plus ``meta.json`` with the counts of tokens,
characters and UTF-8 bytes per split. Those counts turn a loss in nats/token into
nats/char, bits/char and bits/byte, units that compare across tokenizers.

Memory stays bounded: the text is read line by line in pieces of about a megabyte whose
borders are chunk borders (``pretokenize.stream_pieces``), so the ids are exactly those of
encoding the whole split at once; each piece's ids go to disk before the next is read.

Left out on purpose: shuffling or document boundaries (the corpus is one stream of text).
"""

import json
from pathlib import Path

import numpy as np

from sml.atomic import atomic_open, write_json
from sml.corpus import count_chars, split_lines
from sml.errors import SMLError
from sml.tokenizer import Tokenizer
from sml.tokenizer.pretokenize import stream_pieces
from sml.tokenizer.tokenizer import Backend, SpecialPolicy, TokenizerError

SPLITS = ("train", "val")


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
        "split_at_char": split_at, "backend": tok.backend_name(backend),
    }
    for split, lines in zip(SPLITS, split_lines(corpus, split_at), strict=True):
        counts = {"tokens": 0, "chars": 0, "bytes": 0}
        with atomic_open(out_dir / f"{split}.bin", "wb") as f:
            for piece in stream_pieces(lines, tok.split_re, _special_re(tok, special), piece_chars):
                try:
                    ids = np.asarray(tok.encode(piece, special, backend), dtype=dtype)
                except TokenizerError as e:
                    raise SMLError(f"{corpus}: {e} (data.special_in_text in params.yaml)") from None
                f.write(ids.astype(dtype.newbyteorder("<"), copy=False).tobytes())
                counts["tokens"] += len(ids)
                counts["chars"] += len(piece)
                counts["bytes"] += len(piece.encode("utf-8"))
        meta[split] = counts
    write_json(out_dir / "meta.json", meta)
    return meta


def load_tokens(directory: str | Path, split: str) -> np.memmap:
    """The ids of ``split`` as a read-only memory map (nothing is read until used)."""
    meta = load_meta(directory)
    path = Path(directory) / f"{split}.bin"
    return np.memmap(path, dtype=np.dtype(meta["dtype"]).newbyteorder("<"), mode="r")


def load_meta(directory: str | Path) -> dict:
    """The ``meta.json`` written next to the token files."""
    path = Path(directory) / "meta.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SMLError(f"{path}: not found (run the encode stage)") from None


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds every id: uint16 up to 65,536 ids, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def _special_re(tok: Tokenizer, special: SpecialPolicy):
    # With special="text" a special token's text is ordinary text, so it may be cut anywhere.
    return None if special == "text" else tok.special_re
