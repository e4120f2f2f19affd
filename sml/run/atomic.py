"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every artifact SML writes goes through here: the bytes go to a temporary file in the same
directory, are flushed to disk, and the temporary file is renamed over the target. A rename
within one file system is atomic on POSIX and on Windows (``os.replace``), so an interrupted
run leaves either nothing or the complete previous file behind.

A process killed outright (kill -9, a power cut) cannot remove its temporary file: the
next write of the same file removes such leftovers first, and ``.dvcignore`` keeps them out
of DVC's outputs in the meantime.

On Windows a file that another program holds open (the training log in Excel, a virus
scanner reading a new file) cannot be replaced for a while: the rename is retried for about
1.5 s, and a write that a run can do without (``write_text_or_warn``) then warns instead of
stopping the run. The temporary file never stays behind.

Left out on purpose: file locking between SML processes (each output has one writer).
"""

import contextlib
import glob
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (the only way is to set it and set it back)

# Seconds to wait before each retry of a refused rename: 1.55 s in all, then give up.
RETRY_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.8)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path``, on error it goes.

    >>> with atomic_open("/tmp/sml-doctest.txt") as f:
    ...     _ = f.write("hello")
    >>> open("/tmp/sml-doctest.txt").read()
    'hello'
    """
    path = Path(path)
    if "b" in mode:
        encoding = None
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline="" if encoding else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _put_in_place(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def replaced_together(*paths: Path) -> Iterator[list[Path]]:
    """Temporary files beside ``paths`` to write in the block; only when the whole block
    succeeds do they replace ``paths`` (in order), and on any error they go: a write that fails
    half-way (the second of two files) leaves every old file as it was."""
    temps = []
    for path in paths:
        fd, tmp = _temp_beside(path)
        os.close(fd)
        temps.append(tmp)
    try:
        yield temps
        for tmp, path in zip(temps, paths, strict=True):
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            _put_in_place(tmp, path)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


def _temp_beside(path: Path) -> tuple[int, Path]:
    """A new temporary file next to ``path`` (``.NAME.*.tmp``), after removing a killed writer's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    return fd, Path(tmp)


def _put_in_place(tmp: Path, path: Path) -> None:
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
    replace_retrying(tmp, path)


def remove_leftovers(path: Path) -> None:
    """Delete temporary files that a killed writer of ``path`` left (``.NAME.*.tmp`` beside it)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):  # another program may hold it; the next write tries again
            leftover.unlink()


def replace_retrying(src: str | Path, dst: str | Path) -> None:
    """``os.replace(src, dst)``, retried for a moment while ``dst`` is held open (Windows).

    A Windows program that opened ``dst`` without sharing delete access makes the rename fail
    with PermissionError until it lets go; antivirus scans let go within a second. Elsewhere a
    PermissionError is real and comes back after the same short wait.
    """
    for wait_s in RETRY_WAITS_S:
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            time.sleep(wait_s)
    os.replace(src, dst)  # the last try: its error goes to the caller


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines as given)."""
    with atomic_open(path) as f:
        f.write(text)


def write_text_or_warn(path: str | Path, text: str, then: str = "the run goes on") -> bool:
    """``write_text``, for a file the run can do without: on failure, one line on stderr, and False.

    ``then`` says what happens next, e.g. "the run goes on; it is rewritten at the next log
    step". The old file, if any, is left as it was.
    """
    try:
        write_text(path, text)
    except OSError as e:
        why = "is it open in another program?" if isinstance(e, PermissionError) else e.strerror or str(e)
        print(f"warning: could not replace {path} ({why}): {then}", file=sys.stderr, flush=True)
        return False
    return True


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
