"""Reading a corpus: whole, or an evenly spread sample of whole lines (what train_bpe trains on)."""

import pytest

from sml.data.corpus import iter_lines, sample_lines
from sml.run.errors import SMLError


def sections(tmp_path, n=26, lines=400):
    """A corpus of n sections, each many lines that say which section they are in."""
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"section {chr(65 + i)} line {j} ünïcödé\n" for i in range(n) for j in range(lines)),
                    encoding="utf-8")
    return path


def test_a_corpus_within_the_budget_is_read_whole(tmp_path):
    path = sections(tmp_path)
    assert list(sample_lines(path, path.stat().st_size)) == list(iter_lines(path))


def test_a_bigger_corpus_is_sampled_evenly_in_whole_lines(tmp_path):
    path = sections(tmp_path)
    budget = path.stat().st_size // 10
    sample = list(sample_lines(path, budget, places=26))
    own = set(iter_lines(path))
    assert all(line in own for line in sample)  # whole lines of the file, none cut
    assert sum(len(line.encode()) for line in sample) <= budget
    assert {line.split()[1] for line in sample} == {chr(65 + i) for i in range(26)}  # from every section
    assert sample == list(sample_lines(path, budget, places=26))  # the same sample every time


def test_a_sampled_corpus_that_is_not_utf8_names_the_byte(tmp_path):
    path = sections(tmp_path)
    data = bytearray(path.read_bytes())
    middle = data.index(b"\n", len(data) // 2) + 1  # the first byte of a line, where the 2nd place starts
    data[middle + 3] = 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SMLError, match=f"not UTF-8 at byte {middle + 3:,}: 0xff; save it as UTF-8"):
        list(sample_lines(path, len(data) // 2, places=2))


def test_one_endless_line_is_read_in_parts_and_sampled_in_whole_words(tmp_path, monkeypatch):
    import sml.data.corpus

    monkeypatch.setattr(sml.data.corpus, "LINE_CHARS", 1000)
    path = tmp_path / "one-line.txt"
    words = [f"wörd{i}" for i in range(5000)]
    path.write_text(" ".join(words), encoding="utf-8")
    parts = list(iter_lines(path))
    assert "".join(parts) == path.read_text(encoding="utf-8") and max(map(len, parts)) == 1000
    sample = list(sample_lines(path, path.stat().st_size // 4, places=8))
    assert 8 <= len(sample) and all(part.endswith(" ") for part in sample)
    assert set(" ".join(sample).split()) <= set(words)  # whole words, none cut
    assert sum(map(len, sample)) > path.stat().st_size // 8
