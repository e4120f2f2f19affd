"""download: the right bytes from a mirror, the cache, a path or a URL (resumed), or one clear line."""

import hashlib
import http.server
import io
import random
import socket
import threading
from pathlib import Path

import pytest

from sml.data import download
from sml.data.download import ChecksumMismatch, DownloadError, cache_path, fetch

TEXT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20
SHA = hashlib.sha256(TEXT).hexdigest()
BIG = random.Random(0).randbytes(1_000_000)  # 1 MB: enough blocks for resuming and progress
BIG_SHA = hashlib.sha256(BIG).hexdigest()


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    monkeypatch.setattr(download, "RETRY_WAITS_S", (0, 0, 0, 0))


class Server:
    """A loopback HTTP server of ``files`` that records each request's path and Range header.

    ``ranges=False`` answers 200 with the whole file whatever the Range; ``cut`` is how many
    first requests get the headers of the whole answer but only ``cut_fraction`` of its body.
    """

    def __init__(self, files: dict[str, bytes], ranges: bool = True, cut: int = 0, cut_fraction: float = 0.5):
        self.files, self.ranges, self.cut, self.cut_fraction = files, ranges, cut, cut_fraction
        self.log: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.answer(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{name}"

    def answer(self, h: http.server.BaseHTTPRequestHandler) -> None:
        self.log.append((h.path, h.headers.get("Range")))
        body = self.files.get(h.path.lstrip("/"))
        if body is None:
            h.send_error(404)
            return
        start = 0
        if h.headers.get("Range") and self.ranges:
            start = int(h.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(body)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            h.send_response(200)
        rest = body[start:]
        h.send_header("Content-Length", str(len(rest)))
        h.end_headers()
        if len(self.log) <= self.cut:  # then the connection closes (HTTP/1.0), mid-body
            rest = rest[: int(len(rest) * self.cut_fraction)]
        h.wfile.write(rest)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def part_of(url: str, downloads: Path) -> Path:
    final = cache_path(url, downloads)
    return final.with_name(final.name + ".part")


@pytest.fixture
def mirror(tmp_path):
    d = tmp_path / "mirror"
    d.mkdir()
    (d / "other.txt").write_bytes(b"not it")
    (d / "any-name.txt").write_bytes(TEXT)
    return d


def test_mirror_file_with_the_right_checksum_is_used_under_any_name(tmp_path, mirror):
    got = fetch("https://unreachable.invalid/x.txt", SHA, tmp_path / "dl", mirror=str(mirror))
    assert got.path == mirror / "any-name.txt" and got.sha256 == SHA
    assert got.origin == f"mirror {mirror / 'any-name.txt'}"
    assert not (tmp_path / "dl").exists()  # nothing copied


def test_mirror_hashes_the_file_named_like_the_source_first(tmp_path, mirror, monkeypatch):
    hashed = []
    real = download.file_sha256
    monkeypatch.setattr(download, "file_sha256", lambda p: hashed.append(p.name) or real(p))
    fetch("https://unreachable.invalid/data/any-name.txt", SHA, tmp_path / "dl", mirror=str(mirror))
    assert hashed == ["any-name.txt"]  # other.txt, first in name order, was not read


def test_environment_variable_names_the_mirror(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("SML_DATA_MIRROR", str(mirror))
    assert fetch("https://unreachable.invalid/x.txt", SHA, tmp_path / "dl").path.read_bytes() == TEXT


def test_local_path_is_verified_and_returned_in_place(tmp_path, mirror):
    source = str(mirror / "any-name.txt")
    got = fetch(source, SHA, tmp_path / "dl", mirror="")
    assert (got.path, got.origin, got.sha256) == (mirror / "any-name.txt", source, SHA)
    assert not (tmp_path / "dl").exists()


def test_not_pinned_local_path_tells_its_sha256(tmp_path, mirror):
    got = fetch(str(mirror / "other.txt"), "", tmp_path / "dl", mirror=str(mirror))
    assert got.sha256 == hashlib.sha256(b"not it").hexdigest() and got.path == mirror / "other.txt"


def test_wrong_checksum_of_a_local_file(tmp_path, mirror):
    with pytest.raises(ChecksumMismatch) as e:
        fetch(str(mirror / "other.txt"), SHA, tmp_path / "dl", mirror=str(tmp_path / "nope"), key="data.sources[1]")
    actual = hashlib.sha256(b"not it").hexdigest()
    message = str(e.value)
    assert f"sha256 is {actual}, not {SHA}" in message and "SML_DATA_MIRROR=" in message
    assert message.endswith(f"set data.sources[1].sha256: {actual} in params.yaml")  # whole: it can be pasted
    assert "offline" not in message and "\n" not in message  # a local file needs no mirror
    assert (e.value.actual, e.value.expected) == (actual, SHA)


def test_missing_local_file_and_a_folder(tmp_path):
    with pytest.raises(DownloadError, match="nowhere.txt: no such file") as e:
        fetch(str(tmp_path / "nowhere.txt"), SHA, tmp_path / "dl", mirror="")
    assert "data.sources[0]" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DownloadError, match="is a folder, not a file") as e:
        fetch(str(tmp_path), SHA, tmp_path / "dl", mirror="")
    assert "\n" not in str(e.value)


def test_http_download_lands_in_the_cache_and_is_reused(tmp_path):
    with Server({"input.txt": TEXT}) as server:
        url = server.url("input.txt")
        got = fetch(url, SHA, tmp_path / "dl", mirror="")
        assert (got.path, got.origin, got.sha256) == (cache_path(url, tmp_path / "dl"), url, SHA)
        assert got.path.read_bytes() == TEXT
        again = fetch(url, SHA, tmp_path / "dl", mirror="")
    assert again.path == got.path and again.origin.endswith("(already there)")
    assert len(server.log) == 1 and server.log[0][1] is None  # one request, no Range
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [got.path.name]  # no .part left


def test_cached_file_of_another_pin_is_fetched_again(tmp_path):
    with Server({"input.txt": TEXT}) as server:
        url = server.url("input.txt")
        cache_path(url, tmp_path / "dl").parent.mkdir()
        cache_path(url, tmp_path / "dl").write_bytes(b"an older version")
        assert fetch(url, SHA, tmp_path / "dl", mirror="").path.read_bytes() == TEXT


def test_not_pinned_url_tells_its_sha256_and_the_second_fetch_asks_nothing(tmp_path):
    with Server({"input.txt": TEXT}) as server:
        url = server.url("input.txt")
        first = fetch(url, "", tmp_path / "dl", mirror="")
        second = fetch(url, "", tmp_path / "dl", mirror="")
    assert first.sha256 == second.sha256 == SHA and second.path.read_bytes() == TEXT
    assert second.origin.endswith("(already there, not pinned)") and len(server.log) == 1


def test_wrong_checksum_download_leaves_nothing(tmp_path):
    with Server({"other.txt": b"not it"}) as server, pytest.raises(ChecksumMismatch) as e:
        fetch(server.url("other.txt"), SHA, tmp_path / "dl", mirror="")
    actual = hashlib.sha256(b"not it").hexdigest()
    assert f"sha256 is {actual}, not {SHA}" in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).endswith(f"set data.sources[0].sha256: {actual} in params.yaml")
    assert list((tmp_path / "dl").iterdir()) == []


def test_dropped_connection_is_resumed_with_a_range_request(tmp_path):
    with Server({"big.bin": BIG}, cut=1) as server:
        got = fetch(server.url("big.bin"), BIG_SHA, tmp_path / "dl", mirror="")
    assert got.path.read_bytes() == BIG
    assert server.log == [("/big.bin", None), ("/big.bin", f"bytes={len(BIG) // 2}-")]


def test_a_killed_download_resumes_from_its_part_file(tmp_path):
    with Server({"big.bin": BIG}) as server:
        url = server.url("big.bin")
        part = part_of(url, tmp_path / "dl")
        part.parent.mkdir()
        part.write_bytes(BIG[:300_000])  # what a killed process leaves
        got = fetch(url, BIG_SHA, tmp_path / "dl", mirror="")
    assert got.path.read_bytes() == BIG and not part.exists()
    assert server.log == [("/big.bin", "bytes=300000-")]


def test_ctrl_c_keeps_the_part_and_the_next_run_resumes(tmp_path, monkeypatch):
    def interrupt(self, done, new_bytes):
        if done >= 200_000:
            raise KeyboardInterrupt

    with Server({"big.bin": BIG}) as server:
        url = server.url("big.bin")
        with monkeypatch.context() as m:
            m.setattr(download.Meter, "update", interrupt)
            with pytest.raises(KeyboardInterrupt):
                fetch(url, BIG_SHA, tmp_path / "dl", mirror="")
        kept = part_of(url, tmp_path / "dl").stat().st_size
        assert kept >= 200_000
        assert fetch(url, BIG_SHA, tmp_path / "dl", mirror="").path.read_bytes() == BIG
    assert server.log[-1] == ("/big.bin", f"bytes={kept}-")


def test_a_complete_part_file_is_only_verified(tmp_path):
    with Server({"big.bin": BIG}) as server:
        url = server.url("big.bin")
        part_of(url, tmp_path / "dl").parent.mkdir()
        part_of(url, tmp_path / "dl").write_bytes(BIG)
        assert fetch(url, BIG_SHA, tmp_path / "dl", mirror="").path.read_bytes() == BIG
    assert server.log == [("/big.bin", f"bytes={len(BIG)}-")]  # answered 416


def test_server_that_ignores_range_starts_over(tmp_path):
    with Server({"big.bin": BIG}, ranges=False) as server:
        url = server.url("big.bin")
        part_of(url, tmp_path / "dl").parent.mkdir()
        part_of(url, tmp_path / "dl").write_bytes(BIG[:300_000])
        assert fetch(url, BIG_SHA, tmp_path / "dl", mirror="").path.read_bytes() == BIG
    assert server.log == [("/big.bin", "bytes=300000-")]


def test_a_part_file_with_wrong_bytes_fails_the_checksum_and_is_deleted(tmp_path):
    with Server({"big.bin": BIG}) as server:
        url = server.url("big.bin")
        part_of(url, tmp_path / "dl").parent.mkdir()
        part_of(url, tmp_path / "dl").write_bytes(b"x" * 300_000)
        with pytest.raises(ChecksumMismatch) as e:
            fetch(url, BIG_SHA, tmp_path / "dl", mirror="")
    message = str(e.value)
    assert f"not {BIG_SHA}" in message and "resumed 300,000 bytes" in message and "run again" in message
    assert "\n" not in message
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_connection_that_keeps_dropping_gives_up_after_5_attempts(tmp_path):
    with Server({"big.bin": BIG}, cut=99, cut_fraction=0) as server, pytest.raises(DownloadError) as e:
        fetch(server.url("big.bin"), BIG_SHA, tmp_path / "dl", mirror="")
    assert len(server.log) == 5
    assert "network error" in str(e.value) and "5 attempts in a row" in str(e.value) and "\n" not in str(e.value)
    assert list((tmp_path / "dl").iterdir()) == []  # an empty .part is not kept


def test_http_404(tmp_path):
    with Server({}) as server, pytest.raises(DownloadError) as e:
        fetch(server.url("gone.txt"), SHA, tmp_path / "dl", mirror="")
    assert f"{server.url('gone.txt')}: HTTP 404 Not Found" in str(e.value) and "\n" not in str(e.value)


def test_network_failure_says_what_was_tried_and_what_to_set(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/input.txt"
    with pytest.raises(DownloadError) as e:
        fetch(url, SHA, tmp_path / "dl", mirror="")
    message = str(e.value)
    assert f"{url}: network error" in message
    assert f"offline, download {url} where there is network" in message
    assert "set SML_DATA_MIRROR to that folder" in message and "data.sources[0]" in message
    assert "\n" not in message
    assert list((tmp_path / "dl").iterdir()) == []


def test_progress_in_a_log_is_a_few_plain_lines(tmp_path):
    out = io.StringIO()
    with Server({"big.bin": BIG}) as server:
        fetch(server.url("big.bin"), BIG_SHA, tmp_path / "dl", mirror="", progress=out)
    lines = out.getvalue().splitlines()
    assert 1 <= len(lines) <= 12 and "\r" not in out.getvalue()
    assert all("MB" in line and "MB/s" in line for line in lines)
    assert "1.0 / 1.0 MB (100 %)" in lines[-1]


def test_progress_on_a_terminal_rewrites_one_line(tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    with Server({"big.bin": BIG}) as server:
        fetch(server.url("big.bin"), BIG_SHA, tmp_path / "dl", mirror="", progress=out)
    assert out.getvalue().startswith("\r") and out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1
    assert "1.0 / 1.0 MB (100 %)" in out.getvalue()
