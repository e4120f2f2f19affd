"""Token files: the corpus's ids stored flat, read back without loading them all.

``train.bin`` and ``val.bin`` hold raw little-endian ``uint16`` ids (``uint32`` when the
vocabulary has more than 65,536 ids); ``meta.json`` next to them holds the dtype, the
counts of tokens, characters and UTF-8 bytes per split, and each file's sha256. The counts
turn a loss in nats/token into nats/char, bits/char and bits/byte: units that compare
across tokenizers.

Written by ``sml/data/encode.py``; read by training and evaluation as memory maps, so a corpus
larger than RAM costs only the windows actually read.

Reading checks the files before anyone trusts them, since a broken token file would
otherwise train garbage or crash deep inside the model: ``meta.json`` must hold every key
with the right type; a ``.bin`` must hold a whole number of ids, exactly as many as
``meta.json`` says, none outside the vocabulary, and the bytes that encode wrote (its
sha256). Each problem is one line naming the file and saying to rerun the encode stage (the
conversations stage for fine-tuning's token files: ``rerun``).

Left out on purpose: checking that the tokens match the corpus (that would mean encoding
it again); and, for files over ``HASH_MAX_BYTES``, the full hash and id check (see there).
"""

import hashlib
import json
import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sml.run.errors import SMLError

SPLITS = ("train", "val")
RERUN = "rerun the encode stage (dvc repro encode, or python -m stages.encode)"
RERUN_CONVERSATIONS = "rerun the conversations stage (dvc repro conversations)"  # fine-tuning's token files

# Hashing reads the whole file: about 1 s per 2 GB with the CPU's SHA instructions (5 s
# without), paid by every process that loads the tokens. Up to this size that is small
# next to training; above it only the ids at both ends of the file are checked.
HASH_MAX_BYTES = 2 << 30
CHECKED_END_TOKENS = 1 << 24  # tokens read at a time by the id check; at each end of a file too big to hash

# Every key encode writes into meta.json, with its type (a count is an int, never a bool).
META_KEYS = {"tokenizer": str, "vocab_size": int, "dtype": str, "backend": str,
             "train": dict, "val": dict, "sha256": dict}
COUNT_KEYS = ("tokens", "chars", "bytes")


def load_tokens(directory: str | Path, split: str, rerun: str = RERUN) -> np.memmap:
    """The ids of ``split`` as a read-only memory map, checked against ``meta.json`` first.

    Raises ``SMLError`` when the file is missing, empty, cut short, holds another number of
    tokens than ``meta.json`` says, holds an id outside the vocabulary, or has other bytes
    than encode wrote.
    """
    meta = load_meta(directory, rerun)
    path = Path(directory) / f"{split}.bin"
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SMLError(f"{path}: not found; {rerun}") from None
    if size == 0:
        raise SMLError(f"{path}: empty (0 bytes); {rerun}")
    if size % dtype.itemsize:
        raise SMLError(f"{path}: {size:,} bytes is not a whole number of {meta['dtype']} ids"
                       f" ({dtype.itemsize} bytes each): the file was cut short or damaged; {rerun}")
    expected = meta[split]["tokens"]
    if size // dtype.itemsize != expected:
        raise SMLError(f"{path}: holds {size // dtype.itemsize:,} tokens but {path.parent / 'meta.json'}"
                       f" says {expected:,}: the files come from different runs; {rerun}")
    tokens = np.memmap(path, dtype=dtype, mode="r")
    _check_ids(path, tokens, meta["vocab_size"], rerun)
    if size <= HASH_MAX_BYTES:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        if digest != meta["sha256"][split]:
            raise SMLError(f"{path}: its bytes changed since encode wrote it (sha256 {digest[:12]}...,"
                           f" {path.parent / 'meta.json'} says {meta['sha256'][split][:12]}...); {rerun}")
    return tokens


def load_learned(directory: str | Path, split: str) -> np.memmap:
    """The learned flags of ``split`` (fine-tuning: ``{split}.learn.bin``, one byte a token, 1
    where the model learns it; ``sml.data.conversations``), checked against ``meta.json``."""
    rerun = RERUN_CONVERSATIONS
    meta, path = load_meta(directory, rerun), Path(directory) / f"{split}.learn.bin"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SMLError(f"{path}: not found: fine-tuning needs the token files of conversations; {rerun}") from None
    if size != meta[split]["tokens"]:
        raise SMLError(f"{path}: {size:,} flags for {meta[split]['tokens']:,} tokens: the files come from"
                       f" different runs; {rerun}")
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != meta["sha256"].get(f"{split}.learn"):
        raise SMLError(f"{path}: its bytes changed since it was written (sha256 {digest[:12]}...); {rerun}")
    return np.memmap(path, dtype=np.uint8, mode="r")


def chunks(tokens: np.ndarray, size: int, overlap: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """``tokens[lo : lo + size + overlap]`` as int64, for lo = 0, size, 2 size, ... below ``stop``
    (default: the end), each chunk's pages given back (``drop_pages``) once it has been used.

    >>> [c.tolist() for c in chunks(np.arange(5, dtype=np.uint16), 2, overlap=1)]
    [[0, 1, 2], [2, 3, 4], [4]]
    """
    for lo in range(0, len(tokens) if stop is None else stop, size):
        yield np.asarray(tokens[lo : lo + size + overlap], dtype=np.int64)
        drop_pages(tokens)


def drop_pages(tokens: np.ndarray) -> None:
    """Let the OS take back the pages of a memory-mapped token file read so far.

    A memory map's pages count in the process's resident memory once read, so a scan over
    a 2 GB file would end with 2 GB "in use", though every page is the file's own and can be
    read again. Between chunks of a scan, this keeps memory at one chunk. No-op for a plain
    array, and where ``madvise`` does not exist (Windows, which trims such pages itself).
    """
    mapped = getattr(tokens, "_mmap", None)  # np.memmap's mmap object (a slice of one shares it)
    if mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)  # read-only and file-backed: nothing is lost


