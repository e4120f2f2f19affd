"""Token files: the corpus's ids stored flat, read back without loading them all.

``train.bin`` and ``val.bin`` hold raw little-endian ``uint16`` ids (``uint32`` when the
vocabulary has more than 65,536 ids); ``meta.json`` next to them holds the dtype and the
counts of tokens, characters and UTF-8 bytes per split. Those counts turn a loss in
nats/token into nats/char, bits/char and bits/byte: units that compare across tokenizers.

Written by ``sml/encode.py``; read by training and evaluation as memory maps, so a corpus
larger than RAM costs only the windows actually read.
"""

import json
from pathlib import Path

import numpy as np

from sml.errors import SMLError

SPLITS = ("train", "val")


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
