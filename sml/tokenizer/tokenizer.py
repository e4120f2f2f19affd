"""The Tokenizer: text <-> token ids with learned byte-level BPE merges.

Encoding, step by step:
1. Special tokens (``<|endoftext|>``) are found first and, if allowed, become their own ids.
2. The rest is cut into chunks by the split pattern (``pretokenize.py``).
3. Each chunk becomes its UTF-8 bytes (ids 0..255), and merges are applied (``encode_chunk``):
   repeatedly merge the adjacent pair that was *learned earliest*, until no learned pair is left.

Decoding concatenates each id's bytes (``decode``) and decodes UTF-8 (a cut in the middle of
a character shows as U+FFFD). Since every byte is a token, any text round-trips:
``decode(encode(s)) == s``.

Lone surrogates: a Python string can hold code points U+D800..U+DFFF that no UTF-8 text can
(a command-line argument that was not UTF-8 arrives that way: ``$'ROMEO\xff:'`` is
``"ROMEO\udcff:"``). Encoding first replaces each lone surrogate with U+FFFD, the
replacement character, and joins a high+low pair into the character it stands for, exactly
as tiktoken does (``replace_surrogates``), so both backends give the same ids. Such a string
is the one text that does not round-trip: it decodes with U+FFFD in its place.

Special-token policy, when a special token's text appears inside the text to encode:
- ``"raise"`` (the default): refuse, so user text can never smuggle in a control token;
- ``"allow"``: the text becomes the special id (what a corpus of joined documents wants);
- ``"text"``: the text is encoded as ordinary bytes, like any other string.

Saved as a directory with ``tokenizer.json`` (format, version, pattern, specials, merges)
and ``vocab.txt``, a listing for people: every token's bytes and the pair it was merged from.
``load`` checks the whole file (``file_problem``): a damaged one is a one-line error naming
it, never a traceback or a tokenizer with silently wrong merges.

Left out on purpose: the fast bulk encoder (``sml/data/tiktoken_backend.py``), and training (``train.py``).
"""

import itertools
import json
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from sml.data.tokenizer_file import FORMAT, FORMAT_VERSION, file_problem
from sml.run.atomic import write_json, write_text
from sml.run.errors import SMLError
from sml.tokenizer.pretokenize import PATTERNS, compile_pattern, special_regex, split_special
from sml.tokenizer.train import count_chunks, learn_merges, merge_pair

SpecialPolicy = Literal["raise", "allow", "text"]
Backend = Literal["python", "tiktoken", "auto"]
Pair = tuple[int, int]
CACHE_CHUNKS = 1 << 20  # distinct chunks remembered by encode_ordinary before it starts over
RETRAIN_BPE = "rerun the train_bpe stage (dvc repro train_bpe, or python -m stages.train_bpe)"  # a damaged tokenizer


class TokenizerError(SMLError, ValueError):
    """A tokenizer file or an encode request that cannot be honoured."""


