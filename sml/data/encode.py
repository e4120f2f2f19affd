"""Encoding the corpus: train.txt and val.txt into flat token files, on every core.

The download stage wrote the two splits as text (``sml/data/sources.py``); each becomes a file of
ids. A big file is cut into ranges of about ``range_bytes`` at safe places, the ranges
are encoded by worker processes at the same time, and their ids are written in order.

Why the ids are exactly those of encoding the whole file at once: a range ends only where
no chunk of the split pattern can cross, the same rule ``pretokenize.stream_pieces`` uses
to cut a stream into pieces. To find such a place near an offset without reading the file
up to it, ``_cut_near`` reads a window from just after a line break and looks for a safe
cut that follows a *sure border* (a letter then a symbol: a chunk border however the text
before it was cut). Inside a range, text is read in blocks and encoded piece by piece, so a
worker holds one range at most, and the parent at most a few ranges' ids: memory does not
grow with the corpus. The tests check parallel = serial = encoding the text in one call.

Each split must come out with at least 2 tokens (one to predict from, one to predict);
training needs more (``train`` tokens > ``block_size``), which the train stage checks. The
sha256 of each file is computed as it is written so that ``load_tokens`` can tell a damaged
or swapped file from the one encode wrote. ``meta.json`` goes last, and a stale one is
removed first: a failed encode leaves no ``meta.json`` that could vouch for new ``.bin`` files.

Left out on purpose: shuffling; and cutting a file that has no line break at all into ranges
(such a file, like one 100 MB line, is encoded by one process, still a block at a time).
"""

import codecs
import collections
import contextlib
import hashlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TextIO

import numpy as np

from sml.data.corpus import not_utf8_where
from sml.data.meter import Meter
from sml.data.tokens import SPLITS, token_dtype
from sml.run.atomic import replaced_together, write_json
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer
from sml.tokenizer.pretokenize import last_safe_cut, stream_pieces
from sml.tokenizer.tokenizer import Backend, SpecialPolicy, TokenizerError

MIN_SPLIT_TOKENS = 2  # one token to predict from, one to predict
RANGE_BYTES = 32 << 20  # what one worker encodes at a time, at most
RANGES_PER_PROCESS = 8  # a file gets at least this many ranges per process: the last ones finish together
MIN_RANGE_BYTES = 1 << 20
SERIAL_BELOW = 4 << 20  # a smaller file is encoded in this process: starting workers costs ~1 s
WINDOW_BYTES = 1 << 20  # read after a wanted cut to find a safe one (at most)
BLOCK_BYTES = 1 << 20


def encode_corpus(
    corpus: str | Path,
    tok: Tokenizer,
    out_dir: str | Path,
    special: SpecialPolicy = "allow",
    backend: Backend = "auto",
    workers: int = 1,
    range_bytes: int = RANGE_BYTES,
    progress: TextIO | None = None,
    mine_bpe: Path | None = None,
) -> dict:
    """Encode ``corpus``/{train,val}.txt into ``out_dir``/{train,val}.bin and meta.json.

    ``workers`` processes share the work (1: all in this process); ``progress`` is a stream
    for a progress line (``sml.data.meter.Meter``), None for none. ``mine_bpe``: the learner's
    mine/bpe.py (``impl.bpe: mine``), whose ``encode_chunk`` each process then runs, in
    Python. Returns the meta dict.
    """
    corpus, out_dir = Path(corpus), Path(out_dir)
    paths = {split: corpus / f"{split}.txt" for split in SPLITS}
    for path in paths.values():
        if not path.is_file():
            raise SMLError(f"{path}: not found: run the download stage first (dvc repro download)")
    sizes = [path.stat().st_size for path in paths.values()]
    processes = processes_for(max(sizes), workers)
    meter = Meter(f"encode ({processes} process{'es' if processes > 1 else ''})", sum(sizes), progress)
    dtype = token_dtype(tok.vocab_size)
    meta: dict = {
        "tokenizer": str(tok.pattern_name), "vocab_size": tok.vocab_size, "dtype": dtype.name,
        "backend": tok.backend_name(backend) if mine_bpe is None else f"python ({mine_bpe.as_posix()})",
        "sha256": {},
    }
    job = (tok.to_dict(), special, backend, mine_bpe)  # plain data: what each worker builds its encoder from
    # Both splits are written beside the old files and replace them only once both are done:
    # a corpus that fails half-way (val.txt not UTF-8) leaves the previous token files and
    # their meta.json as they were.
    with replaced_together(*(out_dir / f"{split}.bin" for split in paths)) as temps:
        for (split, path), tmp in zip(paths.items(), temps, strict=True):
            counts = {"tokens": 0, "chars": 0, "bytes": 0}
            digest = hashlib.sha256()
            with open(tmp, "wb") as f:
                ranges = cut_ranges(path, tok, special, _range_size(path.stat().st_size, processes, range_bytes))
                for data, chars, n_bytes in encoded_ranges(path, ranges, job, workers):
                    f.write(data)
                    digest.update(data)
                    counts["tokens"] += len(data) // dtype.itemsize
                    counts["chars"] += chars
                    counts["bytes"] += n_bytes
                    meter.add(n_bytes)
            meta[split] = counts
            meta["sha256"][split] = digest.hexdigest()
        meter.close()
        _check_split_sizes(corpus, meta)
        (out_dir / "meta.json").unlink(missing_ok=True)  # it no longer describes the files about to replace
    write_json(out_dir / "meta.json", meta)
    return meta


