"""Checking a ``tokenizer.json`` before it is used: a damaged file is one line naming what is wrong.

Left out on purpose: reading and writing it (``Tokenizer.load``, ``Tokenizer.save``).
"""

import regex

from sml.tokenizer.pretokenize import compile_pattern

FORMAT = "sml-bpe"
FORMAT_VERSION = 1


def file_problem(data: object) -> str:
    """What is wrong with the contents of a ``tokenizer.json``, or "" when nothing is.

    Merge i makes id 256 + i, so it may only join ids below that (bytes and earlier merges);
    special tokens take the ids after the merges, in order.

    >>> file_problem({"format": "sml-bpe", "version": 1, "pattern": "gpt2", "special_tokens": {},
    ...               "merges": [[97, 98], [256, 300]]})
    'merges[1] is [256, 300]: merge 1 may only join ids 0..256'
    """
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    found = (data.get("format"), data.get("version"))
    if found != (FORMAT, FORMAT_VERSION):
        return f"format/version is {found[0]!r}/{found[1]!r}, expected {FORMAT!r}/{FORMAT_VERSION}"
    for key, kind, name in (("pattern", str, "a string"), ("special_tokens", dict, "an object"),
                            ("merges", list, "a list")):
        if not isinstance(data.get(key), kind):
            return f"{key} is {_short(data.get(key))}, expected {name}"
    try:
        compile_pattern(data["pattern"])
    except regex.error as e:
        return f"pattern is not a valid regex ({e})"
    merges = data["merges"]
    seen: dict[tuple, int] = {}
    for i, pair in enumerate(merges):
        if not (isinstance(pair, list) and len(pair) == 2 and all(_is_int(x) for x in pair)):
            return f"merges[{i}] is {_short(pair)}, expected a pair of ids like [97, 98]"
        if not all(0 <= x < 256 + i for x in pair):
            return f"merges[{i}] is {pair}: merge {i} may only join ids 0..{256 + i - 1}"
        if tuple(pair) in seen:
            return f"merges[{i}] repeats merges[{seen[tuple(pair)]}] ({pair})"
        seen[tuple(pair)] = i
    specials = data["special_tokens"]
    expected = range(256 + len(merges), 256 + len(merges) + len(specials))
    if not all(isinstance(k, str) and k and _is_int(v) for k, v in specials.items()):
        return f"special_tokens is {_short(specials)}, expected {{text: id}} like {{'<|endoftext|>': 300}}"
    if sorted(specials.values()) != list(expected):
        return f"special_tokens ids are {sorted(specials.values())}, expected {list(expected)} (after the merges)"
    return ""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON's true is not an id


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
