"""A synthetic, English-like corpus of any size, for benchmarking the data stages at scale.

    .venv/bin/python bench/make_corpus.py OUT --mb 1000 [--seed 0] [--format text|jsonl|plain|oneline] [--gzip]

What it imitates, because a tokenizer and the data stages notice it:
- **word frequencies**: words are drawn from a Zipf-Mandelbrot law (exponent 1.05) over a
  vocabulary capped at ``K * n**beta`` distinct words after ``n`` words (Heaps' law, beta 0.55):
  a bigger corpus keeps bringing new, rarer words, as real text does;
- **word forms**: ~145 common English words (with contractions: "don't", "it's") at the top
  ranks, then made-up words built from English-looking syllables plus common suffixes
  ("-s", "-ed", "-ing", "-ly", "'s"), so BPE has prefixes and suffixes to learn; some are
  names (always capitalised); ~3% of the rarer words are non-ASCII (accented Latin, Greek,
  Cyrillic, now and then a CJK word, rarely an emoji; ~0.7% of running words), so
  multi-byte UTF-8 paths run;
- **layout**: sentences start with a capital and end in ".", "?" or "!"; commas, quoted
  speech, numbers now and then (years, counts); paragraphs are lines separated by a blank
  line; documents (stories) of ~200 bytes to ~5 KB. ``text`` separates documents by a line
  holding only ``<|endoftext|>`` (TinyStories V2's layout); ``jsonl`` writes one
  ``{"text": ...}`` per document per line. Two shapes the encoder once struggled with:
  ``plain`` is ``text`` with ASCII letters lowercased and every other ASCII character but
  spaces and line breaks removed (transcribed or lowercased own data: no punctuation, no
  special token; the non-ASCII words are kept as they are), and
  ``oneline`` is ``text`` with every line break a space (a file of one endless line).

What it does not imitate: grammar, meaning, topic or any word order beyond the layout
(words are independent draws), so a model trained on it learns nothing but frequencies.

Speed (~35-40 MB/s on one core): each block of ~1M words is drawn with numpy at once (word
ids, sentence and document boundaries, separators) as an array of piece ids, turned into
bytes by one gather from a table of every piece's UTF-8 (``Lexicon.text_of``): no Python
object per word. jsonl is escaped by hand over the whole block, byte for byte what
``json.dumps(..., ensure_ascii=False)`` writes. ``--gzip`` uses level 1: ~5x faster than
level 6 (75 vs 15 MB/s here) for a file ~15% bigger, and level 6 would make compression the
bottleneck of a generator that exists to be fast. ``--mb`` counts bytes before compression.
"""

import argparse
import gzip as gzip_module
import os
import sys
import time
from pathlib import Path

import numpy as np

ZIPF_EXPONENT = 1.05
ZIPF_OFFSET = 1.7  # Mandelbrot's shift: "the" gets ~6% of words, not the ~10% of a pure Zipf law
HEAPS_K, HEAPS_BETA = 20.0, 0.55  # distinct words after n words: K * n**beta (~15k at 1 MB, ~700k at 1 GB)
BLOCK_WORDS = 1 << 20  # words drawn per block (~6 MB of text)
BYTES_PER_WORD = 6.0  # first guess, corrected by each block written
DOC_SEP = "\n<|endoftext|>\n"
DOC_SEP_BYTES = DOC_SEP.encode("utf-8")
MAX_NUMBER = 2029  # numbers are counts (2-119) and years (1800-2029)
GZIP_LEVEL = 1

COMMON = (
    "the and a to was he she it of in you I they her his said with on that for is had "
    "but at one day so then not there all we be were very have my as up could big what "
    "little would me when went out do him them like this an saw go time are no did "
    "wanted can happy from your back too just will Lily Tom mom friend by see into "
    "don't it's I'm can't didn't let's wasn't you're they're I'll that's there's "
    "about over or more good new now who how after been down before some their where "
    "our again know away man first way long make other made well because why here every "
    "thought looked found took came us get play something could never many together "
    "ran tree dog cat park ball sun water house little home help look felt"
).split()
COMMON = list(dict.fromkeys(COMMON))  # "little" and "could" are listed twice above

