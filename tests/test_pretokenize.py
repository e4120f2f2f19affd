"""Pre-tokenization: the split patterns, and streaming that cuts only at chunk borders."""

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sml.tokenizer import Tokenizer
from sml.tokenizer.pretokenize import compile_pattern, special_regex, split_special, stream_pieces

EOT = "<|endoftext|>"


def test_gpt2_keeps_the_leading_space_and_splits_whitespace_runs():
    assert compile_pattern("gpt2").findall("Hello world's  end\n\nOK") == [
        "Hello", " world", "'s", " ", " end", "\n", "\n", "OK"
    ]


def test_gpt4_groups_digits_by_three_and_keeps_newlines_with_punctuation():
    assert compile_pattern("gpt4").findall("12345 Hi.\n\nYou") == [
        "123", "45", " Hi", ".\n\n", "You"
    ]


def test_split_special_keeps_order_and_whole_tokens():
    pieces = list(split_special(f"a{EOT}{EOT}b", special_regex([EOT, "<|pad|>"])))
    assert pieces == [("a", False), (EOT, True), (EOT, True), ("b", False)]


# Text made of the characters where chunk borders are subtle: whitespace runs, newlines,
# punctuation before newlines, digits, apostrophes, and special tokens.
tricky_text = st.lists(
    st.sampled_from(
        ["a", "Zé", "l", "ve", " ", "  ", "\n", "\n\n", "\r\n", ".", ",", "'s", "'l", "1234", "\t", "\x0b",
         "\x1c", "\u3000", "\x85", EOT]
    )
).map("".join)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@settings(max_examples=400, deadline=None)
@given(text=tricky_text, piece_chars=st.integers(1, 12))
def test_streaming_gives_the_ids_of_the_whole_text(pattern, text, piece_chars):
    tok = _tokenizers[pattern]
    lines = text.splitlines(keepends=True)
    pieces = list(stream_pieces(lines, tok.split_re, tok.special_re, piece_chars))
    assert "".join(pieces) == text
    streamed = [i for p in pieces for i in tok.encode(p, special="allow")]
    assert streamed == tok.encode(text, special="allow")


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@settings(max_examples=400, deadline=None)
@given(text=tricky_text, cuts=st.lists(st.integers(0, 400), max_size=30), piece_chars=st.integers(1, 12))
@example(text="ab x'll y", cuts=[6], piece_chars=3)  # a block ends after "'l": "'ll" is one chunk
@example(text=f"ab{EOT}cd", cuts=[8], piece_chars=3)  # a block ends inside the special token
@example(text="'llaZé", cuts=[], piece_chars=1)  # "'l" must not be cut from "'llaZé" by the settled end
def test_streaming_blocks_cut_anywhere_gives_the_ids_of_the_whole_text(pattern, text, cuts, piece_chars):
    """A line longer than a read block comes in blocks that end anywhere: inside a word, after
    "'l" of "'ll", inside a special token. The pieces still give the whole text's ids."""
    tok = _tokenizers[pattern]
    borders = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    blocks = [text[a:b] for a, b in itertools.pairwise(borders)]
    pieces = list(stream_pieces(blocks, tok.split_re, tok.special_re, piece_chars))
    assert "".join(pieces) == text
    assert [c for p in pieces for c in chunks(tok, p)] == chunks(tok, text)  # what the ids are made from
    assert [i for p in pieces for i in tok.encode(p, special="allow")] == tok.encode(text, special="allow")


def chunks(tok, text):
    return [c for piece, special in split_special(text, tok.special_re)
            for c in ([piece] if special else tok.split_re.findall(piece))]


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_one_endless_line_streams_in_bounded_pieces(pattern):
    """A text with no line break at all (one 50 MB line, read in blocks) is cut too."""
    tok = _tokenizers[pattern]
    words = ["the", "cat's", "sat", "on", "a", "mat,", "and", "ran", "off", "zé", EOT]
    text = " ".join(words[(i * 7) % 11] for i in range(3000))
    blocks = [text[i : i + 97] for i in range(0, len(text), 97)]
    pieces = list(stream_pieces(blocks, tok.split_re, tok.special_re, 500))
    assert "".join(pieces) == text and len(pieces) > 20
    assert max(map(len, pieces)) < 500 + 2 * 97
    assert [i for p in pieces for i in tok.encode(p, "allow")] == tok.encode(text, "allow")


_tokenizers = {
    p: Tokenizer.train("a Zé  \n\n.'s 1234\t" * 20, 300, p, [EOT]) for p in ("gpt2", "gpt4")
}


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@settings(max_examples=800, deadline=None)
@given(text=tricky_text)
def test_the_backward_search_finds_the_cut_the_forward_rule_does(pattern, text):
    from sml.tokenizer.pretokenize import _last_safe_cut_forward, last_safe_cut

    compiled, specials = compile_pattern(pattern), special_regex([EOT])
    for special_re in (specials, None):
        assert last_safe_cut(text, compiled, special_re) == _last_safe_cut_forward(text, compiled, special_re)
        for limit in range(0, len(text), 7):  # no cut after a limit (a buffer's unsettled end)
            cut = last_safe_cut(text, compiled, special_re, limit=limit)
            assert cut <= limit and cut == _last_safe_cut_forward(text, compiled, special_re, limit)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@settings(max_examples=400, deadline=None)
@given(head=tricky_text, text=tricky_text, special=st.booleans())
def test_a_cut_found_in_a_window_from_the_middle_of_a_text_is_safe_in_the_whole_text(pattern, head, text, special):
    """What encode's ranges rely on: a window read from just after a line break, with no idea
    of how the text before it was chunked, still finds only cuts that are safe in the whole."""
    from sml.tokenizer.pretokenize import last_safe_cut

    tok = _tokenizers[pattern]
    whole = head + "\n" + text
    start = len(head) + 1  # just after a line break
    window = whole[start : whole.rfind("\n") + 1] if "\n" in text else ""
    special_re = tok.special_re if special else None
    cut = last_safe_cut(window, tok.split_re, special_re, starts_at_border=False)
    if cut:
        policy = "allow" if special else "text"
        at = start + cut
        assert tok.encode(whole[:at], policy) + tok.encode(whole[at:], policy) == tok.encode(whole, policy)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_text_without_punctuation_streams_in_bounded_pieces(pattern):
    """Lowercased text of letters, spaces and line breaks has cuts on every line (before a lone
    space, after a lone line break): pieces stay near their size, and give the whole text's ids."""
    tok = _tokenizers[pattern]
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "ran", "off", "zé"]
    lines = [" ".join(words[(i * 7 + j) % 10] for j in range(11)) + "\n" for i in range(400)]
    text = "".join(lines)
    pieces = list(stream_pieces(lines, tok.split_re, tok.special_re, 500))
    assert "".join(pieces) == text and len(pieces) > 20
    assert max(map(len, pieces[:-1])) < 500 + 2 * max(map(len, lines))
    assert [i for p in pieces for i in tok.encode(p)] == tok.encode(text)