def cut_ranges(path: Path, tok: Tokenizer, special: SpecialPolicy, range_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges ``[(0, a), (a, b), ...]`` that tile ``path``, each cut at a safe place.

    A wanted cut with no safe place near it is skipped: its two ranges become one.
    """
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as f:
        for wanted in range(range_bytes, size, range_bytes):
            cut = _cut_near(f, max(wanted, cuts[-1] + 1), min(WINDOW_BYTES, range_bytes // 2), tok, special)
            if cut is not None and cuts[-1] < cut < size:
                cuts.append(cut)
    return list(zip(cuts, [*cuts[1:], size]))


def _range_size(n_bytes: int, processes: int, range_bytes: int) -> int:
    """``range_bytes``, or less, so that each process gets several ranges of a file of ``n_bytes``.

    >>> _range_size(100_000_000, 2, RANGE_BYTES)  # 16 ranges, not 3 of 32 MiB and a small one
    6250000
    """
    if processes <= 1:
        return range_bytes
    return min(range_bytes, max(n_bytes // (RANGES_PER_PROCESS * processes), MIN_RANGE_BYTES))


def processes_for(n_bytes: int, workers: int) -> int:
    """How many processes encode a file of ``n_bytes`` with ``workers`` allowed: 1 for a small one."""
    return 1 if n_bytes < SERIAL_BELOW else workers


def available_cores() -> int:
    """The cores this process may run on (a container or ``taskset`` may allow fewer than exist)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cut_near(f, offset: int, window: int, tok: Tokenizer, special: SpecialPolicy) -> int | None:
    """A safe cut in the ``window`` bytes from ``offset``, as a file offset, or None.

    The window's text runs from just after its first line break to just after its last, so
    it holds whole characters and no part of a special token (they hold no line break).
    """
    f.seek(offset)
    data = f.read(window)
    begin, end = data.find(b"\n") + 1, data.rfind(b"\n") + 1
    if begin == 0 or end <= begin:
        return None
    try:
        text = data[begin:end].decode("utf-8")
    except UnicodeDecodeError:
        return None  # the range's worker reports where, with the whole file's offsets
    cut = last_safe_cut(text, tok.split_re, _special_re(tok, special), starts_at_border=False)
    return offset + begin + len(text[:cut].encode("utf-8")) if cut else None


def encoded_ranges(path: Path, ranges: list[tuple[int, int]], job: tuple, workers: int,
                    encoder: type | None = None) -> Iterator[tuple]:
    """What ``encoder(*job)`` makes of each range (``_RangeEncoder``'s: ``(ids as bytes, chars,
    bytes)``), in order, from up to ``workers`` processes.

    At most two ranges per worker are in flight, so finished ranges never pile up in memory.
    Workers are started with "spawn" on every system (what Windows and macOS do anyway):
    the same behaviour everywhere, and no fork of a process that may hold threads. One
    process works piece by piece (``encoder.pieces``): a range of any size in bounded memory.
    ``sml/data/conversations.py`` encodes its JSON lines through this too.
    """
    encoder = encoder or _RangeEncoder
    workers = min(processes_for(path.stat().st_size, workers), len(ranges))
    if workers <= 1:
        local = encoder(*job)
        for start, end in ranges:
            yield from local.pieces(path, start, end)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(encoder, *job))
    try:
        in_flight: collections.deque = collections.deque()
        for i, (start, end) in enumerate(ranges):
            with _ctrl_c_ignored_by_children(i < workers):  # the pool starts a process at each of these
                in_flight.append(pool.submit(_encode_in_worker, path, start, end))
            if len(in_flight) >= 2 * workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    except BrokenProcessPool:
        raise SMLError(f"{path}: an encode worker process died (out of memory, or killed): rerun, with fewer"
                       " workers if it happens again (--workers 1)") from None
    finally:
        pool.shutdown(cancel_futures=True)


