"""sources: documents from text and JSON lines (gzip too), joined, split into train and val."""

import gzip
import json
from pathlib import Path

import pytest

import sml.data.sources
from sml.data.sources import Source, build_corpus
from sml.run.errors import SMLError
from tests.conftest import MIXED, SONNET

EOT = "<|endoftext|>"


def text_source(path: Path, text: str, key: str = "data.sources[0]") -> Source:
    path.write_bytes(text.encode())
    return Source(path, "text", key)


def jsonl_source(path: Path, docs: list, compress: bool = False, field: str = "text") -> Source:
    lines = "".join(json.dumps({field: d, "id": i}, ensure_ascii=False) + "\n" for i, d in enumerate(docs))
    path.write_bytes(gzip.compress(lines.encode()) if compress else lines.encode())
    return Source(path, "jsonl", "data.sources[1]")


def read(out: Path, split: str) -> str:
    return (out / f"{split}.txt").read_bytes().decode()


def test_several_files_of_each_kind_are_joined_with_the_separator(tmp_path):
    docs = ["A story.\n", "Ünïcödé, 東京 and 👩‍👩‍👧", "line one\r\nline two\n"]
    sources = [text_source(tmp_path / "a.txt", SONNET), jsonl_source(tmp_path / "b.jsonl", docs),
               jsonl_source(tmp_path / "c.jsonl.gz", docs[:2], compress=True),
               text_source(tmp_path / "d.txt.gz", "")]
    (tmp_path / "d.txt.gz").write_bytes(gzip.compress(MIXED.encode()))
    val = [text_source(tmp_path / "v.txt", "the val text\n", "data.val_sources[0]")]
    written = build_corpus(sources, val, tmp_path / "out", val_fraction=0.5)
    assert read(tmp_path / "out", "train") == EOT.join([SONNET, *docs, *docs[:2], MIXED])
    assert read(tmp_path / "out", "val") == "the val text\n"  # a val source: val_fraction is not used
    assert written["train"].documents == 7 and written["val"].documents == 1
    assert written["train"].bytes == (tmp_path / "out" / "train.txt").stat().st_size


def test_no_separator_and_other_text_field(tmp_path):
    source = jsonl_source(tmp_path / "b.jsonl", ["one", "two", "three"], field="story")
    build_corpus([source], [text_source(tmp_path / "v.txt", "val")], tmp_path / "out", 0.1, "story", separator="")
    assert read(tmp_path / "out", "train") == "onetwothree"


