"""Byte-level BPE: round trips, the fast trainer against the naive one, specials, save/load."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sml.tokenizer import Tokenizer, TokenizerError
from sml.tokenizer.pretokenize import compile_pattern
from sml.tokenizer.train import count_chunks, learn_merges
from tests.conftest import MIXED, SONNET
from tests.reference_bpe import naive_train

EOT = "<|endoftext|>"
CORPORA = {
    "sonnet": SONNET,
    "mixed": MIXED,
    "repeats": "aaaaaaa aaaa aa a ababab abab bababa aaabaaab " * 5,  # overlapping pairs
    "with specials": f"{SONNET[:300]}{EOT}{SONNET[300:600]}{EOT}{EOT}{MIXED[:200]}",
}


@pytest.fixture(scope="module", params=["gpt2", "gpt4"])
def tok(request) -> Tokenizer:
    return Tokenizer.train(SONNET * 2 + MIXED, 400, request.param, [EOT])


# ---- the fast trainer makes exactly the naive trainer's merges ---------------------------


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@pytest.mark.parametrize("name", CORPORA)
def test_fast_trainer_equals_naive_trainer(name, pattern):
    text = CORPORA[name]
    tok = Tokenizer.train(text, 256 + 1 + 120, pattern, [EOT])
    chunks = [c for piece in text.split(EOT) for c in compile_pattern(pattern).findall(piece)]
    merges, _ = naive_train(chunks, 120)
    assert tok.merges == merges
    assert len(merges) > 15  # enough merges for the comparison to mean something


def test_trainer_stops_when_the_corpus_runs_out_of_pairs():
    merges = learn_merges(count_chunks(["ab ab abc"], compile_pattern("gpt2")), 1000)
    _, seqs = naive_train(["ab", " ab", " abc"], 1000)
    assert len(merges) == len(naive_train(["ab", " ab", " abc"], 1000)[0]) < 1000
    assert all(len(s) == 1 for s in seqs)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_encoding_the_training_text_gives_the_trainers_own_tokens(pattern):
    text = SONNET + MIXED
    chunks = compile_pattern(pattern).findall(text)
    merges, seqs = naive_train(chunks, 200)
    tok = Tokenizer(merges, pattern, [EOT])
    assert tok.encode(text) == [i for s in seqs for i in s]


# ---- round trips ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_any_unicode(tok, s):
    assert tok.decode(tok.encode(s, special="text")) == s


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.text(), st.just(EOT))).map("".join))
def test_round_trip_with_special_tokens_allowed(tok, s):
    ids = tok.encode(s, special="allow")
    assert tok.decode(ids) == s
    assert ids.count(tok.special_tokens[EOT]) == s.count(EOT)


@pytest.mark.parametrize(
    "s", ["", " ", "\x00\x01\x1f\x7f", "👩‍👩‍👧🎉", "東京は晴れ", "a\r\nb\n\n\tc", "\ud7ff\ue000\U0010ffff"]
)
def test_round_trip_edge_cases(tok, s):
    assert tok.decode(tok.encode(s)) == s


def test_decode_of_a_cut_character_shows_a_replacement_char(tok):
    ids = tok.encode("é", special="text")  # 2 bytes: may be one token or two
    assert tok.decode_bytes(ids) == "é".encode()
    assert tok.decode([0xC3]) == "\ufffd"


def test_decode_rejects_unknown_ids(tok):
    with pytest.raises(TokenizerError, match="out of range"):
        tok.decode([tok.vocab_size])


# ---- special tokens ---------------------------------------------------------------------


def test_special_token_policy(tok):
    text = f"one{EOT}two"
    eot = tok.special_tokens[EOT]
    assert eot == tok.vocab_size - 1
    with pytest.raises(TokenizerError, match="special token"):
        tok.encode(text)  # "raise" is the default
    assert eot in tok.encode(text, special="allow")
    as_text = tok.encode(text, special="text")
    assert eot not in as_text and tok.decode(as_text) == text
    with pytest.raises(TokenizerError, match="expected 'raise', 'allow' or 'text'"):
        tok.encode(text, special="maybe")


def test_merges_never_cross_a_special_token():
    tok = Tokenizer.train(f"ab{EOT}ab{EOT}" * 50, 256 + 1 + 20, "gpt2", [EOT])
    for a, b in tok.merges:
        assert EOT.encode() not in tok.vocab[a] + tok.vocab[b]
        assert b"b<" not in tok.vocab[a] + tok.vocab[b]


# ---- saving and loading -----------------------------------------------------------------


def test_save_and_load_encode_identically(tok, tmp_path):
    path = tok.save(tmp_path / "tok")
    loaded = Tokenizer.load(tmp_path / "tok")
    assert Tokenizer.load(path).merges == tok.merges
    text = SONNET + MIXED + EOT
    assert loaded.encode(text, special="allow") == tok.encode(text, special="allow")
    assert loaded.pattern == tok.pattern and loaded.special_tokens == tok.special_tokens
    saved = json.loads(path.read_text())
    assert saved["format"] == "sml-bpe" and saved["version"] == 1
    assert saved["pattern_name"] == tok.pattern_name


def test_vocab_listing_is_readable(tok, tmp_path):
    tok.save(tmp_path)
    lines = (tmp_path / "vocab.txt").read_text().splitlines()
    assert len(lines) == 1 + tok.vocab_size
    assert lines[1 + 10] == "    10  [\\n]"  # the newline byte, escaped
    assert lines[1 + 256].startswith("   256  [") and "<- [" in lines[1 + 256]
    assert lines[-1].endswith(f"{EOT}  (special)")


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "sml-bpe", "version": 99}', "expected 'sml-bpe'/1"),
        ("[1, 2]", "expected 'sml-bpe'/1"),
        ('{"format": "sml-bpe", "version": 1, "pattern": "gpt2"}', "malformed tokenizer file"),
        ('{"format": "sml-bpe", "version": 1, "pattern": "gpt2", "special_tokens": {},'
         ' "merges": [[1, 2, 3]]}', "malformed tokenizer file"),
    ],
)
def test_load_rejects_bad_files_with_the_file_name(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(TokenizerError, match=message) as e:
        Tokenizer.load(path)
    assert str(path) in str(e.value)
    with pytest.raises(TokenizerError, match="no such tokenizer file"):
        Tokenizer.load(tmp_path / "missing.json")


def test_train_rejects_a_vocab_smaller_than_the_bytes():
    with pytest.raises(TokenizerError, match="below 256 bytes"):
        Tokenizer.train("abc", 200)


def test_the_chunk_cache_stays_bounded_and_changes_nothing(tok, monkeypatch):
    import sml.tokenizer.tokenizer as module

    expected = tok.encode_ordinary(SONNET)
    monkeypatch.setattr(module, "CACHE_CHUNKS", 10)
    fresh = Tokenizer(tok.merges, tok.pattern)
    lines = SONNET.splitlines(keepends=True)
    longest = max(len(fresh.split_re.findall(line)) for line in lines)
    for line in lines:  # the cache starts over once it holds more than 10 chunks
        fresh.encode_ordinary(line)
        assert len(fresh._cache) <= 10 + longest
    assert fresh.encode_ordinary(SONNET) == expected
