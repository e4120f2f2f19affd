"""Atomic writes: the old file or the new one, never half; no temp file left behind.

The Windows case (another program holds the file open, so the rename is refused for a
while) is played here on any OS by making ``os.replace`` raise PermissionError.
"""

import os

import pytest

import sml.run.atomic as atomic
from sml.run.atomic import atomic_open, write_json, write_text, write_text_or_warn

REAL_REPLACE = os.replace


def refuse_replace(monkeypatch, times: int | None) -> list:
    """Make os.replace raise PermissionError ``times`` times (None: always); returns the calls."""
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if times is None or len(calls) <= times:
            raise PermissionError(13, "The process cannot access the file", str(dst))
        REAL_REPLACE(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.setattr(atomic, "RETRY_WAITS_S", (0.0, 0.0, 0.0))  # the test need not wait
    return calls


def leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_a_write_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "out.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert path.read_text(encoding="utf-8") == '{\n  "a": 2\n}\n'
    assert leftovers(path.parent) == []


def test_an_error_while_writing_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.txt"
    write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half of the new")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_a_briefly_refused_replace_is_retried(tmp_path, monkeypatch):
    path = tmp_path / "train_log.tsv"
    write_text(path, "old")
    calls = refuse_replace(monkeypatch, times=2)
    write_text(path, "new")
    assert len(calls) == 3 and path.read_text() == "new" and leftovers(tmp_path) == []


def test_a_replace_refused_for_good_raises_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "train_log.tsv"
    write_text(path, "old")
    calls = refuse_replace(monkeypatch, times=None)
    with pytest.raises(PermissionError), atomic_open(path) as f:
        f.write("new")
    assert len(calls) == len(atomic.RETRY_WAITS_S) + 1  # every retry, then the last try
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_a_best_effort_write_warns_in_one_line_and_goes_on(tmp_path, monkeypatch, capsys):
    path = tmp_path / "train_log.tsv"
    write_text(path, "old")
    refuse_replace(monkeypatch, times=None)
    then = "the run goes on; it is rewritten at the next log step"
    assert write_text_or_warn(path, "new", then=then) is False
    assert capsys.readouterr().err == (
        f"warning: could not replace {path} (is it open in another program?): {then}\n")
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_a_best_effort_write_that_works_says_so(tmp_path, capsys):
    path = tmp_path / "train_log.tsv"
    assert write_text_or_warn(path, "new") is True
    assert path.read_text() == "new" and capsys.readouterr().err == ""


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "model.pt"
    left = [tmp_path / ".model.pt.abc123.tmp", tmp_path / ".model.pt.zz.tmp"]
    other = tmp_path / ".other.pt.abc123.tmp"  # another file's: not ours to remove
    for path in [*left, other]:
        path.write_bytes(b"half")
    write_text(target, "whole")
    assert target.read_text() == "whole"
    assert not any(p.exists() for p in left) and other.exists()
