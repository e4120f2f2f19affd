"""From source files to the corpus: documents read from text or JSON lines, joined, split.

A corpus is a stream of documents (stories, articles, plays). Sources store them two ways:
- ``text``: the file is one document, exactly as stored (tiny Shakespeare; TinyStories'
  files, which already hold ``<|endoftext|>`` between their stories);
- ``jsonl``: one JSON object per line, the document's text under ``text_field`` (how most
  datasets ship text). A ``.gz`` file of either kind is read compressed (found by its magic
  bytes, whatever its name).

``build_corpus`` writes ``train.txt`` and ``val.txt``: the documents of the train sources,
in order, with ``separator`` (the end-of-text token's text) between them, and the same for
the val sources; with no val sources, the last ``val_fraction`` of the train text's
characters becomes val (nanoGPT's split for Shakespeare), which may cut a document in two.
Both files are written as they are read, a block at a time: memory stays small for any size.

Every file is checked as it is read, and a problem is one line naming the file and where:
bytes that are not UTF-8, a JSON line that does not parse or has no text, an empty corpus.

Left out on purpose: shuffling documents, de-duplication and filtering (a corpus is used as
its sources give it), and Parquet (it would need pyarrow, a large dependency, for a format
most text datasets also offer as JSON lines).
"""

import codecs
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sml.data.corpus import not_utf8_where
from sml.run.atomic import atomic_open
from sml.run.errors import SMLError
from sml.tokenizer.tokenizer import replace_surrogates

BLOCK_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Source:
    """A local file of the corpus (already fetched and verified) and how to read it."""

    path: Path
    format: str  # a corpus's: text | jsonl; conversations': jsonl | play | tinystories_instruct
    key: str  # the params key that names it, for messages: "data.sources[1]"


@dataclass
class Written:
    """What went into one corpus file."""

    documents: int = 0
    chars: int = 0
    bytes: int = 0


def build_corpus(train: list[Source], val: list[Source], out_dir: str | Path, val_fraction: float,
                 text_field: str = "text", separator: str = "<|endoftext|>") -> dict[str, Written]:
    """Write ``out_dir``/train.txt and val.txt from the sources; return what each holds.

    Nothing is replaced unless both files come out with text in them.
    """
    out_dir = Path(out_dir)
    with atomic_open(out_dir / "train.txt", "w+b") as f:  # w+: read back to split off val
        train_written = _write_documents(f, train, text_field, separator)
        _refuse_empty(out_dir / "train.txt", train_written, "data.sources")
        if val:
            with atomic_open(out_dir / "val.txt", "wb") as g:
                val_written = _write_documents(g, val, text_field, separator)
                _refuse_empty(out_dir / "val.txt", val_written, "data.val_sources")
        else:
            train_written, val_written = _split_tail(f, out_dir / "val.txt", train_written, val_fraction)
    return {"train": train_written, "val": val_written}


def documents(source: Source, text_field: str = "text") -> Iterator[Iterator[str]]:
    """The documents of ``source``, each as an iterator of text blocks (a whole file can be one)."""
    if source.format == "text":
        with _open(source.path) as f:
            yield _text_blocks(f, source)
        return
    for number, line in json_lines(source):
        yield iter((_json_text(line, number, source, text_field),))


def json_lines(source: Source) -> Iterator[tuple[int, bytes]]:
    """The lines of a JSON-lines file that are not blank, with their numbers (from 1), read
    compressed where it is a .gz; a damaged file is one line naming it."""
    with _open(source.path) as f:
        try:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    yield number, line
        except READ_ERRORS as e:
            raise _unreadable(source, e) from None


def text_lines(source: Source) -> Iterator[tuple[int, str]]:
    """The lines of a text file (their line ends cut off), numbered from 1, checked as UTF-8 on the
    way, read compressed where it is a .gz."""
    with _open(source.path) as f:
        pending, number = "", 0
        for block in _text_blocks(f, source):
            *lines, pending = (pending + block).split("\n")
            for line in lines:
                number += 1
                yield number, line.removesuffix("\r")
        if pending:
            yield number + 1, pending.removesuffix("\r")


def _write_documents(f: BinaryIO, sources: list[Source], text_field: str, separator: str) -> Written:
    written = Written()
    for source in sources:
        for blocks in documents(source, text_field):
            if written.documents and separator:
                _write(f, separator, written)
            written.documents += 1
            for block in blocks:
                _write(f, block, written)
    return written