def load_meta(directory: str | Path, rerun: str = RERUN) -> dict:
    """The ``meta.json`` written next to the token files, with every key checked."""
    path = Path(directory) / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SMLError(f"{path}: not found; {rerun}") from None
    except UnicodeDecodeError as e:
        raise SMLError(f"{path}: not UTF-8 text (byte {e.start:,}): the file is damaged; {rerun}") from None
    except json.JSONDecodeError as e:
        raise SMLError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); {rerun}") from None
    problem = meta_problem(meta)
    if problem:
        raise SMLError(f"{path}: {problem}; {rerun}")
    return meta


def check_vocab_size(directory: str | Path, vocab_size: int, tokenizer: str | Path, rerun: str = RERUN) -> None:
    """Refuse token files encoded with another vocabulary than the tokenizer's ``vocab_size`` ids.

    For the stages that read both (train): token files from another run's tokenizer would
    load fine on their own, and feed ids that mean other text.
    """
    meta = load_meta(directory, rerun)
    if meta["vocab_size"] != vocab_size:
        raise SMLError(f"{Path(directory) / 'meta.json'}: the token files were encoded with"
                       f" {meta['vocab_size']:,} ids, but {tokenizer} has {vocab_size:,}; {rerun}")


def meta_problem(meta: object) -> str:
    """What is wrong with the contents of a ``meta.json``, or "" when nothing is.

    >>> meta_problem({"vocab_size": 300})
    "no key 'tokenizer'"
    """
    if not isinstance(meta, dict):
        return f"expected a JSON object, found {type(meta).__name__}"
    for key, kind in META_KEYS.items():
        if key not in meta:
            return f"no key {key!r}"
        if not _is(meta[key], kind):
            return f"{key} is {meta[key]!r}, expected {_JSON_NAME[kind]}"
    if meta["vocab_size"] < 1:
        return f"vocab_size is {meta['vocab_size']}, expected at least 1"
    if meta["dtype"] != token_dtype(meta["vocab_size"]).name:
        return (f"dtype is {meta['dtype']!r}, but {meta['vocab_size']:,} ids are stored as"
                f" {token_dtype(meta['vocab_size']).name!r}")
    for split in SPLITS:
        for key in COUNT_KEYS:
            value = meta[split].get(key)
            if not _is(value, int) or value < 0:
                return f"{split}.{key} is {value!r}, expected a count (an integer >= 0)"
        digest = meta["sha256"].get(split)
        if not (isinstance(digest, str) and len(digest) == 64):
            return f"sha256.{split} is {digest!r}, expected 64 hex digits"
    return ""


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds every id: uint16 up to 65,536 ids, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def _check_ids(path: Path, tokens: np.memmap, vocab_size: int, rerun: str = RERUN) -> None:
    """Refuse an id >= ``vocab_size`` (it would index past the embedding table).

    The max of a memory map reads the whole file (~30 GB/s from the page cache), a chunk at a
    time with its pages given back after it; a file too big to hash gets only its first and
    last ``CHECKED_END_TOKENS`` ids checked.
    """
    if tokens.nbytes <= HASH_MAX_BYTES:
        top = max(int(chunk.max()) for chunk in chunks(tokens, CHECKED_END_TOKENS))
    else:
        top = max(int(tokens[:CHECKED_END_TOKENS].max()), int(tokens[-CHECKED_END_TOKENS:].max()))
    if top >= vocab_size:
        raise SMLError(f"{path}: holds token id {top:,} but the vocabulary has ids 0..{vocab_size - 1:,}"
                       f" only: the file is damaged or from another tokenizer; {rerun}")


_JSON_NAME = {str: "a string", int: "an integer", dict: "an object"}


def _is(value: object, kind: type) -> bool:
    """isinstance, except that a bool is not an int (JSON's true is not a count)."""
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


class PairCounts:
    """How often each pair code (a * V + b) occurs: a dense table for small vocabularies, sorted
    (code, count) arrays merged chunk by chunk for big ones (memory: the distinct pairs seen)."""

    DENSE_MAX = 1 << 25  # V * V entries of int64 counts: 256 MB at most (V up to 5,792)

    def __init__(self, vocab_size: int):
        self.dense = np.zeros(vocab_size * vocab_size, dtype=np.int64) if vocab_size**2 <= self.DENSE_MAX else None
        self.codes = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)

    def add(self, codes: np.ndarray) -> None:
        if self.dense is not None:
            self.dense += np.bincount(codes, minlength=len(self.dense))
            return
        new, n = np.unique(codes, return_counts=True)
        merged, where = np.unique(np.concatenate([self.codes, new]), return_inverse=True)
        self.counts = np.bincount(where, weights=np.concatenate([self.counts, n]), minlength=len(merged)).astype(
            np.int64)
        self.codes = merged

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            return self.dense[codes]
        if len(self.codes) == 0:
            return np.zeros(len(codes), dtype=np.int64)
        where = np.searchsorted(self.codes, codes).clip(max=len(self.codes) - 1)
        return np.where(self.codes[where] == codes, self.counts[where], 0)
