"""Getting a data source: from a mirror, the downloads cache, a path or a URL, checked by sha256.

A source in ``params.yaml`` names where its bytes live and, once pinned, their sha256: the
file's identity. ``fetch`` returns a local file with exactly those bytes, or raises a one-line
``DownloadError``. It tries, in order:

1. the mirror, ``SML_DATA_MIRROR``: a folder whose files are found by their sha256, under any
   name, so offline work never touches the network;
2. the downloads cache, ``<12 hex of sha256(url)>-<name>``: a URL is fetched once;
3. a local path, hashed and returned where it is (a 2 GB file is not copied);
4. the URL, streamed into ``<cache name>.part`` while hashing. A dropped connection is picked
   up where it broke off with an HTTP ``Range`` request, and so is a download that a killed
   process left: the ``.part`` is hashed again and only the missing bytes are asked for.
   Only bytes that match the pin get the cache name.

An empty sha256 means "not pinned": any bytes do, and ``Fetched.sha256`` says what to pin.

Left out on purpose: archives (.zip, .tar: a source is one file); several connections at once
(one stream fills most links, and resuming stays simple); decompression (the caller reads
``.gz`` files itself: this module only moves bytes).
"""

import hashlib
import http.client
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TextIO

from sml.run.errors import SMLError
from sml.data.meter import Meter
from sml.data.sources import Source

MIRROR_ENV = "SML_DATA_MIRROR"
USER_AGENT = "sml-download"
TIMEOUT_S = 30  # per connection and per read: a stalled link is retried, not waited on for ever
# Seconds to wait before each retry of a dropped connection: 5 attempts in a row that gain no
# byte, then give up (the .part stays: the next run resumes it).
RETRY_WAITS_S = (0.5, 1, 2, 4)
_FILE_BLOCK = 1 << 20
_NET_BLOCK = 1 << 16  # small reads, so that progress moves on a slow link


@dataclass(frozen=True)
class Fetched:
    """A local file holding a source's verified bytes; the caller must not modify it."""

    path: Path
    origin: str  # where the bytes came from, for a message: "mirror /x/y.txt", the URL, ...
    sha256: str  # hex, computed while reading the bytes


class DownloadError(SMLError):
    """A source could not be had (with the expected checksum) from anywhere tried."""


class ChecksumMismatch(DownloadError):
    """The bytes arrived, but their sha256 is not the pinned one."""

    def __init__(self, message: str, actual: str, expected: str):
        super().__init__(message)
        self.actual, self.expected = actual, expected


def fetch(source: str, sha256: str, downloads: str | Path, mirror: str | None = None,
          progress: TextIO | None = None, key: str = "data.sources[0]") -> Fetched:
    """The bytes of ``source`` (an http(s) URL or a local path) as a local file, checked.

    ``sha256`` is 64 hex digits, or "" for "not pinned" (any bytes; ``Fetched.sha256`` tells
    what to pin). ``downloads`` is the cache folder for URLs; ``mirror`` a folder searched by
    checksum first (``SML_DATA_MIRROR`` when None, "" for none); ``progress`` a stream for a
    progress line while downloading; ``key`` the params key named in messages.
    Raises ``DownloadError`` (one line: what was tried, and the fix).
    """
    mirror = os.environ.get(MIRROR_ENV, "") if mirror is None else mirror
    is_url = source.startswith(("http://", "https://"))
    tried = _Tried(key, sha256)
    if sha256 and mirror:
        name = _url_basename(source) if is_url else Path(source).name
        found = find_in_mirror(Path(mirror), sha256, first=name)
        if found is not None:
            return Fetched(found, f"mirror {found}", sha256)
        why = "no file there with that sha256" if Path(mirror).is_dir() else "not a folder"
        tried.steps.append(f"{MIRROR_ENV}={mirror}: {why}")
    if not is_url:
        return _from_path(source, tried)
    return _from_url(source, cache_path(source, downloads), mirror, progress, tried)


def fetch_sources(sources, key: str, downloads: str | Path, params: str | Path, out: TextIO | None = None) -> list:
    """Each of ``sources`` (``data.sources``' or ``finetune.sources``' entries: url, sha256, format)
    fetched and checked (``fetch``), as ``sml.data.sources.Source``s, one line each on ``out``
    (stdout); ``key`` names the list in messages. An unpinned source prints the line that pins it
    in ``params``."""
    out = sys.stdout if out is None else out
    files = []
    for i, source in enumerate(sources):
        got = fetch(source.url, source.sha256, downloads, progress=out, key=f"{key}[{i}]")
        pinned = "sha256 verified" if source.sha256 else "NOT PINNED"
        print(f"download: {key}[{i}]: {got.path.stat().st_size:,} bytes ({pinned}) from {got.origin}", file=out)
        if not source.sha256:
            print(f"download: to pin {key}[{i}], write under its url in {params}:  sha256: {got.sha256}", file=out)
        files.append(Source(got.path, source.format, f"{key}[{i}]"))
    return files


