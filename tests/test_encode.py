"""encode: the token files and their counts, ranges cut at safe places, parallel = serial."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

import sml.data.encode
from sml.data.encode import cut_ranges, encode_corpus
from sml.data.tokens import load_meta, load_tokens, token_dtype
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer
from tests.conftest import MIXED, SONNET

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(SONNET + MIXED, 420, "gpt4", [EOT])


def write_splits(root: Path, train: str, val: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_bytes(train.encode())
    (root / "val.txt").write_bytes(val.encode())
    return root


def test_files_and_counts(tmp_path, tok):
    train, val = SONNET * 3, MIXED
    meta = encode_corpus(write_splits(tmp_path / "c", train, val), tok, tmp_path / "tokens")
    ids = {s: load_tokens(tmp_path / "tokens", s) for s in ("train", "val")}
    assert ids["train"].dtype == np.uint16 and meta["dtype"] == "uint16"
    assert tok.decode(ids["train"].tolist()) == train and tok.decode(ids["val"].tolist()) == val
    assert meta["train"] == {"tokens": len(ids["train"]), "chars": len(train), "bytes": len(train.encode())}
    assert meta["val"]["bytes"] == len(val.encode()) > meta["val"]["chars"] == len(val)
    assert load_meta(tmp_path / "tokens") == meta
    for split in ("train", "val"):
        assert meta["sha256"][split] == hashlib.sha256((tmp_path / "tokens" / f"{split}.bin").read_bytes()).hexdigest()


# Documents joined by EOT, whitespace runs, CRLF, other scripts: every kind of border.
STORIES = "".join(f"Once upon a time, story {i} began.\r\n\n   It  ended{'!' * (i % 3)}\n{EOT}\n{MIXED[: 40 * (i % 7)]}"
                  for i in range(300))


@pytest.mark.parametrize("special", ["allow", "text"])
def test_parallel_and_serial_give_the_ids_of_one_encode_of_the_whole_text(tmp_path, tok, monkeypatch, special):
    monkeypatch.setattr(sml.data.encode, "SERIAL_BELOW", 0)  # workers even for a small file
    corpus = write_splits(tmp_path / "c", STORIES, SONNET)
    ranges = cut_ranges(corpus / "train.txt", tok, special, 2_000)
    assert len(ranges) > 20  # many cuts, each at a safe place
    expected = np.asarray(tok.encode(STORIES, special, "python"), dtype=np.uint16).tobytes()
    for workers, backend in [(1, "python"), (1, "tiktoken"), (2, "tiktoken")]:
        out = tmp_path / f"t{workers}{backend}"
        encode_corpus(corpus, tok, out, special, backend, workers=workers, range_bytes=2_000)
        assert (out / "train.bin").read_bytes() == expected, (workers, backend)


def test_documents_that_straddle_range_borders_are_encoded_whole(tmp_path, tok):
    # A 30-char document repeated: every wanted cut lands inside one.
    doc = f"The cat sat, then ran away.{EOT}"
    corpus = write_splits(tmp_path / "c", (doc + "\n") * 2_000, SONNET)
    meta = encode_corpus(corpus, tok, tmp_path / "t", range_bytes=1_000)
    ids = load_tokens(tmp_path / "t", "train")
    assert (ids == tok.special_tokens[EOT]).sum() == 2_000  # no end-of-text token was cut in two
    assert meta["train"]["chars"] == len(doc + "\n") * 2_000


def test_a_long_stretch_without_a_safe_cut_becomes_one_range(tmp_path, tok):
    # 200 KB of spaces and line breaks: whitespace is never a safe place to cut.
    text = "words, here.\n" + " \n" * 100_000 + "and the end.\n"
    path = write_splits(tmp_path / "c", text, SONNET) / "train.txt"
    ranges = cut_ranges(path, tok, "allow", 4_096)
    assert ranges[0][0] == 0 and ranges[-1][1] == path.stat().st_size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert len(ranges) <= 2  # nothing safe in the middle
    encode_corpus(path.parent, tok, tmp_path / "t", range_bytes=4_096)
    assert tok.decode(load_tokens(tmp_path / "t", "train").tolist()) == text


def test_one_endless_line_is_read_in_blocks_and_gives_the_ids_of_the_whole_text(tmp_path, tok, monkeypatch):
    """A file with no line break (a 50 MB single line) is encoded a block at a time: the
    blocks end inside words, inside multi-byte characters and inside special tokens."""
    text = STORIES.replace("\n", " ")
    monkeypatch.setattr(sml.data.encode, "BLOCK_BYTES", 333)
    blocks, read = [], sml.data.encode._text_blocks
    monkeypatch.setattr(sml.data.encode, "_text_blocks", lambda *a: (blocks.append(b) or b for b in read(*a)))
    corpus = write_splits(tmp_path / "c", text, SONNET.replace("\n", " "))
    encode_corpus(corpus, tok, tmp_path / "t")
    assert len(blocks) > 100 and max(len(b.encode()) for b in blocks) <= 333 + 3  # + a character cut by the last
    assert load_tokens(tmp_path / "t", "train").tobytes() == np.asarray(tok.encode(text, "allow"), np.uint16).tobytes()


def test_progress_counts_every_byte(tmp_path, tok, monkeypatch):
    import io

    seen = []
    monkeypatch.setattr(sml.data.encode.Meter, "add", lambda self, n: seen.append(n))
    corpus = write_splits(tmp_path / "c", STORIES, SONNET)
    encode_corpus(corpus, tok, tmp_path / "t", range_bytes=4_000, progress=io.StringIO())
    assert len(seen) > 5 and sum(seen) == len(STORIES.encode()) + len(SONNET.encode())


def test_special_tokens_in_the_corpus_follow_the_policy(tmp_path, tok):
    corpus = write_splits(tmp_path / "c", f"one doc{EOT}another doc{EOT}\n" * 10, "val")
    encode_corpus(corpus, tok, tmp_path / "t", special="allow")
    assert (load_tokens(tmp_path / "t", "train") == tok.special_tokens[EOT]).sum() == 20
    with pytest.raises(SMLError, match=r"train\.txt: text contains the special token .*special_in_text"):
        encode_corpus(corpus, tok, tmp_path / "u", special="raise")
    assert not (tmp_path / "u" / "train.bin").exists()


def test_wide_vocabularies_use_uint32():
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32


@pytest.mark.parametrize(
    "train, val, message",
    [
        ("a,b,c,d,e,", "a", "train.txt gives 10 tokens and val.txt 1 token: each split needs at least 2; raise"
                            " data.val_fraction or give data.val_sources more text"),
        ("a", "a,b,c,d,e,", "train.txt gives 1 token and val.txt 10 tokens: each split needs at least 2; lower"
                            " data.val_fraction or give data.sources more text"),
    ],
)
def test_a_split_of_fewer_than_two_tokens_fails_at_encode(tmp_path, tok, train, val, message):
    good = write_splits(tmp_path / "good", "a,b,c,d,e,", "a,b,c,d,e,")  # "," never merges with a letter
    meta = encode_corpus(good, tok, tmp_path / "t")  # a good encode first: it must stay whole
    with pytest.raises(SMLError, match=message):
        encode_corpus(write_splits(tmp_path / "bad", train, val), tok, tmp_path / "t")
    assert load_meta(tmp_path / "t") == meta  # the previous files, and the meta.json that vouches for them
    assert meta["sha256"]["train"] == hashlib.sha256((tmp_path / "t" / "train.bin").read_bytes()).hexdigest()


def test_a_missing_split_names_the_stage_to_run(tmp_path, tok):
    (tmp_path / "c").mkdir()
    with pytest.raises(SMLError, match=r"train\.txt: not found: run the download stage first"):
        encode_corpus(tmp_path / "c", tok, tmp_path / "t")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_byte_deep_in_the_corpus_is_reported_at_its_place_in_the_file(tmp_path, tok, monkeypatch, workers):
    monkeypatch.setattr(sml.data.encode, "SERIAL_BELOW", 0)
    line = "Shall I compare thee to a summer's day? — café\n"  # 47 characters, 50 bytes
    corpus = write_splits(tmp_path / "c", "", SONNET)
    (corpus / "train.txt").write_bytes((line * 400).encode() + b"ROMEO\xff:\n" + (line * 10).encode())
    with pytest.raises(SMLError) as e:
        encode_corpus(corpus, tok, tmp_path / "t", workers=workers, range_bytes=3_000)
    assert str(e.value) == (f"{corpus / 'train.txt'}: not UTF-8 at byte 20,005 (line 401): 0xff (invalid start"
                            " byte); save it as UTF-8")


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 4, 7, 1 << 20])
def test_finding_the_bad_byte_does_not_depend_on_the_block_size(tmp_path, block_bytes):
    from sml.data.corpus import not_utf8_where

    path = tmp_path / "c.txt"
    path.write_bytes("é東👩\n".encode() * 3 + b"ab\xe6\x9dx")  # a character cut short, then more text
    assert not_utf8_where(path, block_bytes) == "not UTF-8 at byte 32 (line 4): 0xe6 0x9d (invalid continuation byte)"
    path.write_bytes("é東👩\n".encode() * 3 + b"caf\xc3")  # the file ends inside a character
    assert not_utf8_where(path, block_bytes) == "not UTF-8 at byte 33 (line 4): 0xc3 (unexpected end of data)"
    path.write_bytes("é東👩\n".encode() * 3)
    assert not_utf8_where(path, block_bytes) == ""


def test_a_corpus_that_fails_half_way_leaves_the_previous_token_files_and_meta(tmp_path, tok):
    """val.txt turns out not UTF-8 after train.bin is encoded: nothing of the last encode is lost."""
    corpus = write_splits(tmp_path / "c", SONNET * 3, MIXED)
    encode_corpus(corpus, tok, tmp_path / "tokens")
    before = {name: (tmp_path / "tokens" / name).read_bytes() for name in ("train.bin", "val.bin", "meta.json")}
    (corpus / "train.txt").write_bytes((SONNET * 2).encode())
    (corpus / "val.txt").write_bytes(b"ROMEO\xff:\n")
    with pytest.raises(SMLError, match="val.txt: not UTF-8"):
        encode_corpus(corpus, tok, tmp_path / "tokens")
    assert {name: (tmp_path / "tokens" / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in (tmp_path / "tokens").iterdir()) == ["meta.json", "train.bin", "val.bin"]
