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

``build_conversations`` writes ``train.jsonl`` and ``val.jsonl``: the train sources'
conversations in order, and the val sources' (with none: the last ``val_fraction`` of the
train conversations, whole conversations, never one cut in two). Each written line holds
the messages only, checked; memory stays small for any number of conversations.
"""

import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sml.chat import IGNORE, ROLE_TOKENS, Message, render
from sml.data.sources import Source, json_lines
from sml.run.atomic import atomic_open
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer
from sml.tokenizer.tokenizer import replace_surrogates

ROLES = tuple(ROLE_TOKENS)  # system, user, assistant
EXAMPLE = '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'


def conversations(source: Source) -> Iterator[list[Message]]:
    """The conversations of one source, each checked (``parse_conversation``)."""
    for number, line in json_lines(source):
        yield parse_conversation(line, f"{source.path} ({source.key}) line {number:,}")


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
        total = sum(1 for source in train for _ in json_lines(source))  # a first pass: count, then cut
        n_val = max(1, round(total * val_fraction))
        if total - n_val < 1:
            keys = ", ".join(sorted({s.key for s in train}))
            raise SMLError(f"{keys}: {total:,} conversation(s), too few to keep {n_val:,} for val and train on"
                           " the rest: add some, or give val sources of their own")
        cut = total - n_val
    counted = Counted(), Counted()
    with atomic_open(out_dir / "train.jsonl") as train_file, atomic_open(out_dir / "val.jsonl") as val_file:
        files = train_file, val_file
        for index, turns in enumerate(c for source in train for c in conversations(source)):
            side = int(cut is not None and index >= cut)
            _write(files[side], turns, counted[side])
        for turns in (c for source in val for c in conversations(source)):
            _write(val_file, turns, counted[1])
        for name, sources, count in (("train.jsonl", train, counted[0]), ("val.jsonl", val or train, counted[1])):
            if count.conversations == 0:
                keys = ", ".join(sorted({s.key for s in sources})) or "the conversation sources"
                raise SMLError(f"{name}: no conversations: check {keys} in params.yaml")
    return counted


def _write(f, turns: list[Message], counted: Counted) -> None:
    f.write(json.dumps({"messages": [vars(t) for t in turns]}, ensure_ascii=False) + "\n")
    counted.conversations += 1
    counted.messages += len(turns)


def encode_conversations(path: str | Path, tok: Tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """A written conversations file (``build_conversations``) as two arrays of one length: the
    ids of every conversation in the chat template, back to back, and their labels (the id
    where the model learns it, ``IGNORE`` where not). Held in memory: 8 bytes a token."""
    ids, labels = array("i"), array("i")  # 4 bytes an entry as they grow, not a list's ~36
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            turns, learn = render(parse_conversation(line, f"{path} line {number:,}"), tok)
            ids.extend(turns)
            labels.extend(i if keep else IGNORE for i, keep in zip(turns, learn, strict=True))
    return np.frombuffer(ids, dtype=np.int32), np.frombuffer(labels, dtype=np.int32)