ONSETS = (" b c d f g h j k l m n p r s t v w y z bl br ch cl cr dr fl fr gl gr pl pr sc sh sk "
          "sl sm sn sp st str th tr wh").split(" ")
VOWELS = "a e i o u a e i o u ai ea ee oo ou ie oa y".split()
CODAS = ("", "", "", "n", "r", "l", "m", "s", "t", "d", "ck", "ng", "nd", "st", "nt", "ll", "ss", "p", "k",
         "rt", "sh", "th", "x")
SUFFIXES = ("", "s", "ed", "ing", "er", "ly", "y", "est", "ness", "ful", "tion", "'s", "able", "ish")
SUFFIX_P = (.40, .15, .10, .10, .06, .05, .04, .02, .02, .02, .01, .01, .01, .01)
ACCENTS = str.maketrans({"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü", "n": "ñ", "c": "ç"})
GREEK = ("βγδζθκλμνξπρστφχψ", "αεηιουωάέήίόύώ")
CYRILLIC = ("бвгджзклмнпрстфхцчшщ", "аеиоуыэюя")
EMOJI = ("😀", "😊", "🐶", "🌟", "🎉", "❤️", "🍎", "🚀", "🌈", "🐱")

# Separators: after each word one of " ", ", " or a sentence end. A sentence end is
# (punctuation, closing quote?, boundary, opening quote of the next sentence?).
PUNCT, PUNCT_P = (".", "?", "!"), (0.80, 0.12, 0.08)
BOUNDARIES = (" ", "\n\n", DOC_SEP, "\n")  # same paragraph, new paragraph, new document, end of block
COMMA_P, QUOTE_P, PARAGRAPH_P, NUMBER_P = 0.07, 0.15, 0.25, 0.004


