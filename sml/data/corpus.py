"""Reading a corpus: UTF-8 text, streamed line by line, never all of it in memory at once.

A corpus is read exactly as stored: ``newline=""`` keeps "\\r\\n" as two characters, so the
character counts used to split train/val and to compute bits/char are the file's own.

A file that is not UTF-8 fails with one line naming the file, the byte offset and line of
the first bad byte, and the byte itself. Python's text reader decodes in blocks and reports
an offset within its block, so on that error the file is scanned once more, as bytes, to
find where in the file the bad byte is (only when reading has already failed).
"""

import codecs
from collections.abc import Iterator
from pathlib import Path

from sml.run.errors import SMLError


def sample_lines(path: str | Path, max_bytes: int, places: int = 64) -> Iterator[str]:
    """The lines of ``path``, or, for a file bigger than ``max_bytes``, about that many bytes of
    whole lines read at ``places`` evenly spaced offsets: a sample of the whole corpus whose
    size does not grow with it (what train_bpe trains on).

    Each place starts after the first line break past its offset and ends at the last one
    within its share, so every line is one of the file's own, complete. A share inside one
    long line is cut at spaces instead: whole words. (Neither a line break nor a space is ever
    part of a multi-byte UTF-8 character: cutting there is always safe.)
    """
    path = Path(path)
    size = path.stat().st_size
    if size <= max_bytes:
        yield from iter_lines(path)
        return
    share = max_bytes // places
    with open(path, "rb") as f:
        for k in range(places):
            start = k * size // places
            f.seek(start)
            data = f.read(share)
            begin = data.find(b"\n") + 1 if start > 0 else 0
            end = data.rfind(b"\n") + 1
            if end <= begin:  # the share is inside one long line
                begin, end = data.find(b" ") + 1 if start > 0 else 0, data.rfind(b" ") + 1
                if end <= begin:
                    continue
            try:
                text = data[begin:end].decode("utf-8")
            except UnicodeDecodeError as e:
                where = start + begin + e.start
                raise SMLError(f"{path}: not UTF-8 at byte {where:,}: {data[begin + e.start]:#04x}; save it as"
                               " UTF-8") from None
            yield from text.splitlines(keepends=True)


def check_corpus(path: str | Path) -> None:
    """Refuse a corpus that is missing or empty before any work (its text is checked as it is read)."""
    path = Path(path)
    if not path.is_file():
        raise SMLError(f"{path}: corpus not found (run the download stage first)")
    if path.stat().st_size == 0:
        raise SMLError(f"{path}: the corpus is empty: rerun the download stage (dvc repro -f download)")


LINE_CHARS = 1 << 20  # a longer line comes in parts of this many characters


def iter_lines(path: str | Path) -> Iterator[str]:
    """Yield the lines of ``path`` (each with its line ending); a line of more than
    ``LINE_CHARS`` characters comes in parts, so that one endless line is never read whole."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            yield from iter(lambda: f.readline(LINE_CHARS), "")
    except FileNotFoundError:
        raise SMLError(f"{path}: corpus not found (run the download stage first)") from None
    except UnicodeDecodeError as e:
        where = not_utf8_where(path) or f"not UTF-8 ({e.reason})"  # "" only if the file just changed
        raise SMLError(f"{path}: {where}; save it as UTF-8") from None


def not_utf8_where(path: str | Path, block_bytes: int = 1 << 20) -> str:
    """Where ``path`` stops being UTF-8, for a message ("" if it is UTF-8 throughout).

    Reads ``block_bytes`` at a time; a character cut by a block border is completed by
    the next block, so the answer does not depend on the block size.

    >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(p, "wb").write("café\\nna\\xefve\\n".encode() + b"\\xff!")
    >>> not_utf8_where(p, block_bytes=4)
    'not UTF-8 at byte 13 (line 3): 0xff (invalid start byte)'
    """
    offset, line, pending = 0, 1, b""  # pending: the start of a character cut by the block border
    with open(path, "rb") as f:
        while True:
            block = f.read(block_bytes)
            data = pending + block
            try:
                _, used = codecs.utf_8_decode(data, "strict", not block)  # final when the file ends
            except UnicodeDecodeError as e:
                line += data.count(b"\n", 0, e.start)  # b"\n" never occurs inside a UTF-8 character
                bad = " ".join(f"0x{b:02x}" for b in data[e.start : e.end])
                return f"not UTF-8 at byte {offset + e.start:,} (line {line:,}): {bad} ({e.reason})"
            if not block:
                return ""
            line += data.count(b"\n", 0, used)
            offset += used
            pending = data[used:]