class Tokenizer:
    """Byte-level BPE: 256 byte tokens, then one token per merge, then the special tokens."""

    def __init__(self, merges: list[Pair], pattern: str = "gpt4", specials: Iterable[str] = ()):
        """Build from learned ``merges`` (merge i makes id 256 + i), a split pattern
        (a name in ``PATTERNS`` or a regex) and special-token strings (ids after the merges)."""
        self.merges = list(merges)
        self.pattern = PATTERNS.get(pattern, pattern)
        self.pattern_name = next((k for k, v in PATTERNS.items() if v == self.pattern), "custom")
        self.split_re = compile_pattern(self.pattern)
        first_special = 256 + len(self.merges)
        self.special_tokens = {s: first_special + i for i, s in enumerate(specials)}
        self._special_by_id = {i: s for s, i in self.special_tokens.items()}
        self.special_re = special_regex(self.special_tokens)
        self.ranks = _ranks(self.merges)
        self.vocab = _vocab(self.merges)
        self._cache: dict[str, list[int]] = {}
        self._fast = None  # tiktoken's encode_ordinary once built; False if it cannot be
        self._encode_chunk = self._decode = None  # someone else's BPE (``use``)

    def use(self, encode_chunk: Callable | None = None, decode: Callable | None = None) -> "Tokenizer":
        """Run BPE with these functions (the learner's, ``impl.bpe: mine``) in place of ours.

        ``encode_chunk(chunk bytes, merges) -> ids`` and ``decode(ids, merges) -> bytes``, as in
        mine/bpe.py. Encoding then stays in Python (tiktoken would not run them). Returns self.
        """
        self._encode_chunk, self._decode = encode_chunk, decode
        self._cache.clear()
        if encode_chunk is not None:
            self._fast = False
        return self

    @classmethod
    def train(
        cls, texts: str | Iterable[str], vocab_size: int, pattern: str = "gpt4",
        specials: Iterable[str] = ("<|endoftext|>",), learn: Callable | None = None,
    ) -> "Tokenizer":
        """Learn a tokenizer of ``vocab_size`` ids (bytes + merges + specials) from ``texts``.

        Special-token strings in the corpus are borders that no merge crosses. A corpus too
        small for ``vocab_size`` gives a smaller vocabulary; check ``vocab_size`` after.
        ``learn``: a ``learn_merges`` (the learner's, ``impl.bpe: mine``) in place of ours.
        """
        specials = list(specials)
        n_merges = vocab_size - 256 - len(specials)
        if n_merges < 0:
            raise TokenizerError(f"vocab_size {vocab_size} is below 256 bytes + {len(specials)} specials")
        texts = [texts] if isinstance(texts, str) else texts
        counts = count_chunks(texts, compile_pattern(pattern), special_regex(specials))
        return cls([tuple(pair) for pair in (learn or learn_merges)(counts, n_merges)], pattern, specials)

    @property
    def vocab_size(self) -> int:
        """Number of ids: 256 bytes + merges + special tokens."""
        return len(self.vocab) + len(self.special_tokens)

    # ---- encoding -------------------------------------------------------------------------

    def encode(
        self, text: str, special: SpecialPolicy = "raise", backend: Backend = "python"
    ) -> list[int]:
        """Token ids of ``text``.

        ``special`` says what to do with special-token strings in it (see the module doc);
        ``backend`` picks who runs BPE: ``"python"`` (the reference, below), ``"tiktoken"``
        (fast, same ids), or ``"auto"`` (tiktoken when installed, else python).
        """
        if special not in ("raise", "allow", "text"):
            raise TokenizerError(f"special={special!r}: expected 'raise', 'allow' or 'text'")
        ordinary = self._fast_encoder(backend)
        text = replace_surrogates(text)
        if special == "text" or self.special_re is None:
            return ordinary(text)
        ids: list[int] = []
        for piece, is_special in split_special(text, self.special_re):
            if not is_special:
                ids.extend(ordinary(piece))
            elif special == "allow":
                ids.append(self.special_tokens[piece])
            else:
                raise TokenizerError(
                    f"text contains the special token {piece!r}; pass special='allow' to encode it"
                    " as its id, or special='text' to encode it as plain text"
                )
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special-token handling at all (pure-Python reference).

        Each distinct chunk goes through BPE once; later occurrences come from a cache
        (Shakespeare's 300k chunks are 15k distinct ones), bounded for endless corpora.
        Lone surrogates become U+FFFD first (``replace_surrogates``), as in tiktoken.
        """
        text = replace_surrogates(text)
        ids: list[int] = []
        if len(self._cache) > CACHE_CHUNKS:
            self._cache.clear()
        cache = self._cache
        for chunk in self.split_re.findall(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = cache[chunk] = self._bpe(chunk.encode("utf-8"))
            ids.extend(chunk_ids)
        return ids

    def backend_name(self, backend: Backend) -> str:
        """Which backend ``encode(..., backend=backend)`` really uses: "python" or "tiktoken"."""
        return "python" if self._fast_encoder(backend) == self.encode_ordinary else "tiktoken"

    def _fast_encoder(self, backend: Backend):
        """The ordinary-text encoder for ``backend``; tiktoken's is built once, on first use."""
        if backend == "python":
            return self.encode_ordinary
        if backend not in ("tiktoken", "auto"):
            raise TokenizerError(f"backend={backend!r}: expected 'python', 'tiktoken' or 'auto'")
        if self._fast is None:
            from sml.data.tiktoken_backend import fast_encoder

            self._fast = fast_encoder(self) or False  # False: tried, not available
        if self._fast:
            return self._fast
        if backend == "tiktoken":
            raise TokenizerError("backend='tiktoken' asked for, but tiktoken cannot be used here")
        return self.encode_ordinary

    def _bpe(self, chunk: bytes) -> list[int]:
        """``encode_chunk(chunk, self.merges)``, with the merges' ranks looked up once."""
        if self._encode_chunk is not None:  # mine
            return list(self._encode_chunk(chunk, self.merges))
        return _merge_earliest_first(list(chunk), self.ranks)

    # ---- decoding -------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes of ``ids`` (special tokens as their UTF-8 text)."""
        vocab, specials = self.vocab, self._special_by_id
        if self._decode is not None:  # mine: theirs on each run of ordinary ids, the specials as text
            pieces = []
            for special, run in itertools.groupby(ids, key=specials.__contains__):
                run = list(run)
                pieces += [specials[i].encode() for i in run] if special else [self._decode(run, self.merges)]
            return b"".join(pieces)
        try:
            return b"".join(vocab[i] if i < len(vocab) else specials[i].encode() for i in ids)
        except (KeyError, IndexError, TypeError) as e:
            raise TokenizerError(f"id out of range: vocab has ids 0..{self.vocab_size - 1}") from e

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; an incomplete UTF-8 sequence shows as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---- saving and loading ---------------------------------------------------------------

    def to_dict(self) -> dict:
        """Everything needed to rebuild this tokenizer, as plain JSON-able data."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "pattern_name": self.pattern_name,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "merges": [list(p) for p in self.merges],
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``tokenizer.json`` and ``vocab.txt`` into ``directory``; returns the JSON path."""
        directory = Path(directory)
        write_json(directory / "tokenizer.json", self.to_dict())
        write_text(directory / "vocab.txt", self.vocab_listing())
        return directory / "tokenizer.json"

    @classmethod
    def load(cls, path: str | Path, rerun: str = RETRAIN_BPE) -> "Tokenizer":
        """Read a tokenizer saved by ``save`` (the directory or its ``tokenizer.json``).

        Every part of the file is checked first (``file_problem``); anything wrong is a
        ``TokenizerError`` of one line naming the file. About 0.2 s for 50k merges.
        """
        path = Path(path)
        if path.suffix != ".json":  # the directory that save() wrote
            path = path / "tokenizer.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TokenizerError(f"{path}: no such tokenizer file; {rerun}") from None
        except UnicodeDecodeError as e:
            raise TokenizerError(f"{path}: not UTF-8 text (byte {e.start:,}): the file is damaged; {rerun}") from None
        except json.JSONDecodeError as e:
            raise TokenizerError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno});"
                                 f" {rerun}") from None
        except OSError as e:
            raise TokenizerError(f"{path}: cannot be read ({e.strerror})") from None
        problem = file_problem(data)
        if problem:
            raise TokenizerError(f"{path}: {problem}; {rerun}")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "Tokenizer":
        """The tokenizer that ``to_dict`` describes (checked data: see ``load``)."""
        specials = sorted(data["special_tokens"], key=data["special_tokens"].get)
        return cls([(a, b) for a, b in data["merges"]], data["pattern"], specials)

    def vocab_listing(self) -> str:
        """One line per id: the token as readable text, and the pair it was merged from."""
        lines = [f"# {self.vocab_size} tokens; pattern {self.pattern_name}; [bytes] <- [left] [right]"]
        for i, token in enumerate(self.vocab):
            line = f"{i:6d}  [{render_bytes(token)}]"
            if i >= 256:
                a, b = self.merges[i - 256]
                line += f"  <- [{render_bytes(self.vocab[a])}] [{render_bytes(self.vocab[b])}]"
            lines.append(line)
        lines += [f"{i:6d}  {s}  (special)" for s, i in self.special_tokens.items()]
        return "\n".join(lines) + "\n"


