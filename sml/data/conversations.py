"""Conversations for fine-tuning: JSON lines of chat messages, checked line by line.

Each line of a conversations file is one conversation, in the chat format most datasets and
APIs use::

    {"messages": [{"role": "system", "content": "You write short stories."},
                  {"role": "user", "content": "A story about a cat."},
                  {"role": "assistant", "content": "Once upon a time..."}]}

A role is ``system``, ``user`` or ``assistant``; content is text. A conversation needs at
least one assistant turn: fine-tuning learns the assistant's tokens only, so one without
has nothing to teach. Files come from the same sources as the corpus (a local path or a
URL with its sha256, a ``.gz`` read compressed), and a problem is one line naming the file,
the line and what to change.

Two more formats are turned into conversations as they are read: ``play`` (a play's text:
each speech answers the one before it) and ``tinystories_instruct`` (TinyStories' Instruct
files: a request, then its story).

``build_conversations`` writes ``train.jsonl`` and ``val.jsonl``: the train sources'
conversations in order, and the val sources' (with none: the last ``val_fraction`` of the
train conversations, whole conversations, never one cut in two). Each written line holds
the messages only, checked; memory stays small for any number of conversations.
``encode_conversation_splits`` then writes them as token files in the chat template
(``sml/chat.py``), with one flag per token: is it one the model learns?
"""

import hashlib
import itertools
import json
import re
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sml.chat import ROLE_TOKENS, Message, render
from sml.data.encode import encoded_ranges
from sml.data.sources import Source, json_lines, text_lines
from sml.data.tokens import SPLITS, token_dtype
from sml.run.atomic import atomic_open, replaced_together, write_json
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer
from sml.tokenizer.tokenizer import replace_surrogates

ROLES = tuple(ROLE_TOKENS)  # system, user, assistant
EXAMPLE = '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'


def conversations(source: Source, warn=None) -> Iterator[list[Message]]:
    """The conversations of one source, by its format: ``jsonl`` (each line checked by
    ``parse_conversation``), ``play`` or ``tinystories_instruct`` (turned into conversations;
    ``warn``: where to say what was skipped)."""
    if source.format == "play":
        yield from play_conversations(source)
    elif source.format == "tinystories_instruct":
        yield from instruct_conversations(source, warn)
    else:
        for number, line in json_lines(source):
            yield parse_conversation(line, f"{source.path} ({source.key}) line {number:,}")


def play_conversations(source: Source) -> Iterator[list[Message]]:
    """A play's text as conversations: each speech answers the one before it.

    A speech is a block of lines after a blank line whose first line is the speaker's name and a
    colon (``ROMEO:``), as in tiny Shakespeare. Each pair of speeches in a row becomes one
    conversation: the user says the first one's words, the assistant answers with the second
    one, its speaker's name first (so the model learns who answers, too). Blocks that are not
    speeches (a stage direction, a sonnet) end the run of speeches."""
    speech: list[str] = []
    last: list[str] | None = None  # the speech before, while speeches follow one another
    for _, line in itertools.chain(text_lines(source), [(0, "")]):  # a blank line at the end closes the last block
        if line.strip():
            speech.append(line)
            continue
        if not speech:
            continue
        is_speech = len(speech) > 1 and speech[0].endswith(":") and 0 < len(speech[0]) <= 40
        if is_speech and last is not None:
            yield [Message("user", "\n".join(last[1:])), Message("assistant", "\n".join(speech))]
        last, speech = (speech if is_speech else None), []


INSTRUCT_END = "<|endoftext|>"
INSTRUCT_FIELD = re.compile(r"(Features|Words|Summary|Random sentence|Story):[ \t]*")