def find_in_mirror(mirror: Path, sha256: str, first: str = "") -> Path | None:
    """The first regular file directly in ``mirror`` whose sha256 is ``sha256``, or None.

    The file named ``first`` is hashed before the others: in a mirror of several GB files,
    the likely one is found without hashing them all.
    """
    if not mirror.is_dir():
        return None
    files = sorted((p for p in mirror.iterdir() if p.is_file()), key=lambda p: (p.name != first, p.name))
    return next((p for p in files if file_sha256(p) == sha256), None)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in blocks (any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_FILE_BLOCK):
            h.update(block)
    return h.hexdigest()


def cache_path(url: str, downloads: str | Path) -> Path:
    """Where ``url`` is kept in the ``downloads`` folder: 12 hex of sha256(url), then its name.

    >>> cache_path("https://example.com/data/TinyStories-train.txt?download=true", "dl").name
    '5a02891d77a7-TinyStories-train.txt'
    """
    return Path(downloads) / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{_url_basename(url)}"


def _url_basename(url: str) -> str:
    """The last part of a URL's path, safe as a file name.

    >>> _url_basename("https://host/a/b%20c.txt?x=1"), _url_basename("https://host/")
    ('b_20c.txt', 'download')
    """
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name
    return re.sub(r"[^\w.-]", "_", name) or "download"


@dataclass
class _Tried:
    """What ``fetch`` tried so far, for the one-line error that names every step."""

    key: str
    sha256: str
    steps: list[str] = field(default_factory=list)

    def error(self, step: str, hint: str) -> DownloadError:
        return DownloadError(self._line(step, hint))

    def mismatch(self, source: str, actual: str, note: str = "") -> ChecksumMismatch:
        step = f"{source}: sha256 is {actual}, not {self.sha256}{note}"
        hint = f"; if that file is the one you want, set {self.key}.sha256: {actual} in params.yaml"
        return ChecksumMismatch(self._line(step, hint), actual, self.sha256)

    def _line(self, step: str, hint: str) -> str:
        pinned = f"with sha256 {self.sha256}" if self.sha256 else "(sha256 not pinned)"
        message = f"could not get {self.key} {pinned}: tried " + "; ".join([*self.steps, step]) + hint
        return " ".join(message.splitlines())  # a stage prints it as one line, whatever it quotes


def _from_path(source: str, tried: _Tried) -> Fetched:
    """A local file, hashed where it is and returned as it is (never copied)."""
    path = Path(source)
    if path.is_dir():
        raise tried.error(f"{source}: is a folder, not a file", f"; name one file in {tried.key} in params.yaml")
    try:
        actual = file_sha256(path)
    except OSError as e:
        why = "no such file" if isinstance(e, FileNotFoundError) else e.strerror or str(e)
        raise tried.error(f"{source}: {why}", f"; or fix {tried.key} in params.yaml") from None
    if tried.sha256 and actual != tried.sha256:
        raise tried.mismatch(source, actual)
    return Fetched(path, source, actual)


def _from_url(url: str, cache: Path, mirror: str, progress: TextIO | None, tried: _Tried) -> Fetched:
    """The cached copy of ``url`` if it is the right one, else a (resumed) download into the cache."""
    if cache.is_file():
        actual = file_sha256(cache)
        if not tried.sha256:
            return Fetched(cache, f"{cache} (already there, not pinned)", actual)
        if actual == tried.sha256:
            return Fetched(cache, f"{cache} (already there)", actual)
        cache.unlink()  # the bytes of another pin (the pin or the server's file changed): fetch again
    part_path = cache.with_name(cache.name + ".part")  # not ".NAME.*.tmp": sml/run/atomic.py deletes those
    meter = Meter(f"download {_url_basename(url)}", None, progress)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with _Part(part_path) as part:
            _download(url, part, meter)
            part.sync()
    except (OSError, http.client.HTTPException) as e:
        raise tried.error(*_explain(e, url, part_path, mirror, tried)) from e
    finally:
        meter.close()
    actual = part.sha.hexdigest()
    if tried.sha256 and actual != tried.sha256:
        part.path.unlink()  # wrong bytes are worth nothing: leave no trace in the cache
        note = (f" (it resumed {part.resumed_from:,} bytes from an earlier download: run again to fetch it whole)"
                if part.resumed_from else "")
        raise tried.mismatch(url, actual, note)
    os.replace(part.path, cache)
    return Fetched(cache, url, actual)


