"""Reading a corpus: UTF-8 text, streamed line by line, never all of it in memory at once.

A corpus is read exactly as stored: ``newline=""`` keeps "\\r\\n" as two characters, so the
character counts used to split train/val and to compute bits/char are the file's own.
A file that is not UTF-8 fails with one line naming the file and the byte offset.
"""

from collections.abc import Iterator
from pathlib import Path

from sml.errors import SMLError


def iter_lines(path: str | Path) -> Iterator[str]:
    """Yield the lines of ``path`` (each with its line ending)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            yield from f
    except FileNotFoundError:
        raise SMLError(f"{path}: corpus not found (run the download stage first)") from None
    except UnicodeDecodeError as e:
        raise SMLError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start} of a block)") from None


def count_chars(path: str | Path) -> int:
    """Number of characters (code points) in the file."""
    return sum(len(line) for line in iter_lines(path))


def split_lines(path: str | Path, split_at: int) -> tuple[Iterator[str], Iterator[str]]:
    """Two iterators over the lines of ``path``: characters ``[0, split_at)``, then the rest.

    One read of the file serves both: consume the first fully before the second.

    >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(p, "w").write("ab\\ncd\\n")
    >>> head, tail = split_lines(p, 4)
    >>> list(head), list(tail)
    (['ab\\n', 'c'], ['d\\n'])
    """
    lines = iter_lines(path)
    rest: list[str] = []

    def head() -> Iterator[str]:
        seen = 0
        for line in lines:
            if seen + len(line) >= split_at:
                yield line[: split_at - seen]
                rest.append(line[split_at - seen :])
                return
            seen += len(line)
            yield line

    def tail() -> Iterator[str]:
        if rest and rest[0]:
            yield rest[0]
        yield from lines

    return head(), tail()
