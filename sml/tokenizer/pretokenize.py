"""Pre-tokenization: cut text into chunks before BPE ever sees it.

BPE merges never cross a chunk boundary, so the split pattern decides what a token *can* be:
with the GPT-2 pattern " the" is one chunk (a word keeps its leading space), digits and
punctuation never glue onto letters, and runs of whitespace stay apart from words.

This module covers
- the two split patterns SML offers (GPT-2's and GPT-4's, both from OpenAI's tiktoken),
- cutting text around special tokens such as ``<|endoftext|>``,
- streaming: cutting an endless text into pieces whose borders are chunk borders, so encoding
  piece by piece gives exactly the ids that encoding the whole text would.

Left out on purpose: Unicode normalization (bytes in, bytes out: the tokenizer is lossless).
"""

import itertools
from collections.abc import Iterable, Iterator

import regex

# GPT-2 (2019): contractions, optional-space + letters, optional-space + digits,
# optional-space + other symbols, then whitespace (a trailing space run leaves its last
# space to start the next word).
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

# GPT-4 (cl100k): case-insensitive contractions, at most 3 digits per chunk, newlines kept
# with the punctuation before them, and a word may take one leading non-letter (e.g. "_x").
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)

PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}


def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile a split pattern: a name from ``PATTERNS`` or a regex string."""
    return regex.compile(PATTERNS.get(pattern, pattern))


def split_special(text: str, special_re: regex.Pattern | None) -> Iterator[tuple[str, bool]]:
    """Yield ``(piece, is_special)`` in order; special-token strings come out whole.

    >>> list(split_special("a<|endoftext|>b", regex.compile(r"<\\|endoftext\\|>")))
    [('a', False), ('<|endoftext|>', True), ('b', False)]
    """
    if special_re is None:
        if text:
            yield text, False
        return
    start = 0
    for m in special_re.finditer(text):
        if m.start() > start:
            yield text[start : m.start()], False
        yield m.group(), True
        start = m.end()
    if start < len(text):
        yield text[start:], False


def special_regex(specials: Iterable[str]) -> regex.Pattern | None:
    """A regex that finds any of ``specials`` (longest first, so one never hides another)."""
    specials = sorted(specials, key=len, reverse=True)
    if not specials:
        return None
    return regex.compile("|".join(regex.escape(s) for s in specials))


def stream_pieces(
    lines: Iterable[str],
    pattern: regex.Pattern,
    special_re: regex.Pattern | None = None,
    min_piece_chars: int = 1 << 20,
) -> Iterator[str]:
    """Regroup a stream of text into pieces of about ``min_piece_chars`` cut at safe places.

    Encoding the pieces one by one gives exactly the ids of encoding the whole text, because
    a piece ends only where no chunk before the cut can have looked past it:
    - right before a special token (they are split off before the pattern runs), or
    - at a chunk border with non-whitespace on both sides, like "word|," or "I|'ll", or
    - before a lone space that precedes a word ("to| be"), after a lone line break ("\\n|or").
    Elsewhere whitespace is not a safe place: ``\\s+(?!\\S)`` decides how to split a run of
    spaces by looking at what follows the whole run, so a cut inside or after one changes chunks.

    Lines are gathered until the buffer is big enough, then cut at its last safe place; the
    rest goes back to the front of the buffer. A "line" may also be a block of a longer line
    (a file of one 50 MB line comes in blocks): then the buffer's last few characters, and a
    special token it may end inside, are not cut near (``_settled``). Text with no safe place
    at all (one endless run of whitespace) stays in the buffer until the end.

    >>> list(stream_pieces(["to be,\\n", "or not, to be\\n"], compile_pattern("gpt2"), None, 3))
    ['to be', ',\\nor not, to', ' be\\n']
    """
    buffer: list[str] = []
    size = 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size < min_piece_chars:
            continue
        text = "".join(buffer)
        cut = last_safe_cut(text, pattern, special_re, limit=_settled(text, pattern, special_re))
        if cut > 0:
            yield text[:cut]
            text = text[cut:]
        buffer, size = [text], len(text)
    tail = "".join(buffer)
    if tail:
        yield tail


LOOKAHEAD_CHARS = 4  # how far SML's patterns look past a chunk border: "'ll" is one chunk, "'l" two


def _settled(text: str, pattern: regex.Pattern, special_re: regex.Pattern | None) -> int:
    """Up to where a buffer may be cut without knowing what follows: anywhere at a line's end
    (no chunk or special token holds a line break); inside a line, not in the last
    ``LOOKAHEAD_CHARS``, nor near a special token that may still be coming ("<|endof");
    nowhere with a custom pattern, of which nothing is known."""
    if text.endswith("\n"):
        return len(text)
    if pattern.pattern not in PATTERNS.values():
        return 0
    coming = [m.start() for m in special_re.finditer(text, partial=True) if m.partial] if special_re else []
    return max(min(len(text), *coming) - LOOKAHEAD_CHARS, 0)


_WHITESPACE = regex.compile(r"\s")  # the same \s as in the split patterns


# In both split patterns a letter and a following symbol (not a letter, digit or space) are
# never in one chunk: letter runs and contractions end at a letter, symbol runs hold no
# letter. So the place between them is a chunk border however the text before it was cut;
# and a safe one (no whitespace on either side). ``(?r)`` makes the regex search backwards.
_SURE_BORDER = regex.compile(r"(?r)\p{L}(?=[^\s\p{L}\p{N}])")
# Two more places where SML's patterns always start a chunk: before a lone space between
# non-whitespace and a letter or digit (no chunk ends in a space or takes one before it), and
# after a lone line break between two non-whitespace characters (nothing joins it to what
# follows). Text without punctuation has them on every line: its pieces stay bounded.
_SPACE_BORDER = regex.compile(r"(?r)\S(?= [\p{L}\p{N}])")
_LINE_BORDER = regex.compile(r"(?r)\S\n(?=\S)")
_SPACE_AT, _LINE_AT = regex.compile(r"\S [\p{L}\p{N}]"), regex.compile(r"\S\n\S")  # the same, forwards


def _safe_start(text: str, start: int, sure: bool) -> bool:
    """Whether a chunk starting at ``start`` is a place to cut ``text``: non-whitespace on both
    sides, or (``sure``: SML's own patterns) one of the two places above."""
    if start <= 0:
        return False
    if not (_WHITESPACE.match(text, start - 1) or _WHITESPACE.match(text, start)):
        return True
    return sure and (_SPACE_AT.match(text, start - 1) is not None
                     or (start >= 2 and _LINE_AT.match(text, start - 2) is not None))


def last_safe_cut(text: str, pattern: regex.Pattern, special_re: regex.Pattern | None,
                   starts_at_border: bool = True, limit: int | None = None) -> int:
    """The last index (at most ``limit``) where ``text`` may be cut without changing its chunks (0 if none).

    The search goes backwards, and reads only the end of the text: the last piece between
    special tokens first; in it, the last sure border (``_SURE_BORDER``, found by a backward
    regex search) is a place where chunking can restart exactly as it was, so only the
    chunks after it are made (by ``findall``: the regex engine's loop, in C), and their
    borders tried from the end. ``_last_safe_cut_forward`` is the same rule written
    forwards, one chunk at a time over the whole text (tests check that both agree).

    ``starts_at_border=False`` is for a window read from the middle of a text (just after a
    line break): its first chunk may be the tail of a longer one, so in the window's first
    piece only what follows a sure border counts. A later piece starts after a special
    token, which is a border either way (special tokens hold no line break).
    """
    limit = len(text) if limit is None else limit
    pieces = list(split_special(text, special_re))
    ends = list(itertools.accumulate(len(piece) for piece, _ in pieces))
    sure = pattern.pattern in PATTERNS.values()  # the border rule holds for SML's own patterns only
    if not (sure or starts_at_border):
        return 0  # a custom pattern: nothing is known about where its chunks start
    for (piece, is_special), end in zip(reversed(pieces), reversed(ends), strict=True):
        offset = end - len(piece)
        if offset > limit:
            continue
        if is_special:
            return offset  # right before a special token
        room = limit - offset + 1  # the borders searched for lie at most at the limit
        borders = [b.end() for b in (_SURE_BORDER.search(piece, 0, room), _SPACE_BORDER.search(piece, 0, room),
                                     _LINE_BORDER.search(piece, 0, room)) if b is not None] if sure else []
        restart = max(borders, default=0)  # the last place chunking is known to start at
        if restart == 0 and offset == 0 and not starts_at_border:
            return 0  # the window's first piece, with nowhere known to restart chunking
        chunks = pattern.findall(piece, restart)
        starts = list(itertools.accumulate(map(len, chunks), initial=offset + restart))
        if starts[-1] != end:  # the chunks do not tile the piece (a custom pattern): go the slow way
            return _last_safe_cut_forward(text, pattern, special_re, limit)
        for start in reversed(starts[:-1]):
            if start <= limit and _safe_start(text, start, sure):
                return start
    return 0


def _last_safe_cut_forward(text: str, pattern: regex.Pattern, special_re: regex.Pattern | None,
                           limit: int | None = None) -> int:
    """``last_safe_cut`` the plain way: every chunk border, in order, keeping the last safe one."""
    cut = offset = 0
    limit = len(text) if limit is None else limit
    sure = pattern.pattern in PATTERNS.values()
    for piece, is_special in split_special(text, special_re):
        if is_special and offset <= limit:
            cut = offset
        elif not is_special:
            for m in pattern.finditer(piece):
                start = offset + m.start()
                if start <= limit and _safe_start(text, start, sure):
                    cut = start
        offset += len(piece)
    return cut