class _RangeEncoder:
    """Encodes one byte range of a corpus file; built once per process."""

    def __init__(self, tokenizer: dict, special: SpecialPolicy, backend: Backend, mine_bpe: Path | None = None):
        self.tok = Tokenizer.from_dict(tokenizer)
        if mine_bpe is not None:  # the learner's BPE (graded by the stage already)
            from sml.learn.core import load

            bpe = load(mine_bpe)
            self.tok.use(bpe.encode_chunk, bpe.decode)
        self.special, self.backend = special, backend
        self.dtype = token_dtype(self.tok.vocab_size).newbyteorder("<")

    def __call__(self, path: Path, start: int, end: int) -> tuple[bytes, int, int]:
        """The range's ids (as the bytes of the file to write), its characters and its bytes."""
        parts = list(self.pieces(path, start, end))
        return b"".join(p[0] for p in parts), sum(p[1] for p in parts), end - start

    def pieces(self, path: Path, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
        """The same, one piece of about a megabyte at a time."""
        pieces = stream_pieces(_text_blocks(path, start, end), self.tok.split_re, _special_re(self.tok, self.special))
        for piece in pieces:
            try:
                ids = self.tok.encode(piece, self.special, self.backend)
            except TokenizerError as e:
                raise SMLError(f"{path}: {e} (data.special_in_text in params.yaml)") from None
            yield np.asarray(ids, dtype=self.dtype).tobytes(), len(piece), len(piece.encode("utf-8"))


@contextlib.contextmanager
def _ctrl_c_ignored_by_children(starting: bool) -> Iterator[None]:
    """While ``starting``, SIGINT is ignored, and so it is in the processes started then: a
    process inherits an ignored signal, and Python then leaves it ignored. Ctrl-C (which a
    terminal sends to every process of the group) is the stage's to handle, once, and not
    every worker's, even one still importing, to print a traceback about."""
    if not starting or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


_worker = None  # the process's encoder (a _RangeEncoder, or conversations')


def _start_worker(encoder: type, *job) -> None:
    global _worker
    _worker = encoder(*job)


def _encode_in_worker(path: Path, start: int, end: int) -> tuple[bytes, int, int]:
    return _worker(path, start, end)


def _text_blocks(path: Path, start: int, end: int) -> Iterator[str]:
    """The text of bytes ``[start, end)`` in blocks of about ``BLOCK_BYTES`` that end at a line
    break, or, in a line longer than a block, after the block's last whole character."""
    with open(path, "rb") as f:
        f.seek(start)
        pending = b""
        while (left := end - f.tell()) > 0 and (block := f.read(min(BLOCK_BYTES, left))):
            data = pending + block
            cut = data.rfind(b"\n") + 1 if f.tell() < end else len(data)
            if cut == 0 and len(data) >= BLOCK_BYTES:  # inside a long line: up to a whole character
                cut = _whole_characters(data, path)
            pending = data[cut:]
            if cut:
                yield _decode(data[:cut], path)
        if pending:
            yield _decode(pending, path)


def _whole_characters(data: bytes, path: Path) -> int:
    """How many bytes of ``data`` are whole UTF-8 characters (the rest is cut by the block's end)."""
    try:
        return codecs.utf_8_decode(data, "strict", False)[1]
    except UnicodeDecodeError:
        return len(data)  # _decode reports where


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        where = not_utf8_where(path) or f"not UTF-8 ({e.reason})"  # the whole file's offset and line
        raise SMLError(f"{path}: {where}; save it as UTF-8") from None


def _check_split_sizes(corpus: Path, meta: dict) -> None:
    """Refuse a split of fewer than ``MIN_SPLIT_TOKENS`` tokens: nothing could be trained or scored."""
    train, val = meta["train"]["tokens"], meta["val"]["tokens"]
    if min(train, val) >= MIN_SPLIT_TOKENS:
        return
    small = "val" if val < MIN_SPLIT_TOKENS else "train"
    fix = ("raise data.val_fraction or give data.val_sources more text" if small == "val"
           else "lower data.val_fraction or give data.sources more text")
    raise SMLError(
        f"{corpus}: train.txt gives {_tokens(train)} and val.txt {_tokens(val)}: each split needs at least"
        f" {MIN_SPLIT_TOKENS}; {fix}"
    )


def _tokens(n: int) -> str:
    return f"{n:,} token" + ("" if n == 1 else "s")


def _special_re(tok: Tokenizer, special: SpecialPolicy):
    # With special="text" a special token's text is ordinary text, so it may be cut anywhere.
    return None if special == "text" else tok.special_re