def instruct_conversations(source: Source, warn=None) -> Iterator[list[Message]]:
    """TinyStories' Instruct files as conversations. Entries end with ``<|endoftext|>``; each holds
    labelled fields in any order (``Features:``, ``Words:``, ``Summary:``, ``Random sentence:``,
    ``Story:``), a field's text running to the next field. The story is the assistant's reply,
    the other fields, as given, the user's request. An entry with no story (the file's last one,
    cut short) is skipped, and how many were is said on ``warn`` (a stream; None: not said)."""
    entry: list[str] = []
    start, skipped, first = 1, 0, 0
    for number, line in itertools.chain(text_lines(source), [(-1, INSTRUCT_END)]):
        if line.strip() != INSTRUCT_END:
            entry.append(line)
            continue
        fields = _instruct_fields(entry)
        story = fields.pop("Story", "")
        if story:
            asked = [f"{name}: {text}" for name, text in fields.items()]
            yield [Message("user", "\n".join(["Write a story.", *asked])), Message("assistant", story)]
        elif "".join(entry).strip():
            skipped, first = skipped + 1, first or start
        entry, start = [], number + 1
    if skipped and warn is not None:
        print(f"warning: {source.path} ({source.key}): {skipped:,} entr{'ies' if skipped > 1 else 'y'} with no"
              f" 'Story:' skipped (the first at line {first:,})", file=warn)


def _instruct_fields(lines: list[str]) -> dict[str, str]:
    """One entry's fields: ``{"Words": "quit, oak, gloomy", "Story": "Sara and Ben...", ...}``."""
    fields: dict[str, str] = {}
    name = None
    for line in lines:
        label = INSTRUCT_FIELD.match(line)
        if label:
            name = label.group(1)
            fields[name] = line[label.end():]
        elif name is not None:
            fields[name] += "\n" + line
    return {name: text.strip() for name, text in fields.items()}


def required_words(request: str) -> list[str]:
    """The words a request's ``Words:`` line asks for (TinyStories-Instruct), or none.

    >>> required_words("Write a story.\\nWords: quit, oak, gloomy")
    ['quit', 'oak', 'gloomy']
    """
    for line in request.splitlines():
        if line.startswith("Words:"):
            return [w.strip() for w in line.removeprefix("Words:").split(",") if w.strip()]
    return []