def make_corpus(path: str | Path, n_bytes: int, seed: int = 0, fmt: str = "text", gzip: bool = False) -> dict:
    """Write about ``n_bytes`` of synthetic corpus to ``path``, atomically; return its stats.

    The same ``seed``, ``n_bytes`` and ``fmt`` give the same bytes, whatever ``gzip`` says.
    The last document is whole: the size is ``n_bytes`` plus at most part of one document.
    Stats: ``bytes`` (uncompressed), ``file_bytes``, ``documents``, ``words``,
    ``distinct_words``, ``seconds``, ``mb_per_s`` (uncompressed MB, 10^6 bytes, per second).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    start = time.perf_counter()
    path = Path(path)
    rng = np.random.default_rng(seed)
    # Room for every word the cap can reach: the guess of words, doubled for a short-word corpus.
    lexicon = Lexicon(rng, heaps_cap(2 * n_bytes / BYTES_PER_WORD))
    seen = np.zeros(lexicon.size, dtype=bool)
    written = words = documents = 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with (gzip_module.open(tmp, "wb", compresslevel=GZIP_LEVEL) if gzip else open(tmp, "wb")) as f:
            while written < n_bytes:
                per_word = written / words if words else BYTES_PER_WORD
                want = int(min(BLOCK_WORDS, max(1, (n_bytes - written) / per_word)))
                text, ids, doc_word_ends = draw_block(rng, lexicon, want, heaps_cap(words + want))
                chunk, doc_end = formatted(text, fmt, first=written == 0)
                n_docs = len(doc_word_ends)
                if written + len(chunk) > n_bytes:  # keep the documents that reach n_bytes, drop the rest
                    cut = chunk.find(doc_end, n_bytes - written - 1)
                    if cut >= 0:
                        chunk = chunk[: cut + 1]  # up to the "\n" that ends a document
                        n_docs = chunk.count(doc_end) + (fmt != "jsonl")  # text: separators between documents
                        ids = ids[: doc_word_ends[n_docs - 1]]
                f.write(reshaped(chunk, fmt))
                written += len(chunk)
                words += len(ids)
                documents += n_docs
                seen[ids] = True
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    return {"path": str(path), "bytes": written, "file_bytes": path.stat().st_size, "documents": documents,
            "words": words, "distinct_words": int(seen.sum()), "seconds": round(seconds, 3),
            "mb_per_s": round(written / 1e6 / seconds, 1)}


FORMATS = ("text", "jsonl", "plain", "oneline")
NOT_PLAIN = bytes(b for b in range(128) if not (chr(b).isalpha() or chr(b) in " \n"))


def reshaped(chunk: bytes, fmt: str) -> bytes:
    """``text`` made ``plain`` or ``oneline`` (what is written; the documents were counted before).

    >>> reshaped(b'"Hi," she said.\\n<|endoftext|>\\nIt\\'s 1999.\\n', "plain")
    b'hi she said\\n\\nits \\n'
    >>> reshaped(b"One.\\n\\nTwo.\\n", "oneline")
    b'One.  Two. '
    """
    if fmt == "plain":
        return chunk.replace(b"<|endoftext|>", b"").lower().translate(None, NOT_PLAIN)
    if fmt == "oneline":
        return chunk.replace(b"\n", b" ")
    return chunk


def formatted(text: bytes, fmt: str, first: bool) -> tuple[bytes, bytes]:
    """A block's documents (joined by DOC_SEP, ending in "\\n") as file bytes; and what ends a document.

    jsonl escapes by hand, over the whole block at once: the generated text holds no
    backslash and no control character but "\\n", so escaping '"' and "\\n" gives exactly
    ``json.dumps({"text": doc}, ensure_ascii=False)`` (tests check it).

    >>> formatted(b'Hi "you".\\n<|endoftext|>\\nBye.\\n', "jsonl", True)[0]
    b'{"text": "Hi \\\\"you\\\\"."}\\n{"text": "Bye."}\\n'
    """
    if fmt != "jsonl":  # text, and the text that plain and oneline are made of
        return (text if first else b"<|endoftext|>\n" + text), DOC_SEP_BYTES
    escaped = text[:-1].replace(b'"', b'\\"').replace(b"\n", b"\\n")
    lines = escaped.replace(DOC_SEP_BYTES.replace(b"\n", b"\\n"), b'"}\n{"text": "')
    return b'{"text": "' + lines + b'"}\n', b"\n"


def heaps_cap(n_words: float) -> int:
    """How many distinct words the first ``n_words`` words may use (Heaps' law, at least COMMON).

    >>> heaps_cap(0) == len(COMMON)
    True
    """
    return len(COMMON) + int(HEAPS_K * n_words**HEAPS_BETA)


class Lexicon:
    """Every piece of text a block is made of, as UTF-8 in one flat byte array, and the Zipf law.

    Piece ids: ``rank`` is a word (0 = most common), ``size + rank`` the same word
    capitalised, then come the separators (SEPARATORS), an opening quote, and the numbers
    0 to MAX_NUMBER. A block is an array of piece ids, turned into bytes by one gather
    (``text_of``): no Python object per word, which is what makes the generator fast.
    """

    def __init__(self, rng: np.random.Generator, size: int):
        made = make_words(rng, int(size * 1.2) + 100)  # spare words: duplicates are dropped
        common = set(COMMON)
        unique = list(dict.fromkeys(w for w in made if w not in common))
        words = COMMON + unique[: max(0, size - len(COMMON))]
        self.size = len(words)
        self.separators = 2 * self.size
        self.open_quote = self.separators + len(SEPARATORS)
        self.numbers = self.open_quote + 1
        pieces = words + [w[:1].upper() + w[1:] for w in words] + SEPARATORS + ['"'] + [
            str(k) for k in range(MAX_NUMBER + 1)]
        encoded = [p.encode("utf-8") for p in pieces]
        self.lengths = np.array([len(p) for p in encoded], dtype=np.int32)
        self.offsets = np.cumsum(self.lengths, dtype=np.int32) - self.lengths
        self.flat = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def text_of(self, piece_ids: np.ndarray) -> bytes:
        """The pieces' bytes one after the other.

        One gather from ``flat``, by an index per output byte: it counts up by one inside a
        piece and jumps at each piece's first byte to where the piece sits in ``flat``, so it
        is the running sum of ones with the jumps written in. int32 indices (the table and a
        block are far below 2 GB) halve the memory traffic.

        >>> lex = Lexicon(np.random.default_rng(0), 10)
        >>> lex.text_of(np.array([lex.size + 0, lex.separators, 2, lex.separators + 1]))
        b'The a, '
        """
        lengths, offsets = self.lengths[piece_ids], self.offsets[piece_ids]
        out_starts = np.cumsum(lengths, dtype=np.int32) - lengths
        step = np.ones(int(out_starts[-1] + lengths[-1]), dtype=np.int32)  # every piece is >= 1 byte
        step[0] = offsets[0]
        step[out_starts[1:]] = offsets[1:] - (offsets[:-1] + lengths[:-1] - 1)
        return self.flat[np.cumsum(step, dtype=np.int32)].tobytes()

    def draw(self, rng: np.random.Generator, n: int, cap: int) -> np.ndarray:
        """``n`` ranks from the Zipf-Mandelbrot law cut at the ``cap`` most common words.

        Inverts the law's continuous CDF, F(x) ~ (x + q)**(1 - a), and rounds down: rank r
        gets the mass between r and r + 1, about (r + q + 0.5)**-a. Cheaper than a search in
        a table of the discrete CDF, and as Zipf-like.
        """
        e, q = 1.0 - ZIPF_EXPONENT, ZIPF_OFFSET
        lo, hi = q**e, (min(cap, self.size) + q) ** e
        x = (lo + rng.random(n) * (hi - lo)) ** (1.0 / e) - q
        return x.astype(np.int64).clip(0, min(cap, self.size) - 1)


def make_words(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` made-up words (some repeated): 1-3 syllables and a suffix, ~3% non-ASCII, ~4% names."""
    syllables = np.array([o + v + c for o in ONSETS for v in VOWELS for c in CODAS], dtype=object)
    # Syllables have Zipf-like frequencies of their own, so some stems and pieces are common.
    syl_p = 1.0 / np.arange(1, len(syllables) + 1) ** 0.75
    syl_p = syl_p[rng.permutation(len(syllables))] / syl_p.sum()
    parts = syllables[rng.choice(len(syllables), size=(3, n), p=syl_p)]
    n_syllables = rng.choice(3, size=n, p=(0.45, 0.43, 0.12)) + 1
    parts[1][n_syllables < 2] = ""
    parts[2][n_syllables < 3] = ""
    suffixes = np.array(SUFFIXES, dtype=object)[rng.choice(len(SUFFIXES), size=n, p=SUFFIX_P)]
    words = parts[0] + parts[1] + parts[2] + suffixes
    # The first ranks stay ASCII: foreign words and names belong to the rarer part of the vocabulary.
    foreign = np.flatnonzero(rng.random(n) < 0.03)
    foreign = foreign[foreign > 300]
    kinds = rng.choice(5, size=len(foreign), p=(0.58, 0.16, 0.16, 0.08, 0.02))
    for i, kind in zip(foreign.tolist(), kinds.tolist(), strict=True):
        words[i] = foreign_word(rng, kind, words[i])
    names = np.flatnonzero(rng.random(n) < 0.04)
    words[names] = [w[:1].upper() + w[1:] for w in words[names]]
    return words.tolist()


def foreign_word(rng: np.random.Generator, kind: int, word: str) -> str:
    """A non-ASCII word: 0 accented Latin, 1 Greek, 2 Cyrillic, 3 CJK, 4 an emoji.

    Called for ~3% of made-up words only, so a Python loop over them is cheap.
    """
    if kind == 0:
        at = int(rng.integers(len(word)))
        return word[:at] + word[at:].translate(ACCENTS)[:1] + word[at + 1:]  # one letter accented, if it can be
    if kind in (1, 2):
        consonants, vowels = GREEK if kind == 1 else CYRILLIC
        n = int(rng.integers(2, 5))
        return "".join(consonants[int(rng.integers(len(consonants)))] + vowels[int(rng.integers(len(vowels)))]
                       for _ in range(n))
    if kind == 3:
        return "".join(chr(0x4E00 + int(rng.integers(3000))) for _ in range(int(rng.integers(1, 4))))
    return EMOJI[int(rng.integers(len(EMOJI)))]


SEPARATORS = [" ", ", "] + [p + q + b + nq for p in PUNCT for q in ("", '"') for b in BOUNDARIES
                              for nq in ("", '"')]


def sentence_end_code(punct: np.ndarray, quoted: np.ndarray, boundary: np.ndarray, next_quoted: np.ndarray):
    """Index into SEPARATORS of each sentence end (the order of the loops that built it)."""
    return 2 + ((punct * 2 + quoted) * len(BOUNDARIES) + boundary) * 2 + next_quoted


def draw_block(rng: np.random.Generator, lexicon: Lexicon, n_words: int, cap: int):
    """About ``n_words`` of whole documents, joined by DOC_SEP, as UTF-8 ending in "\\n".

    Returns (text, the word ids, the number of words up to the end of each document).
    """
    sentences_per_doc = np.clip(np.rint(rng.lognormal(np.log(12), 0.6, max(1, round(n_words / 130)))), 3, 80)
    doc_last_sentence = np.cumsum(sentences_per_doc).astype(np.int64) - 1
    n_sentences = int(doc_last_sentence[-1]) + 1
    sentence_words = np.clip(np.rint(rng.gamma(3.0, 3.5, n_sentences)), 3, 40).astype(np.int64)
    ends = np.cumsum(sentence_words) - 1  # index of each sentence's last word
    starts = ends - sentence_words + 1
    n = int(ends[-1]) + 1

    quoted = (rng.random(n_sentences) < QUOTE_P).astype(np.int64)
    boundary = np.where(rng.random(n_sentences) < PARAGRAPH_P, 1, 0)
    boundary[doc_last_sentence] = 2
    boundary[-1] = 3
    punct = rng.choice(len(PUNCT), size=n_sentences, p=PUNCT_P)
    separator = (rng.random(n) < COMMA_P).astype(np.int64)  # 0: " ", 1: ", "
    separator[ends] = sentence_end_code(punct, quoted, boundary, np.append(quoted[1:], 0))

    ids = lexicon.draw(rng, n, cap)
    pieces = np.empty(2 * n + 1, dtype=np.int64)  # [opening quote or ""], word, separator, word, ...
    pieces[0] = lexicon.open_quote if quoted[0] else lexicon.separators  # a space, dropped below
    words = pieces[1::2]
    words[:] = ids
    words[starts] += lexicon.size  # capitalised
    numbers = np.flatnonzero(rng.random(n) < NUMBER_P)
    words[numbers] = lexicon.numbers + np.where(rng.random(len(numbers)) < 0.4,
                                                rng.integers(1800, 2030, len(numbers)),
                                                rng.integers(2, 120, len(numbers)))
    pieces[2::2] = lexicon.separators + separator
    text = lexicon.text_of(pieces if quoted[0] else pieces[1:])
    return text, ids, ends[doc_last_sentence] + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the file to write (end it in .gz with --gzip)")
    parser.add_argument("--mb", type=float, required=True, help="size in MB (10^6 bytes), before compression")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--gzip", action="store_true", help=f"gzip the output (level {GZIP_LEVEL})")
    args = parser.parse_args()
    if args.mb <= 0:
        sys.exit(f"make_corpus: --mb {args.mb}: give a size above 0")
    if args.gzip != args.out.name.endswith(".gz"):
        sys.exit(f"make_corpus: {args.out}: the name should end in .gz exactly when --gzip is given")
    if not args.out.parent.is_dir():
        sys.exit(f"make_corpus: {args.out.parent}: no such directory")
    s = make_corpus(args.out, int(args.mb * 1e6), args.seed, args.format, args.gzip)
    packed = f" ({s['file_bytes'] / 1e6:,.1f} MB gzipped)" if args.gzip else ""
    print(f"make_corpus: {s['bytes'] / 1e6:,.1f} MB{packed}, {s['documents']:,} documents, {s['words']:,} words,"
          f" {s['distinct_words']:,} distinct, in {s['seconds']:.1f} s ({s['mb_per_s']:.1f} MB/s) -> {args.out}")


if __name__ == "__main__":
    main()
