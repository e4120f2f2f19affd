"""tiktoken, given our merges as ranks and our pattern, encodes exactly like our Tokenizer."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sml.data.tiktoken_backend import mergeable_ranks, tiktoken_encoding
from sml.tokenizer import Tokenizer, TokenizerError
from tests.conftest import MIXED, SONNET

EOT = "<|endoftext|>"
# Characters where "whitespace" differs between definitions: tiktoken's Rust regex and
# Python's regex module must agree on them for the ids to agree.
ODD_SPACES = "\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2028\u202f\u3000\u200b\ufeff"


@pytest.fixture(scope="module", params=["gpt2", "gpt4"])
def tok(request) -> Tokenizer:
    return Tokenizer.train(SONNET * 2 + MIXED, 500, request.param, [EOT])


def test_ranks_are_our_ids(tok):
    ranks = mergeable_ranks(tok)
    assert len(ranks) == len(tok.vocab)
    assert all(ranks[token] == i for i, token in enumerate(tok.vocab))


@pytest.mark.parametrize("text", [SONNET, MIXED, "", "To be, or not to be: that is the question.\n"])
def test_tiktoken_gives_our_ids(tok, text):
    assert tiktoken_encoding(tok).encode_ordinary(text) == tok.encode_ordinary(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(SONNET[:400] + "é東👩\n\t 0123456789" + ODD_SPACES))))
def test_tiktoken_gives_our_ids_on_random_text(tok, text):
    assert tok.encode(text, special="text", backend="tiktoken") == tok.encode_ordinary(text)


# Lone surrogates (either half alone, or both halves in the wrong order) and a proper pair.
SURROGATES = "\ud800\udbff\udc00\udfff\udcff\ud83d\ude00"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(SONNET[:200] + "é東👩\n\t 09" + ODD_SPACES + SURROGATES))))
def test_both_backends_replace_lone_surrogates_alike(tok, text):
    python = tok.encode(text, special="text", backend="python")
    assert tok.encode(text, special="text", backend="tiktoken") == python
    assert tiktoken_encoding(tok).encode_ordinary(text) == tok.encode_ordinary(text) == python


def test_auto_backend_keeps_the_special_policy(tok):
    text = f"{SONNET[:100]}{EOT}{SONNET[100:200]}"
    assert tok.encode(text, "allow", backend="auto") == tok.encode(text, "allow")
    assert tok.backend_name("auto") == "tiktoken"
    with pytest.raises(TokenizerError, match="special token"):
        tok.encode(text, backend="auto")


def test_duplicate_tokens_cannot_become_ranks():
    tok = Tokenizer([(97, 98), (256, 99), (98, 99), (97, 258)], "gpt2")  # "abc" twice
    with pytest.raises(TokenizerError, match="spell the same bytes"):
        mergeable_ranks(tok)
    assert tok.backend_name("auto") == "python"  # the fallback
    with pytest.raises(TokenizerError, match="cannot be used"):
        tok.encode("abc", backend="tiktoken")