def parse_conversation(line: bytes | str, where: str) -> list[Message]:
    """One JSON line as a conversation, or a one-line ``SMLError`` that starts with ``where``."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SMLError(f"{where}: not a JSON object ({e}): each line must be one conversation, like"
                       f" {EXAMPLE}") from None
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list):
        found = ", ".join(map(repr, record)) if isinstance(record, dict) else type(record).__name__
        raise SMLError(f"{where}: no list under 'messages' (found {found or 'nothing'}): each line must be like"
                       f" {EXAMPLE}")
    turns = [_message(m, f"{where}, message {i + 1}") for i, m in enumerate(messages)]
    if not any(t.role == "assistant" for t in turns):
        raise SMLError(f"{where}: no assistant message: fine-tuning learns the assistant's replies, so each"
                       " conversation needs at least one (remove the line, or add the reply)")
    return turns


def _message(message: object, where: str) -> Message:
    if not isinstance(message, dict):
        raise SMLError(f"{where}: a {type(message).__name__}, not an object like"
                       ' {"role": "user", "content": "..."}')
    if "role" not in message:
        raise SMLError(f"{where}: no 'role': give each message one of {', '.join(ROLES)}")
    role = message["role"]
    if role not in ROLES:
        raise SMLError(f"{where}: role {json.dumps(role)[:40]} is not one of {', '.join(ROLES)}")
    content = message.get("content")
    if not isinstance(content, str):
        shown = "no 'content'" if "content" not in message else (
            "'content' null" if content is None else f"'content' a {type(content).__name__}")
        raise SMLError(f"{where}: {shown}, not text: each message's 'content' must be a string")
    return Message(role, replace_surrogates(content))  # JSON may escape a lone surrogate: no UTF-8 holds one


@dataclass
class Counted:
    """What went into one conversations file."""

    conversations: int = 0
    messages: int = 0


def build_conversations(train: list[Source], val: list[Source], out_dir: str | Path,
                        val_fraction: float) -> tuple[Counted, Counted]:
    """Write ``out_dir``/train.jsonl and val.jsonl (see the module's docstring); returns what each
    holds. Both are replaced together at the end, or neither (a bad line anywhere keeps the old pair)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cut = None  # with val sources, every train conversation is train's
    if not val:
        total = sum(1 for source in train for _ in _count(source))  # a first pass: count, then cut
        n_val = max(1, round(total * val_fraction))
        if total - n_val < 1:
            keys = ", ".join(sorted({s.key for s in train}))
            raise SMLError(f"{keys}: {total:,} conversation(s), too few to keep {n_val:,} for val and train on"
                           " the rest: add some, or give val sources of their own")
        cut = total - n_val
    counted = Counted(), Counted()
    with atomic_open(out_dir / "train.jsonl") as train_file, atomic_open(out_dir / "val.jsonl") as val_file:
        files = train_file, val_file
        for index, turns in enumerate(c for source in train for c in conversations(source, sys.stderr)):
            side = int(cut is not None and index >= cut)
            _write(files[side], turns, counted[side])
        for turns in (c for source in val for c in conversations(source, sys.stderr)):
            _write(val_file, turns, counted[1])
        for name, sources, count in (("train.jsonl", train, counted[0]), ("val.jsonl", val or train, counted[1])):
            if count.conversations == 0:
                keys = ", ".join(sorted({s.key for s in sources})) or "the conversation sources"
                raise SMLError(f"{name}: no conversations: check {keys} in params.yaml")
    return counted


def _count(source: Source) -> Iterator[object]:
    """One item per conversation of ``source``, cheaply where its lines are its conversations."""
    return json_lines(source) if source.format == "jsonl" else conversations(source)


def _write(f, turns: list[Message], counted: Counted) -> None:
    f.write(json.dumps({"messages": [vars(t) for t in turns]}, ensure_ascii=False) + "\n")
    counted.conversations += 1
    counted.messages += len(turns)


COUNTS = ("tokens", "chars", "bytes", "learned_tokens", "conversations")
RANGE_BYTES = 8 << 20  # the conversations one worker encodes at a time, at most


class ConversationEncoder:
    """Encodes a byte range of a written conversations file (``build_conversations``) in the chat
    template; built once per process (``sml.data.encode``'s workers run it).

    A piece is ``(ids, flags, counts)``: the ids of its conversations back to back (the token
    file's bytes), one flag byte per id (1 where the model learns it: ``render``), and what
    they hold: tokens, the characters and UTF-8 bytes of the learned messages' content, the
    learned tokens, conversations. ``mine_chat``: the learner's mine/chat.py (``impl.chat:
    mine``), whose ``render`` then runs.
    """

    def __init__(self, tokenizer: dict, mine_chat: Path | None = None, chunk_tokens: int = 1 << 20):
        self.tok = Tokenizer.from_dict(tokenizer)
        if mine_chat is None:
            self.render = render
        else:
            from sml.learn.core import load

            self.render = load(mine_chat).render
        self.dtype = token_dtype(self.tok.vocab_size).newbyteorder("<")
        self.chunk_tokens = chunk_tokens

    def __call__(self, path: Path, start: int, end: int) -> tuple[bytes, bytes, dict]:
        """The whole range as one piece."""
        pieces = list(self.pieces(path, start, end))
        return (b"".join(p[0] for p in pieces), b"".join(p[1] for p in pieces),
                {key: sum(p[2][key] for p in pieces) for key in COUNTS})

    def pieces(self, path: Path, start: int, end: int) -> Iterator[tuple[bytes, bytes, dict]]:
        """The range a piece of about ``chunk_tokens`` at a time: memory stays at one piece."""
        ids, learn, counts = array("i"), bytearray(), dict.fromkeys(COUNTS, 0)
        with open(path, "rb") as f:
            f.seek(start)
            for index, line in enumerate(iter(f.readline, b"")):
                try:
                    turns = parse_conversation(line, "")
                except SMLError as e:  # its line number, counted only now (a worker starts mid-file)
                    raise SMLError(f"{path} line {_line_of(path, start) + index:,}{e}") from None
                rendered, flags = self.render(turns, self.tok)
                ids.extend(rendered)
                learn.extend(map(bool, flags))
                for m in turns:
                    if m.role == "assistant":
                        counts["chars"] += len(m.content)
                        counts["bytes"] += len(m.content.encode("utf-8", "surrogatepass"))
                counts["conversations"] += 1
                if len(ids) >= self.chunk_tokens or f.tell() >= end:
                    yield self._piece(ids, learn, counts)
                    ids, learn, counts = array("i"), bytearray(), dict.fromkeys(COUNTS, 0)
                if f.tell() >= end:
                    return
        if counts["conversations"]:
            yield self._piece(ids, learn, counts)

    def _piece(self, ids: array, learn: bytearray, counts: dict) -> tuple[bytes, bytes, dict]:
        counts["tokens"], counts["learned_tokens"] = len(ids), learn.count(1)
        return np.asarray(ids, dtype=self.dtype).tobytes(), bytes(learn), counts


def line_ranges(path: Path, range_bytes: int | None = None) -> list[tuple[int, int]]:
    """Byte ranges ``[(0, a), (a, b), ...]`` of about ``range_bytes`` (``RANGE_BYTES``) that tile
    ``path``, each ending after a line break."""
    range_bytes = range_bytes or RANGE_BYTES
    size, cuts = path.stat().st_size, [0]
    with open(path, "rb") as f:
        for wanted in range(range_bytes, size, range_bytes):
            if wanted <= cuts[-1]:
                continue
            f.seek(wanted)
            f.readline()  # to the end of the line it falls in
            if cuts[-1] < f.tell() < size:
                cuts.append(f.tell())
    return list(zip(cuts, [*cuts[1:], size]))


def _line_of(path: Path, offset: int) -> int:
    """The number (from 1) of the line that starts at byte ``offset`` of ``path``."""
    with open(path, "rb") as f:
        return 1 + sum(block.count(b"\n") for block in iter(lambda: f.read(min(1 << 20, offset - f.tell())), b""))


def encode_conversation_splits(conversations_dir: str | Path, tok: Tokenizer, out_dir: str | Path,
                               mine_chat: Path | None = None, workers: int = 1) -> dict:
    """``conversations_dir``/{train,val}.jsonl as token files in ``out_dir``: {train,val}.bin (the
    ids, as the corpus's: ``sml.data.tokens``), {train,val}.learn.bin (one byte a token: 1 where
    it is learned) and meta.json (the corpus's keys; its counts of chars and bytes are the
    learned messages', so that a loss over the learned tokens turns into bits/char). All five
    files are replaced together, or none. A big file is encoded by up to ``workers`` processes,
    a range of lines each, written in order. Returns the meta dict."""
    conversations_dir, out_dir = Path(conversations_dir), Path(out_dir)
    workers = 1 if mine_chat else workers  # the learner's render runs here, where its errors are named theirs
    dtype = token_dtype(tok.vocab_size)
    meta: dict = {"tokenizer": str(tok.pattern_name), "vocab_size": tok.vocab_size, "dtype": dtype.name,
                  "backend": "python (chat template)", "sha256": {}}
    names = [f"{split}{kind}.bin" for split in SPLITS for kind in ("", ".learn")]
    with replaced_together(*(out_dir / name for name in names)) as temps:
        written = dict(zip(names, temps, strict=True))
        for split in SPLITS:
            path = conversations_dir / f"{split}.jsonl"
            if not path.is_file():
                raise SMLError(f"{path}: not found: run the conversations stage first (dvc repro conversations)")
            counts = dict.fromkeys(COUNTS, 0)
            digests = {split: hashlib.sha256(), f"{split}.learn": hashlib.sha256()}
            with open(written[f"{split}.bin"], "wb") as ids_file, open(written[f"{split}.learn.bin"], "wb") as flags:
                job = (tok.to_dict(), mine_chat)
                pieces = encoded_ranges(path, line_ranges(path), job, workers, ConversationEncoder)
                for ids, learn, counted in pieces:
                    for f, key, data in ((ids_file, split, ids), (flags, f"{split}.learn", learn)):
                        f.write(data)
                        digests[key].update(data)
                    counts = {key: counts[key] + counted[key] for key in COUNTS}
            if counts["learned_tokens"] == 0:
                raise SMLError(f"{path}: no token to learn (no assistant content): check the conversations")
            meta["sha256"] |= {key: digest.hexdigest() for key, digest in digests.items()}
            meta[split] = counts
        (out_dir / "meta.json").unlink(missing_ok=True)  # it no longer describes the files about to replace
    write_json(out_dir / "meta.json", meta)
    return meta
