"""Getting the corpus: from a local mirror, a URL or a path, always checked by its sha256.

The sha256 in ``params.yaml`` is the corpus's identity: whatever the source, the file that
lands in ``data/`` has exactly those bytes, or nothing lands at all. That makes offline work
simple: point ``SML_DATA_MIRROR`` at a directory holding a file with the right checksum
(any name) and the network is never touched.

Left out on purpose: resuming half-finished downloads (corpora here are small; a failed
download is dropped and retried whole), and archives (the corpus is one text file).
"""

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from sml.atomic import atomic_open
from sml.errors import SMLError

MIRROR_ENV = "SML_DATA_MIRROR"
_BLOCK = 1 << 20


class DownloadError(SMLError):
    """The corpus could not be had with the expected checksum from any source tried."""


def fetch_corpus(source: str, sha256: str, dest: str | Path, mirror: str | None = None) -> str:
    """Put the file with checksum ``sha256`` at ``dest``; return where it came from.

    Tried in order: ``dest`` itself if it already matches; each file in the ``mirror``
    directory (``SML_DATA_MIRROR`` when not given); then ``source``, an http(s) URL or a
    local path. Raises ``DownloadError`` listing every attempt if none gives the right bytes.
    """
    dest = Path(dest)
    mirror = os.environ.get(MIRROR_ENV) if mirror is None else mirror
    if dest.is_file() and file_sha256(dest) == sha256:
        return f"{dest} (already there)"
    tried: list[str] = []
    if mirror:
        found = find_in_mirror(Path(mirror), sha256)
        if found is not None:
            _copy_verified(lambda: found.open("rb"), sha256, dest)
            return f"mirror {found}"
        tried.append(f"{MIRROR_ENV}={mirror}: no file there with that sha256")
    is_url = source.startswith(("http://", "https://"))
    hint = "; or fix data.source / data.sha256 in params.yaml"
    try:
        if is_url:
            _copy_verified(lambda: urllib.request.urlopen(source, timeout=30), sha256, dest)
        else:
            _copy_verified(lambda: Path(source).open("rb"), sha256, dest)
        return source
    except ChecksumMismatch as e:
        tried.append(f"{source}: sha256 is {e.actual}, not {sha256}")
        hint = f"; if that file is the corpus you want, set data.sha256: {e.actual} in params.yaml"
    except (OSError, urllib.error.URLError, DownloadError) as e:
        tried.append(f"{source}: {_reason(e)}")
        if is_url and not mirror:
            hint = (f"; offline, download {source} where there is network, put the file in a folder"
                    f" and set {MIRROR_ENV} to that folder (any file name: it is found by its sha256)" + hint)
    raise DownloadError(f"could not get the corpus with sha256 {sha256}: tried " + "; ".join(tried) + hint)


def find_in_mirror(mirror: Path, sha256: str) -> Path | None:
    """The first regular file directly in ``mirror`` whose sha256 is ``sha256``, or None."""
    if not mirror.is_dir():
        return None
    for path in sorted(mirror.iterdir()):
        if path.is_file() and file_sha256(path) == sha256:
            return path
    return None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in blocks (any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def _copy_verified(open_source, sha256: str, dest: Path) -> None:
    """Stream the source into a temp file while hashing; rename it to ``dest`` only if it matches."""
    h = hashlib.sha256()
    with open_source() as src, atomic_open(dest, "wb") as out:
        while block := src.read(_BLOCK):
            h.update(block)
            out.write(block)
        if h.hexdigest() != sha256:  # raising inside atomic_open discards the temp file
            raise ChecksumMismatch(h.hexdigest())


class ChecksumMismatch(DownloadError):
    """The bytes arrived, but their sha256 is not the expected one."""

    def __init__(self, actual: str):
        super().__init__(f"sha256 is {actual}")
        self.actual = actual


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        return f"network error ({e.reason})"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    return str(e)
