"""bench/make_corpus.py writes the corpus it promises; bench/corpus_prep.py's memory sampler works."""

import gzip
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))  # bench/ is scripts, not a package
import corpus_prep  # noqa: E402
import make_corpus  # noqa: E402

SIZE = 200_000


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    return path, make_corpus.make_corpus(path, SIZE, seed=0)


def test_the_size_is_within_a_few_percent_of_what_was_asked(text_corpus):
    path, stats = text_corpus
    assert SIZE <= path.stat().st_size == stats["bytes"] <= SIZE * 1.03


def test_the_same_seed_gives_the_same_bytes_and_another_seed_others(text_corpus, tmp_path):
    path, _ = text_corpus
    make_corpus.make_corpus(tmp_path / "again.txt", SIZE, seed=0)
    make_corpus.make_corpus(tmp_path / "other.txt", SIZE, seed=1)
    assert (tmp_path / "again.txt").read_bytes() == path.read_bytes()
    assert (tmp_path / "other.txt").read_bytes() != path.read_bytes()


def test_text_documents_are_separated_by_an_endoftext_line(text_corpus):
    path, stats = text_corpus
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and text[-2] in '.?!"'  # the last sentence ends its line
    docs = text.split("\n<|endoftext|>\n")
    assert len(docs) == stats["documents"] > 20
    assert "<|endoftext|>" not in "".join(docs)  # only ever on a line of its own, between documents
    capitalised = sum(doc[0].isupper() or doc[0] == '"' for doc in docs)  # not: a number, a CJK word
    assert capitalised >= 0.95 * len(docs)
    assert sum("\n\n" in doc for doc in docs) > len(docs) / 2  # paragraphs
    for mark in (", ", "? ", "'", '"'):
        assert mark in text
    assert any(ch.isdigit() for ch in text)


def test_jsonl_holds_one_document_per_line_as_json_dumps_writes_it(tmp_path):
    path = tmp_path / "corpus.jsonl"
    stats = make_corpus.make_corpus(path, SIZE, seed=0, fmt="jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == stats["documents"] > 20
    for line in lines:
        doc = json.loads(line)
        assert list(doc) == ["text"] and doc["text"]
        assert line == json.dumps({"text": doc["text"]}, ensure_ascii=False)
        assert "<|endoftext|>" not in doc["text"]


def test_gzip_output_decompresses_to_the_uncompressed_run(text_corpus, tmp_path):
    path, _ = text_corpus
    packed = tmp_path / "corpus.txt.gz"
    stats = make_corpus.make_corpus(packed, SIZE, seed=0, gzip=True)
    assert gzip.decompress(packed.read_bytes()) == path.read_bytes()
    assert stats["file_bytes"] < stats["bytes"]


def test_a_bigger_corpus_has_clearly_more_distinct_words(tmp_path):
    small = make_corpus.make_corpus(tmp_path / "small.txt", 100_000)
    big = make_corpus.make_corpus(tmp_path / "big.txt", 1_000_000)
    assert big["distinct_words"] > 2 * small["distinct_words"]  # Heaps' law, beta ~0.55: ~3.5x


def test_some_characters_are_not_ascii(text_corpus):
    path, _ = text_corpus
    text = path.read_text(encoding="utf-8")
    assert sum(not ch.isascii() for ch in text) > 50
    assert not text.isascii()


def test_the_script_refuses_a_gzip_name_without_gz(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench/make_corpus.py"), str(tmp_path / "c.txt"), "--mb", "0.01",
                           "--gzip"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and ".gz" in done.stderr
    assert not (tmp_path / "c.txt").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_process_tree_sampler_sees_a_short_child(tmp_path):
    child = [sys.executable, "-c", "import time; b = bytearray(40_000_000); time.sleep(0.3)"]
    figures = corpus_prep.measure(child, tmp_path / "log.txt", cwd=tmp_path)
    assert figures["returncode"] == 0
    assert figures["tree_rss_mb"] > 30  # the 40 MB it holds, seen while it sleeps
    assert 0.3 <= figures["seconds"] < 5


def test_plain_and_oneline_are_the_text_corpus_reshaped(text_corpus, tmp_path):
    path, stats = text_corpus
    text = path.read_text(encoding="utf-8")
    plain = tmp_path / "plain.txt"
    assert make_corpus.make_corpus(plain, SIZE, seed=0, fmt="plain")["documents"] == stats["documents"]
    plain_text = plain.read_text(encoding="utf-8")
    assert not any(c.isascii() and not (c.isalpha() or c in " \n") for c in plain_text)
    kept = (c.lower() if c.isascii() else c for c in text.replace("<|endoftext|>", ""))  # ASCII lowercased
    assert plain_text.split() == "".join(c for c in kept if not c.isascii() or c.isalpha() or c in " \n").split()
    one = tmp_path / "one.txt"
    make_corpus.make_corpus(one, SIZE, seed=0, fmt="oneline")
    assert one.read_text(encoding="utf-8") == text.replace("\n", " ")