def encode_chunk(chunk: bytes, merges: list[Pair]) -> list[int]:
    """The ids of one chunk: its bytes, then the merges, always the earliest-learned pair present first.

    Merging the earliest-learned pair first replays training's order, so the training text
    encodes to exactly the tokens the trainer built. (What ``Tokenizer`` does to each chunk.)

    >>> encode_chunk(b"aaab", [(97, 97), (97, 98)])
    [256, 257]
    """
    return _merge_earliest_first(list(chunk), _ranks(merges))


def decode(ids: Iterable[int], merges: list[Pair]) -> bytes:
    """The bytes of ``ids``: each token's bytes, joined (no special tokens: see ``Tokenizer.decode_bytes``).

    >>> decode([256, 257], [(97, 97), (97, 98)])
    b'aaab'
    """
    vocab = _vocab(merges)
    try:
        return b"".join(vocab[i] for i in ids)
    except (IndexError, TypeError) as e:
        raise TokenizerError(f"id out of range: {len(merges)} merges make ids 0..{len(vocab) - 1}") from e


def _merge_earliest_first(ids: list[int], ranks: dict[Pair, int]) -> list[int]:
    """Repeatedly merge the adjacent pair with the lowest rank (the earliest learned) until none is left."""
    while len(ids) > 1:
        best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 62))
        new_id = ranks.get(best)
        if new_id is None:
            break
        ids = merge_pair(ids, best[0], best[1], new_id)
    return ids


def _ranks(merges: list[Pair]) -> dict[Pair, int]:
    """Each learned pair's new id, which is also its rank: 256 + the merge's place in the list."""
    return {pair: 256 + i for i, pair in enumerate(merges)}


def _vocab(merges: list[Pair]) -> list[bytes]:
    """Every id's bytes: the 256 single bytes, then each merge's two parts joined."""
    vocab = [bytes([i]) for i in range(256)]
    for a, b in merges:
        vocab.append(vocab[a] + vocab[b])
    return vocab


def replace_surrogates(text: str) -> str:
    """``text`` as UTF-8 can hold it: each lone surrogate becomes U+FFFD, as tiktoken does.

    A high and a low surrogate in a row become the one character they encode in UTF-16.
    Text without surrogates (nearly all) is returned as is, after one fast check.

    >>> replace_surrogates("ROMEO\\udcff:"), replace_surrogates("\\ud83d\\ude00")
    ('ROMEO\ufffd:', '😀')
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def render_bytes(token: bytes) -> str:
    """Show a token's bytes as readable text: invisible characters and broken UTF-8 escaped.

    >>> render_bytes(b" the\\n"), render_bytes(b"\\xe2\\x82")
    (' the\\\\n', '\\\\xe2\\\\x82')
    """
    text = token.decode("utf-8", errors="backslashreplace")
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch)[0] in "CZ" and ch != " "
        else ch
        for ch in text
    )
