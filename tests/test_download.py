"""download: the right bytes from a mirror, a path or a URL, or a clear error and no file."""

import functools
import hashlib
import http.server
import socket
import threading

import pytest

from sml.download import DownloadError, fetch_corpus

TEXT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20
SHA = hashlib.sha256(TEXT).hexdigest()


@pytest.fixture
def mirror(tmp_path):
    d = tmp_path / "mirror"
    d.mkdir()
    (d / "other.txt").write_bytes(b"not it")
    (d / "any-name.txt").write_bytes(TEXT)
    return d


def test_mirror_file_with_the_right_checksum_is_used(tmp_path, mirror):
    dest = tmp_path / "data" / "corpus.txt"
    origin = fetch_corpus("https://unreachable.invalid/x.txt", SHA, dest, mirror=str(mirror))
    assert dest.read_bytes() == TEXT
    assert "any-name.txt" in origin


def test_environment_variable_names_the_mirror(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("SML_DATA_MIRROR", str(mirror))
    fetch_corpus("https://unreachable.invalid/x.txt", SHA, tmp_path / "c.txt")
    assert (tmp_path / "c.txt").read_bytes() == TEXT


def test_local_path_source(tmp_path, mirror):
    dest = tmp_path / "c.txt"
    assert fetch_corpus(str(mirror / "any-name.txt"), SHA, dest, mirror="") == str(
        mirror / "any-name.txt"
    )
    assert dest.read_bytes() == TEXT
    assert "already there" in fetch_corpus("/nonexistent", SHA, dest, mirror="")


def test_http_source_on_loopback(tmp_path, mirror):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/any-name.txt"
        assert fetch_corpus(url, SHA, tmp_path / "c.txt", mirror="") == url
        assert (tmp_path / "c.txt").read_bytes() == TEXT
        with pytest.raises(DownloadError, match="sha256 is .*, not"):
            fetch_corpus(f"http://127.0.0.1:{server.server_port}/other.txt", SHA,
                         tmp_path / "d.txt", mirror="")
    finally:
        server.shutdown()
    assert not (tmp_path / "d.txt").exists()


def test_wrong_checksum_leaves_nothing_and_keeps_the_old_file(tmp_path, mirror):
    dest = tmp_path / "c.txt"
    dest.write_bytes(b"previous content")
    with pytest.raises(DownloadError) as e:
        fetch_corpus(str(mirror / "other.txt"), SHA, dest, mirror=str(mirror / "nope"))
    actual = hashlib.sha256((mirror / "other.txt").read_bytes()).hexdigest()
    assert f"sha256 is {actual}, not {SHA}" in str(e.value) and "SML_DATA_MIRROR=" in str(e.value)
    assert str(e.value).endswith(f"set data.sha256: {actual} in params.yaml")  # whole: it can be pasted
    assert "offline" not in str(e.value)  # a local file needs no mirror
    assert dest.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "mirror"]  # no temp files


def test_network_failure_says_what_was_tried_and_what_to_set(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as e:
        fetch_corpus(f"http://127.0.0.1:{port}/input.txt", SHA, tmp_path / "c.txt", mirror="")
    message = str(e.value)
    assert f"http://127.0.0.1:{port}/input.txt: network error" in message
    assert f"offline, download http://127.0.0.1:{port}/input.txt where there is network" in message
    assert "set SML_DATA_MIRROR to that folder" in message and "data.source" in message
    assert "\n" not in message
    assert not (tmp_path / "c.txt").exists()


def test_missing_local_file(tmp_path):
    with pytest.raises(DownloadError, match="nowhere.txt: no such file"):
        fetch_corpus(str(tmp_path / "nowhere.txt"), SHA, tmp_path / "c.txt", mirror="")