@pytest.mark.parametrize("block_bytes", [1, 3, 7, 1 << 20])
def test_val_fraction_splits_the_joined_text_on_a_character(tmp_path, monkeypatch, block_bytes):
    monkeypatch.setattr(sml.data.sources, "BLOCK_BYTES", block_bytes)  # borders inside multi-byte characters
    text = MIXED + SONNET
    written = build_corpus([text_source(tmp_path / "a.txt", text)], [], tmp_path / "out", val_fraction=0.1)
    split_at = int(len(text) * 0.9)  # nanoGPT's convention, by characters
    assert read(tmp_path / "out", "train") == text[:split_at] and read(tmp_path / "out", "val") == text[split_at:]
    assert (written["train"].chars, written["val"].chars) == (split_at, len(text) - split_at)
    assert written["val"].bytes == len(text[split_at:].encode())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: text_source(p / "bad.txt", "") and (p / "bad.txt").write_bytes(b"ok\n" * 500 + b"\xff\n"),
         r"bad\.txt \(data\.sources\[0\]\): not UTF-8 at byte 1,500 \(line 501\): 0xff \(invalid start byte\):"
         r" save it as UTF-8"),
        (lambda p: (p / "bad.txt.gz").write_bytes(gzip.compress(b"ok\n" * 500 + b"\xff\n")),
         r"bad\.txt\.gz \(data\.sources\[0\]\): not UTF-8 at byte 1,500 of the decompressed text \(0xff\)"),
        (lambda p: (p / "bad.jsonl").write_bytes(b'{"text": "fine"}\n\n{"text": broken\n'),
         r"bad\.jsonl \(data\.sources\[0\]\) line 3: not a JSON object"),
        (lambda p: (p / "bad.jsonl").write_bytes(b'{"text": "fine"}\n{"body": "x", "id": 2}\n'),
         r"line 2: no text under 'text' \(found 'body', 'id'\): set data\.text_field"),
        (lambda p: (p / "bad.jsonl").write_bytes(b'["a list"]\n'), r"line 1: no text under 'text' \(found list\)"),
        (lambda p: (p / "bad.jsonl").write_bytes(b'{"text": 123}\n'),
         r"line 1: 'text' holds int 123, not text: each line's 'text' must be a string"),
        (lambda p: (p / "bad.jsonl").write_bytes(b'{"text": "a"}\n{"text": null}\n'),
         r"line 2: 'text' holds null, not text"),
        (lambda p: (p / "bad.txt.gz").write_bytes(b"\x1f\x8bnot really gzip"), r"bad\.txt\.gz .*cannot be read"),
        (lambda p: (p / "bad.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a"}\n' * 1000)[:-30]),
         r"bad\.jsonl\.gz \(data\.sources\[0\]\): cannot be read: Compressed file ended"),
    ],
)
def test_bad_sources_fail_in_one_line_naming_the_file_and_place(tmp_path, make, message):
    make(tmp_path)
    path = next(tmp_path.glob("bad*"))
    fmt = "jsonl" if ".jsonl" in path.name else "text"
    with pytest.raises(SMLError, match=message) as e:
        build_corpus([Source(path, fmt, "data.sources[0]")], [], tmp_path / "out", 0.1)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing written


def test_a_jsonl_lone_surrogate_becomes_the_replacement_character(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "bad \\ud800 half"}\n', encoding="utf-8")
    build_corpus([Source(tmp_path / "a.jsonl", "jsonl", "data.sources[0]")],
                 [text_source(tmp_path / "v.txt", "v")], tmp_path / "out", 0.1)
    assert read(tmp_path / "out", "train") == "bad \ufffd half"


@pytest.mark.parametrize(
    "train, val, fraction, message",
    [
        ("", "val", 0.1, r"train\.txt: its sources hold no text: check data\.sources"),
        ("abc", "", 0.1, r"val\.txt: its sources hold no text: check data\.val_sources"),
        ("a", None, 0.1, r"1 characters cannot be split with data\.val_fraction=0\.1"),
    ],
)
def test_an_empty_split_is_refused_and_nothing_is_replaced(tmp_path, train, val, fraction, message):
    out = tmp_path / "out"
    build_corpus([text_source(tmp_path / "ok.txt", SONNET)], [], out, 0.1)
    before = read(out, "train"), read(out, "val")
    vals = [] if val is None else [text_source(tmp_path / "v.txt", val, "data.val_sources[0]")]
    with pytest.raises(SMLError, match=message):
        build_corpus([text_source(tmp_path / "t.txt", train)], vals, out, fraction)
    assert (read(out, "train"), read(out, "val")) == before
    assert sorted(p.name for p in out.iterdir()) == ["train.txt", "val.txt"]  # no temp files left


def test_a_file_given_twice_as_a_source_is_refused_in_one_line():
    from sml.config import parse_params
    from tests.conftest import params_template

    raw = params_template()
    raw["data"]["val_sources"] = [dict(raw["data"]["sources"][0])]  # val's file also in train: its text twice
    with pytest.raises(SMLError, match=r"^data\.val_sources\[0\] = .*: must be another file than data\.sources\[0\]"):
        parse_params(raw)


def test_an_empty_json_document_is_a_document_and_adds_one_separator(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "first"}\n{"text": ""}\n{"text": "second"}\n', encoding="utf-8")
    written = build_corpus([Source(path, "jsonl", "data.sources[0]")], [Source(path, "jsonl", "data.val_sources[0]")],
                           tmp_path / "out", 0.1, separator="|")
    assert (tmp_path / "out" / "train.txt").read_text(encoding="utf-8") == "first||second"
    assert written["train"].documents == 3
