"""SML's BPE tokenizer as a Hugging Face ``tokenizer.json``, and a Hugging Face byte-level BPE as SML's.

Both are the same algorithm: split the text with a regex, turn each piece into bytes, then
merge adjacent pairs, the earliest-learned first. What differs is the spelling:

- Hugging Face keeps tokens as *strings*, so byte-level BPE (GPT-2's) gives each of the 256
  bytes a printable character (``bytes_to_unicode``: a space is "Ġ", a newline "Ċ"), and
  a token is the string of its bytes' characters. SML keeps tokens as bytes.
- Hugging Face names a merge by its two tokens' strings and may number the tokens in any
  order; SML's ids are fixed by the merges (bytes 0..255, merge i makes 256 + i, then the
  special tokens). An SML tokenizer exports with its own ids; importing a Hugging Face one
  renumbers its tokens, and ``from_tokenizer_json`` returns which Hugging Face id each SML
  id was, so the model's embedding rows can be put in the same order.

Export writes the split regex as a ``Split`` pre-tokenizer followed by ``ByteLevel`` without
its own regex; GPT-2's files say the same with ``ByteLevel(use_regex=True)``, whose regex is
SML's ``gpt2`` pattern. Either imports. A tokenizer of another kind (WordPiece, a
SentencePiece model, byte fallback, a normalizer) has no SML equivalent: refused in one line.

Left out on purpose: the older way of writing GPT-2's tokenizer (vocab.json + merges.txt);
the hub's GPT-2 has a tokenizer.json too.
"""

import functools
from pathlib import Path

from sml.data.tiktoken_backend import mergeable_ranks
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer
from sml.tokenizer.pretokenize import PATTERNS


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable character for each byte: printable Latin-1 bytes stand for themselves,
    the other 68 (controls, space, ...) get the characters from U+0100 on, in byte order.

    >>> bytes_to_unicode()[ord("a")], bytes_to_unicode()[ord(" ")], bytes_to_unicode()[ord("\\n")]
    ('a', 'Ġ', 'Ċ')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in chars:
            chars[b], extra = chr(256 + extra), extra + 1
    return dict(sorted(chars.items()))


def spell(token: bytes) -> str:
    """A token's bytes as Hugging Face's byte-level string."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def to_tokenizer_json(tok: Tokenizer) -> dict:
    """``tokenizer.json`` for Hugging Face ``tokenizers``: the same ids as ``tok`` for any text."""
    mergeable_ranks(tok)  # two merges that spell the same bytes are one token to Hugging Face: refused
    vocab = {spell(token): i for i, token in enumerate(tok.vocab)}
    merges = [[spell(tok.vocab[a]), spell(tok.vocab[b])] for a, b in tok.merges]
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s, i in tok.special_tokens.items()]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        ]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }


def tokenizer_config(eos: str | None, context: int) -> dict:
    """``tokenizer_config.json``: what makes ``AutoTokenizer`` a ``PreTrainedTokenizerFast`` of
    tokenizer.json, with the model's context (``block_size``) as its longest input."""
    return {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": context,
            "clean_up_tokenization_spaces": False, "add_prefix_space": False,
            **({"bos_token": eos, "eos_token": eos} if eos else {})}


def from_tokenizer_json(data: dict, path: Path | str = "tokenizer.json") -> tuple[Tokenizer, list[int]]:
    """A Hugging Face byte-level BPE ``tokenizer.json`` (parsed) -> (SML Tokenizer, Hugging Face id of each SML id)."""
    model = data.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or data.get("normalizer"):
        raise SMLError(f"{path}: not a byte-level BPE tokenizer (model {model.get('type')!r},"
                       f" normalizer {(data.get('normalizer') or {}).get('type')!r}): SML's BPE cannot stand in for it")
    pattern = _pattern(data.get("pre_tokenizer") or {}, path)
    specials = sorted(data.get("added_tokens") or [], key=lambda t: t["id"])
    plain = [t["content"] for t in specials if not t.get("special")]
    if plain:
        raise SMLError(f"{path}: added token {plain[0]!r} is not a special token: SML's BPE has no place for it")
    special_ids = {t["id"] for t in specials}
    by_char = {c: b for b, c in bytes_to_unicode().items()}
    try:  # GPT-2 lists <|endoftext|> in the vocabulary too: the specials are left out of it
        hf_id = {bytes(by_char[c] for c in s): i for s, i in model["vocab"].items() if i not in special_ids}
    except KeyError as e:
        raise SMLError(f"{path}: a token has the character {e}, which is not in GPT-2's byte alphabet") from None
    sml_id = {bytes([b]): b for b in range(256)}  # a token's bytes -> its SML id
    merges = []
    for n, merge in enumerate(model.get("merges") or []):
        a, b = (bytes(by_char.get(c, 0) for c in s) for s in (merge.split(" ") if isinstance(merge, str) else merge))
        if a not in sml_id or b not in sml_id or a + b in sml_id:
            raise SMLError(f"{path}: merge {n} ({merge!r}) does not build a new token from earlier ones")
        merges.append((sml_id[a], sml_id[b]))
        sml_id[a + b] = 256 + n
    if hf_id.keys() != sml_id.keys():
        raise SMLError(f"{path}: the vocabulary is not the 256 bytes plus one token per merge"
                       f" ({len(hf_id)} tokens, {len(merges)} merges)")
    tok = Tokenizer(merges, pattern, [t["content"] for t in specials])
    hf_of = [0] * tok.vocab_size
    for token, i in hf_id.items():
        hf_of[sml_id[token]] = i
    for t in specials:
        hf_of[tok.special_tokens[t["content"]]] = t["id"]
    return tok, hf_of


def _pattern(pre: dict, path: Path | str) -> str:
    """The split regex of a byte-level pre-tokenizer: GPT-2's ByteLevel, or Split + ByteLevel."""
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True) and not steps[0].get("add_prefix_space"):
        return PATTERNS["gpt2"]
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True) \
            and not steps[1].get("add_prefix_space") and steps[0].get("behavior") == "Isolated" \
            and not steps[0].get("invert") and "Regex" in steps[0].get("pattern", {}):
        return steps[0]["pattern"]["Regex"]
    raise SMLError(f"{path}: pre_tokenizer {kinds} (with its options) is not a byte-level split that SML"
                   " knows: expected ByteLevel (GPT-2) or Split(regex, Isolated) + ByteLevel(use_regex=false)")
