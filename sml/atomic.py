"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every artifact SML writes goes through here: the bytes go to a temporary file in the same
directory, are flushed to disk, and the temporary file is renamed over the target. A rename
within one file system is atomic on POSIX and on Windows (``os.replace``), so an interrupted
run leaves either nothing or the complete previous file behind.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (the only way is to set it and set it back)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path``, on error it goes.

    >>> with atomic_open("/tmp/sml-doctest.txt") as f:
    ...     _ = f.write("hello")
    >>> open("/tmp/sml-doctest.txt").read()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" in mode:
        encoding = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline="" if encoding else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines as given)."""
    with atomic_open(path) as f:
        f.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
