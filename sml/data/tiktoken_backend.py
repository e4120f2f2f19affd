"""Interop with OpenAI's tiktoken: export our merges as its "mergeable ranks", encode fast.

tiktoken describes a BPE tokenizer by ranks: ``{token bytes: id}``. To encode a chunk it
repeatedly merges the adjacent pair whose *concatenated bytes* has the lowest rank. Our
merges give every token its id in the order it was learned, so the ranks are just
``{vocab[id]: id}``, and the same split pattern makes tiktoken produce our ids, only from
Rust, many times faster. The tests check that on real text, and on text with lone
surrogates, which tiktoken replaces with U+FFFD just as ``Tokenizer.encode`` does.

Left out on purpose: loading OpenAI's own encodings (they are fetched over the network).
"""

from sml.tokenizer.tokenizer import Tokenizer, TokenizerError


def mergeable_ranks(tok: Tokenizer) -> dict[bytes, int]:
    """Our vocabulary as tiktoken ranks, ``{token bytes: id}``.

    Two merges that spell the same bytes cannot be expressed as ranks; that raises.
    """
    ranks = {token: i for i, token in enumerate(tok.vocab)}
    if len(ranks) != len(tok.vocab):
        seen: dict[bytes, int] = {}
        for i, token in enumerate(tok.vocab):
            if token in seen:
                raise TokenizerError(f"ids {seen[token]} and {i} spell the same bytes {token!r}")
            seen[token] = i
    return ranks


def tiktoken_encoding(tok: Tokenizer, name: str = "sml"):
    """A ``tiktoken.Encoding`` that encodes exactly like ``tok``. Needs tiktoken installed."""
    import tiktoken  # imported here: only bulk encoding needs it

    return tiktoken.Encoding(
        name=name,
        pat_str=tok.pattern,
        mergeable_ranks=mergeable_ranks(tok),
        special_tokens=dict(tok.special_tokens),
    )


def fast_encoder(tok: Tokenizer):
    """tiktoken's ``encode_ordinary`` for ``tok``, or None if tiktoken is missing or can't express it."""
    try:
        return tiktoken_encoding(tok).encode_ordinary
    except (ImportError, TokenizerError, ValueError):
        return None
