"""Byte-level BPE: round trips, the fast trainer against the naive one, specials, save/load."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sml.tokenizer import Tokenizer, TokenizerError
from sml.tokenizer.pretokenize import compile_pattern
from sml.tokenizer.tokenizer import decode, encode_chunk, replace_surrogates
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


def test_encode_chunk_and_decode_are_what_the_tokenizer_does_to_each_chunk(tok):
    chunks = tok.split_re.findall(SONNET + MIXED)
    assert tok.encode_ordinary(SONNET + MIXED) == [i for c in chunks for i in encode_chunk(c.encode(), tok.merges)]
    for chunk in chunks:
        ids = encode_chunk(chunk.encode(), tok.merges)
        assert decode(ids, tok.merges) == tok.decode_bytes(ids) == chunk.encode()
    with pytest.raises(TokenizerError, match="id out of range"):
        decode([256 + len(tok.merges)], tok.merges)


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


# Any code point, lone surrogates (category Cs) included, and often one of those.
ANY_CHAR = st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"]))


@settings(max_examples=200, deadline=None)
@given(st.text(ANY_CHAR))
def test_lone_surrogates_encode_as_the_replacement_char(tok, s):
    ids = tok.encode(s, special="text")
    assert ids == tok.encode(replace_surrogates(s), special="text")
    assert tok.decode(ids) == replace_surrogates(s)


def test_a_prompt_that_was_not_utf8_on_the_command_line(tok):
    prompt = "ROMEO\udcff:"  # what Python's argv holds for the bytes b"ROMEO\xff:"
    assert tok.decode(tok.encode(prompt)) == "ROMEO\ufffd:"
    assert tok.encode("\ud83d\ude00") == tok.encode("😀")  # a high+low pair is one character
    assert tok.encode("\ude00\ud83d") == tok.encode("\ufffd\ufffd")  # the wrong way round: two lone ones


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


def _valid() -> dict:
    """A small tokenizer's file contents: 3 merges ("ab", "abc", "de"), one special token."""
    return Tokenizer([(97, 98), (256, 99), (100, 101)], "gpt2", [EOT]).to_dict()


def _with(**changes) -> dict:
    return {k: v for k, v in {**_valid(), **changes}.items() if v is not DROP}


DROP = object()  # a key left out of the file
BAD_FILES = {  # what is in tokenizer.json -> what the one-line error says
    "not json": ("{not json", "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "a list": ([1, 2], "expected a JSON object, found list"),
    "other version": (_with(version=99), "format/version is 'sml-bpe'/99, expected 'sml-bpe'/1"),
    "other format": (_with(format="hf-bpe"), "format/version is 'hf-bpe'/1"),
    "no version": (_with(version=DROP), "format/version is 'sml-bpe'/None"),
    "no pattern": (_with(pattern=DROP), "pattern is None, expected a string"),
    "no merges": (_with(merges=DROP), "merges is None, expected a list"),
    "no special_tokens": (_with(special_tokens=DROP), "special_tokens is None, expected an object"),
    "pattern a number": (_with(pattern=5), "pattern is 5, expected a string"),
    "pattern not a regex": (_with(pattern="(unclosed"), "pattern is not a valid regex"),
    "merges an object": (_with(merges={"a": 1}), "merges is {'a': 1}, expected a list"),
    "merge of 3 ids": (_with(merges=[[97, 98, 99]]), r"merges\[0\] is \[97, 98, 99\], expected a pair"),
    "merge of strings": (_with(merges=[["97", "98"]]), r"merges\[0\] is \['97', '98'\], expected a pair"),
    "merge of floats": (_with(merges=[[97.0, 98]]), r"merges\[0\] .* expected a pair of ids"),
    "merge of bools": (_with(merges=[[True, 98]]), r"merges\[0\] .* expected a pair of ids"),
    "merge of a later id": (_with(merges=[[97, 98], [257, 99]]), r"merge 1 may only join ids 0\.\.256"),
    "merge of a negative id": (_with(merges=[[-1, 98]]), r"merge 0 may only join ids 0\.\.255"),
    "merge repeated": (_with(merges=[[97, 98], [97, 98]]), r"merges\[1\] repeats merges\[0\]"),
    "special id a string": (_with(special_tokens={EOT: "259"}), "special_tokens is .* expected {text: id}"),
    "special id not after merges": (_with(special_tokens={EOT: 300}), r"ids are \[300\], expected \[259\]"),
    "special ids missing a merge's": (_with(merges=[[97, 98]]), r"ids are \[259\], expected \[257\]"),
}


@pytest.mark.parametrize("content, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_load_rejects_bad_files_in_one_line_with_the_file_name(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(TokenizerError, match=message) as e:
        Tokenizer.load(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)
    assert "rerun the train_bpe stage" in str(e.value)


def test_load_of_a_valid_file_and_of_a_missing_or_damaged_one(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(_valid()), encoding="utf-8")
    tok = Tokenizer.load(path)
    assert tok.merges == [(97, 98), (256, 99), (100, 101)] and tok.special_tokens == {EOT: 259}
    with pytest.raises(TokenizerError, match="no such tokenizer file"):
        Tokenizer.load(tmp_path / "missing.json")
    path.write_bytes(b'{"format": "sml-bpe\xff"}')
    with pytest.raises(TokenizerError, match="not UTF-8 text"):
        Tokenizer.load(path)


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