def _write(f: BinaryIO, text: str, written: Written) -> None:
    data = text.encode("utf-8")
    f.write(data)
    written.chars += len(text)
    written.bytes += len(data)


def _split_tail(f: BinaryIO, val_path: Path, train: Written, val_fraction: float) -> tuple[Written, Written]:
    """Move the last ``val_fraction`` of the characters written to ``f`` into ``val_path``.

    The split point, a character count, is turned into a byte offset by reading the file
    back from the start (an incremental decoder keeps a character cut by a block border).
    """
    split_at = int(train.chars * (1 - val_fraction))  # characters that stay train
    if split_at == 0 or split_at == train.chars:
        raise SMLError(f"{val_path.parent / 'train.txt'}: {train.chars:,} characters cannot be split with"
                       f" data.val_fraction={val_fraction}: both splits need at least one character")
    decoder = codecs.getincrementaldecoder("utf-8")()
    f.seek(0)
    chars = 0
    while True:
        block = f.read(BLOCK_BYTES)
        whole_before = f.tell() - len(block) - len(decoder.getstate()[0])  # bytes of the characters so far
        text = decoder.decode(block)
        if chars + len(text) >= split_at:
            offset = whole_before + len(text[: split_at - chars].encode("utf-8"))
            break
        chars += len(text)
    f.seek(offset)
    with atomic_open(val_path, "wb") as v:
        while block := f.read(BLOCK_BYTES):
            v.write(block)
    f.truncate(offset)
    val = Written(documents=0, chars=train.chars - split_at, bytes=train.bytes - offset)
    return Written(train.documents, split_at, offset), val


def _refuse_empty(path: Path, written: Written, key: str) -> None:
    if written.chars == 0:
        raise SMLError(f"{path}: its sources hold no text: check {key} in params.yaml")


def _open(path: Path) -> BinaryIO:
    """``path`` for reading bytes, decompressed if it is gzip."""
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _text_blocks(f: BinaryIO, source: Source) -> Iterator[str]:
    """The file's text in blocks of about a megabyte, checked as UTF-8 on the way."""
    pending, offset = b"", 0
    try:
        while True:
            block = f.read(BLOCK_BYTES)
            data = pending + block
            try:
                text = data.decode("utf-8")
                pending = b""
            except UnicodeDecodeError as e:
                if block and e.start >= len(data) - 3 and e.reason == "unexpected end of data":
                    text, pending = data[: e.start].decode("utf-8"), data[e.start:]  # cut by the block
                else:
                    where = "" if isinstance(f, gzip.GzipFile) else not_utf8_where(source.path)  # with the line
                    where = where or (f"not UTF-8 at byte {offset + e.start:,} of the decompressed text"
                                      f" (0x{data[e.start]:02x})")
                    raise SMLError(f"{source.path} ({source.key}): {where}: save it as UTF-8") from None
            offset += len(data) - len(pending)
            if text:
                yield text
            if not block:
                return
    except READ_ERRORS as e:
        raise _unreadable(source, e) from None


READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error)  # a damaged or cut-short .gz among them


def _unreadable(source: Source, e: Exception) -> SMLError:
    return SMLError(f"{source.path} ({source.key}): cannot be read: {e}")


def _json_text(line: bytes, number: int, source: Source, field: str) -> str:
    """The text under ``field`` in one JSON line, or a one-line error naming the line."""
    where = f"{source.path} ({source.key}) line {number:,}"
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SMLError(f"{where}: not a JSON object ({e}): each line must be one, like"
                       f' {{"{field}": "..."}}') from None
    text = record.get(field) if isinstance(record, dict) else None
    if isinstance(record, dict) and field in record and not isinstance(text, str):
        shown = "null" if text is None else f"{type(text).__name__} {json.dumps(text)[:40]}"
        raise SMLError(f"{where}: {field!r} holds {shown}, not text: each line's {field!r} must be a string")
    if not isinstance(text, str):
        found = ", ".join(map(repr, record)) if isinstance(record, dict) else type(record).__name__
        raise SMLError(f"{where}: no text under {field!r} (found {found or 'nothing'}): set data.text_field"
                       " to the key that holds the text")
    return replace_surrogates(text)  # JSON may escape a lone surrogate: no UTF-8 holds one

