"""encode: the character split, the token files and their counts, and bounded streaming."""

import numpy as np
import pytest

from sml.encode import encode_corpus
from sml.errors import SMLError
from sml.tokenizer import Tokenizer
from sml.tokens import load_meta, load_tokens, token_dtype

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def tok():
    from tests.conftest import MIXED, SONNET

    return Tokenizer.train(SONNET + MIXED, 420, "gpt4", [EOT])


def test_split_files_and_counts(tmp_path, tok, corpus_file):
    with open(corpus_file, encoding="utf-8", newline="") as f:
        text = f.read()
    meta = encode_corpus(corpus_file, tok, tmp_path / "tokens", val_fraction=0.1)
    split_at = int(len(text) * 0.9)  # nanoGPT's convention
    assert meta["split_at_char"] == split_at
    train, val = load_tokens(tmp_path / "tokens", "train"), load_tokens(tmp_path / "tokens", "val")
    assert train.dtype == np.uint16 and meta["dtype"] == "uint16"
    assert tok.decode(train.tolist()) == text[:split_at]
    assert tok.decode(val.tolist()) == text[split_at:]
    assert meta["train"] == {
        "tokens": len(train), "chars": split_at, "bytes": len(text[:split_at].encode()),
    }
    assert meta["val"]["chars"] == len(text) - split_at
    assert meta["val"]["bytes"] == len(text[split_at:].encode()) > meta["val"]["chars"]
    assert load_meta(tmp_path / "tokens") == meta


def test_streaming_in_small_pieces_gives_the_same_ids(tmp_path, tok, corpus_file):
    whole = encode_corpus(corpus_file, tok, tmp_path / "a", 0.25, backend="python")
    small = encode_corpus(corpus_file, tok, tmp_path / "b", 0.25, backend="python", piece_chars=50)
    fast = encode_corpus(corpus_file, tok, tmp_path / "c", 0.25, backend="tiktoken", piece_chars=50)
    assert whole == {**small} and fast["backend"] == "tiktoken"
    for split in ("train", "val"):
        a = (tmp_path / "a" / f"{split}.bin").read_bytes()
        assert a == (tmp_path / "b" / f"{split}.bin").read_bytes()
        assert a == (tmp_path / "c" / f"{split}.bin").read_bytes()


def test_special_tokens_in_the_corpus_follow_the_policy(tmp_path, tok):
    corpus = tmp_path / "c.txt"
    corpus.write_text(f"one doc{EOT}another doc{EOT}\n" * 10)
    meta = encode_corpus(corpus, tok, tmp_path / "t", 0.5, special="allow")
    ids = np.concatenate([load_tokens(tmp_path / "t", s) for s in ("train", "val")])
    assert (ids == tok.special_tokens[EOT]).sum() == 20
    assert meta["train"]["chars"] + meta["val"]["chars"] == len(corpus.read_text())
    with pytest.raises(SMLError, match=r"c\.txt: text contains the special token .*special_in_text"):
        encode_corpus(corpus, tok, tmp_path / "u", 0.5, special="raise")
    assert not (tmp_path / "u" / "train.bin").exists()


def test_wide_vocabularies_use_uint32():
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32


@pytest.mark.parametrize(
    "content, fraction, message",
    [
        (b"\xff\xfe not utf-8", 0.1, "not UTF-8"),
        (b"a", 0.1, "1 characters cannot be split with data.val_fraction=0.1"),
    ],
)
def test_bad_corpora_fail_with_the_file_name(tmp_path, tok, content, fraction, message):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(content)
    with pytest.raises(SMLError, match=message) as e:
        encode_corpus(corpus, tok, tmp_path / "t", fraction)
    assert "bad.txt" in str(e.value)


def test_meta_records_each_files_sha256(tmp_path, tok, corpus_file):
    import hashlib

    meta = encode_corpus(corpus_file, tok, tmp_path / "t", 0.1)
    for split in ("train", "val"):
        assert meta["sha256"][split] == hashlib.sha256((tmp_path / "t" / f"{split}.bin").read_bytes()).hexdigest()
        assert meta[split]["tokens"] > 2  # the train stage checks val tokens > block_size against this


@pytest.mark.parametrize(
    "fraction, message",
    [
        (0.1, "train gets 9 tokens and val 1 token: each split needs at least 2; raise data.val_fraction"),
        (0.85, "train gets 1 token and val 9 tokens: each split needs at least 2; lower data.val_fraction"),
    ],
)
def test_a_split_of_fewer_than_two_tokens_fails_at_encode(tmp_path, tok, fraction, message):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("a,b,c,d,e,", encoding="utf-8")  # 10 characters; "," never merges with a letter
    encode_corpus(corpus, tok, tmp_path / "t", 0.5)  # a good encode first: its meta.json must go
    with pytest.raises(SMLError, match=message) as e:
        encode_corpus(corpus, tok, tmp_path / "t", fraction)
    assert str(e.value).startswith(f"{corpus}: with data.val_fraction={fraction}")
    assert not (tmp_path / "t" / "meta.json").exists()  # no meta.json vouches for the new .bin files


def test_a_bad_byte_deep_in_the_corpus_is_reported_at_its_place_in_the_file(tmp_path, tok):
    line = "Shall I compare thee to a summer's day? — café\n"  # 47 characters, 50 bytes
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes((line * 400).encode() + b"ROMEO\xff:\n" + (line * 10).encode())  # past Python's 8 KB blocks
    with pytest.raises(SMLError) as e:
        encode_corpus(corpus, tok, tmp_path / "t", 0.1)
    assert str(e.value) == (f"{corpus}: not UTF-8 at byte 20,005 (line 401): 0xff (invalid start byte);"
                            " save it as UTF-8")


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 4, 7, 1 << 20])
def test_finding_the_bad_byte_does_not_depend_on_the_block_size(tmp_path, block_bytes):
    from sml.corpus import not_utf8_where

    path = tmp_path / "c.txt"
    path.write_bytes("é東👩\n".encode() * 3 + b"ab\xe6\x9dx")  # a character cut short, then more text
    assert not_utf8_where(path, block_bytes) == "not UTF-8 at byte 32 (line 4): 0xe6 0x9d (invalid continuation byte)"
    path.write_bytes("é東👩\n".encode() * 3 + b"caf\xc3")  # the file ends inside a character
    assert not_utf8_where(path, block_bytes) == "not UTF-8 at byte 33 (line 4): 0xc3 (unexpected end of data)"
    path.write_bytes("é東👩\n".encode() * 3)
    assert not_utf8_where(path, block_bytes) == ""