class _Part:
    """The ``.part`` file of a download: the bytes so far, their running sha256, appending."""

    def __init__(self, path: Path):
        self.path, self.sha, self.size = path, hashlib.sha256(), 0
        if path.exists():  # left by a dropped connection or a killed process: resume after it
            with path.open("rb") as f:
                while block := f.read(_FILE_BLOCK):
                    self.sha.update(block)
                    self.size += len(block)
        self.resumed_from = self.size
        self.received = 0  # bytes this session, restarts included: a retry that gained some starts afresh
        self.file = path.open("ab")

    def append(self, block: bytes) -> None:
        self.file.write(block)
        self.sha.update(block)
        self.size += len(block)
        self.received += len(block)

    def restart(self) -> None:
        """The server sends the whole file again: drop the bytes so far."""
        self.file.seek(0)
        self.file.truncate()
        self.sha, self.size = hashlib.sha256(), 0

    def sync(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())  # on disk before the rename, or a power cut could leave a short file

    def __enter__(self) -> "_Part":
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()  # on any error, Ctrl-C included, the bytes so far stay for the next run
        if exc[0] is not None and self.size == 0:
            self.path.unlink(missing_ok=True)


def _download(url: str, part: _Part, meter: Meter) -> None:
    """Fill ``part`` with the whole of ``url``, resuming after each dropped connection."""
    failures = 0
    while True:
        received = part.received
        try:
            _get_rest(url, part, meter)
            return
        except (OSError, http.client.HTTPException) as e:
            if not _is_dropped(e):
                raise
            failures = 1 if part.received > received else failures + 1
            if failures > len(RETRY_WAITS_S):
                raise
            time.sleep(RETRY_WAITS_S[failures - 1])


def _get_rest(url: str, part: _Part, meter: Meter) -> None:
    """One HTTP request for the bytes that ``part`` lacks; raises if the connection drops."""
    headers = {"User-Agent": USER_AGENT}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and part.size:
            return  # nothing after byte N: the part already holds the whole file (the sha256 will tell)
        raise
    with response:
        length = response.headers.get("Content-Length")
        if response.status == 206:
            match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match[1]) != part.size:
                raise http.client.HTTPException(f"asked for bytes {part.size}-, got {match and match[0]!r}")
            total = int(match[2]) if match[2] != "*" else None
        else:
            part.restart()  # 200: the server ignores Range and sends the whole file
            total = int(length) if length else None
        while block := response.read(_NET_BLOCK):
            part.append(block)
            meter.total = total
            meter.update(part.size, len(block))
        if total is not None and part.size < total:  # urllib ends a short body quietly: say it broke
            raise http.client.IncompleteRead(b"", total - part.size)


def _is_dropped(e: BaseException) -> bool:
    """Whether ``e`` is a connection that broke off (worth resuming), not a refusal."""
    if isinstance(e, urllib.error.HTTPError):
        return e.code >= 500  # the server's trouble, often a passing one (a CDN's 502, 503)
    if isinstance(e, urllib.error.URLError):
        e = e.reason if isinstance(e.reason, BaseException) else e
    return isinstance(e, (http.client.IncompleteRead, ConnectionResetError, ConnectionAbortedError,
                          BrokenPipeError, TimeoutError, ssl.SSLError))


def _explain(e: BaseException, url: str, part: Path, mirror: str, tried: _Tried) -> tuple[str, str]:
    """The step that failed and the hint for the fix, for ``_Tried.error``."""
    if isinstance(e, urllib.error.HTTPError):
        return f"{url}: HTTP {e.code} {e.reason}", f"; check the URL, or fix {tried.key} in params.yaml"
    if not isinstance(e, (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError,
                          http.client.HTTPException)):  # then the disk: full, or not writable
        return f"{e.filename or part}: {e.strerror or e}", "; make room there, or fix its permissions"
    step = f"{url}: network error ({e.reason if isinstance(e, urllib.error.URLError) else e})"
    if _is_dropped(e):
        step += f", {len(RETRY_WAITS_S) + 1} attempts in a row without progress"
    if part.exists():
        step += f"; {part} keeps {part.stat().st_size:,} bytes: run again to resume"
    if not tried.sha256:
        return step, (f"; offline, download {url} where there is network and give its local path in"
                      f" {tried.key} (or pin {tried.key}.sha256 and set {MIRROR_ENV} to a folder holding it)")
    if mirror:
        return step, f"; or put a copy of {url} in {mirror} (any file name: it is found by its sha256)"
    return step, (f"; offline, download {url} where there is network, put the file in a folder and set"
                  f" {MIRROR_ENV} to that folder (any file name: it is found by its sha256);"
                  f" or fix {tried.key} in params.yaml")
