"""Conversations as data (issue 28): chat messages from JSON lines, checked line by line, split."""

import gzip
import json
import sys

import numpy as np
import pytest
import torch

from sml.batches import RandomWindows
from sml.chat import IGNORE, Message, render, with_chat_tokens
from sml.data.conversations import (
    ConversationEncoder,
    build_conversations,
    conversations,
    encode_conversation_splits,
    required_words,
)
from sml.data.sources import Source
from sml.data.tokens import load_learned, load_tokens
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer
from tests.conftest import SONNET


def chat(user: str, reply: str, system: str | None = None) -> dict:
    turns = [{"role": "system", "content": system}] if system else []
    return {"messages": turns + [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}


def write_jsonl(path, records, compress=False):
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    path.write_bytes(gzip.compress(text.encode()) if compress else text.encode())
    return Source(path, "jsonl", "finetune.sources[0]")


@pytest.mark.parametrize("compress", [False, True])
def test_conversations_are_read_in_order_with_their_roles(tmp_path, compress):
    source = write_jsonl(tmp_path / "c.jsonl", [chat("hi", "hello", system="be brief"), "", chat("2+2?", "4")],
                         compress)
    got = list(conversations(source))
    assert got == [[Message("system", "be brief"), Message("user", "hi"), Message("assistant", "hello")],
                   [Message("user", "2+2?"), Message("assistant", "4")]]


BAD = [
    ("not json", "line 2: not a JSON object"),
    ('["a list"]', "line 2: no list under 'messages' (found list)"),
    ('{"text": "a story"}', "line 2: no list under 'messages' (found 'text')"),
    ({"messages": ["hi"]}, "line 2, message 1: a str, not an object"),
    ({"messages": [{"content": "hi"}]}, "line 2, message 1: no 'role'"),
    ({"messages": [{"role": "bot", "content": "hi"}]}, 'line 2, message 1: role "bot" is not one of'),
    ({"messages": [{"role": "user", "content": 3}]}, "line 2, message 1: 'content' a int, not text"),
    ({"messages": [{"role": "user", "content": None}]}, "line 2, message 1: 'content' null, not text"),
    ({"messages": [{"role": "user"}]}, "line 2, message 1: no 'content', not text"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "line 2: no assistant message"),
    ({"messages": []}, "line 2: no assistant message"),
]


@pytest.mark.parametrize("bad, says", BAD)
def test_a_bad_conversation_is_one_line_naming_the_file_and_line(tmp_path, bad, says):
    source = write_jsonl(tmp_path / "c.jsonl", [chat("hi", "hello"), bad])
    with pytest.raises(SMLError) as e:
        list(conversations(source))
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{source.path} (finetune.sources[0]) ")
    assert says in message


def test_a_damaged_gz_is_one_line(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(json.dumps(chat("hi", "hello")).encode() * 50)[:40])
    with pytest.raises(SMLError, match="cannot be read"):
        list(conversations(Source(path, "jsonl", "finetune.sources[0]")))


def test_the_last_fraction_of_whole_conversations_is_val(tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", [chat(f"q{i}", f"a{i}") for i in range(10)])
    train, val = build_conversations([source], [], tmp_path / "out", 0.2)
    assert (train.conversations, val.conversations, train.messages) == (8, 2, 16)
    lines = (tmp_path / "out" / "val.jsonl").read_text().splitlines()
    assert [json.loads(x)["messages"][0]["content"] for x in lines] == ["q8", "q9"]
    assert len((tmp_path / "out" / "train.jsonl").read_text().splitlines()) == 8


def test_val_sources_of_their_own_and_too_few_to_split(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", [chat("a", "b")])
    val = write_jsonl(tmp_path / "v.jsonl", [chat("c", "d"), chat("e", "f")])
    assert [c.conversations for c in build_conversations([train], [val], tmp_path / "out", 0.1)] == [1, 2]
    with pytest.raises(SMLError, match="1 conversation\\(s\\), too few to keep 1 for val"):
        build_conversations([train], [], tmp_path / "out2", 0.1)


def test_a_failed_build_keeps_both_files_of_the_previous_one(tmp_path):
    good = write_jsonl(tmp_path / "c.jsonl", [chat(f"q{i}", f"a{i}") for i in range(4)])
    build_conversations([good], [], tmp_path / "out", 0.25)
    before = {name: (tmp_path / "out" / name).read_text() for name in ("train.jsonl", "val.jsonl")}
    new_train = write_jsonl(tmp_path / "t.jsonl", [chat("q", "a")])  # fine: only the val source is bad
    bad_val = write_jsonl(tmp_path / "d.jsonl", [chat("q", "a"), {"messages": [{"role": "user"}]}])
    with pytest.raises(SMLError, match="line 2, message 1"):
        build_conversations([new_train], [bad_val], tmp_path / "out", 0.25)
    assert {name: (tmp_path / "out" / name).read_text() for name in before} == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.jsonl", "val.jsonl"]  # no temp left


def test_encoded_conversations_feed_windows_whose_targets_are_the_replies_only(tmp_path):
    tok = with_chat_tokens(Tokenizer.train(SONNET, 300, "gpt4"))
    talks = [chat(f"Question {i}?", f"Answer {i}.") for i in range(6)]
    build_conversations([write_jsonl(tmp_path / "c.jsonl", talks)], [], tmp_path / "out", 1 / 6)
    path = tmp_path / "out" / "train.jsonl"
    chunks = list(ConversationEncoder(tok.to_dict(), chunk_tokens=20).pieces(path, 0, path.stat().st_size))
    assert len(chunks) > 2  # a piece at a time
    ids = np.frombuffer(b"".join(c[0] for c in chunks), dtype=np.uint16)
    learn = np.frombuffer(b"".join(c[1] for c in chunks), dtype=np.uint8)
    counts = {key: sum(c[2][key] for c in chunks) for key in chunks[0][2]}
    rendered = [render([Message(**m) for m in t["messages"]], tok) for t in talks[:5]]
    assert ids.tolist() == [i for r, _ in rendered for i in r]
    assert learn.tolist() == [int(keep) for _, flags in rendered for keep in flags]
    assert tok.decode(ids[learn == 1].tolist()) == "".join(f"Answer {i}.<|end|>" for i in range(5))
    assert counts == {"tokens": len(ids), "chars": len("Answer 0.") * 5, "bytes": len("Answer 0.") * 5,
                      "learned_tokens": int(learn.sum()), "conversations": 5}
    windows = RandomWindows(ids, 16, 4, 0, torch.device("cpu"), learn=learn)
    seen = torch.zeros(2, dtype=torch.long)  # targets learned, targets ignored
    for _ in range(20):
        x, y = windows.next()
        assert x.shape == y.shape == (4, 16) and y.dtype == torch.int64
        learned = y != IGNORE
        # where a target is learned it is the next input: the flags are the ids', shifted with them
        assert torch.equal(y[:, :-1][learned[:, :-1]], x[:, 1:][learned[:, :-1]])
        assert set(y[learned].tolist()) <= set(ids[learn == 1].tolist())
        seen += torch.tensor([learned.sum(), (~learned).sum()])
    assert seen.min() > 0


def test_val_sources_with_no_conversation_are_one_line_and_replace_nothing(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", [chat("a", "b")])
    empty = tmp_path / "v.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(SMLError, match=r"^val.jsonl: no conversations: check finetune.sources\[0\]"):
        build_conversations([train], [Source(empty, "jsonl", "finetune.sources[0]")], tmp_path / "out", 0.1)
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_a_play_becomes_conversations_each_speech_answering_the_one_before(tmp_path):
    play = tmp_path / "play.txt"
    play.write_text(SONNET.replace("\n", "\r\n"), encoding="utf-8")  # CRLF too: cut off with the line
    got = list(conversations(Source(play, "play", "finetune.sources[0]")))
    assert got[:2] == [
        [Message("user", "Before we proceed any further, hear me speak."), Message("assistant", "ALL:\nSpeak, speak.")],
        [Message("user", "Speak, speak."), Message("assistant", "FIRST CITIZEN:\nYou are all resolved rather to die"
                                                                " than to famish?")]]
    assert len(got) == 3  # the sonnet after the speeches is no speech: it neither asks nor answers


INSTRUCT = """\
Features: Dialogue
Words: quit, oak, gloomy
Summary: Sara and Ben play in the park
until it gets dark.
Story:\x20

Sara and Ben were playing in the park.
"Let's go home," said Sara.
<|endoftext|>
Random sentence: The sky was blue.
Story: Tom ran with his kite.
Words: kite, run
<|endoftext|>
Features: Twist
Summary: the file was cut off here
"""


@pytest.mark.parametrize("compress", [False, True])
def test_tinystories_instruct_entries_become_requests_and_their_stories(tmp_path, compress, capsys):
    """Fields in any order, a field's text to the next one; the last entry, cut short before its
    story, is skipped, and said so once the file is read."""
    path = tmp_path / "instruct.txt"
    path.write_bytes(gzip.compress(INSTRUCT.encode()) if compress else INSTRUCT.encode())
    got = list(conversations(Source(path, "tinystories_instruct", "finetune.sources[0]"), warn=sys.stderr))
    assert got == [
        [Message("user", "Write a story.\nFeatures: Dialogue\nWords: quit, oak, gloomy\nSummary: Sara and Ben play"
                         " in the park\nuntil it gets dark."),
         Message("assistant", 'Sara and Ben were playing in the park.\n"Let\'s go home," said Sara.')],
        [Message("user", "Write a story.\nRandom sentence: The sky was blue.\nWords: kite, run"),
         Message("assistant", "Tom ran with his kite.")]]
    assert required_words(got[0][0].content) == ["quit", "oak", "gloomy"]
    assert capsys.readouterr().err == (f"warning: {path} (finetune.sources[0]): 1 entry with no 'Story:' skipped"
                                       " (the first at line 14)\n")


def test_encoded_splits_hold_ids_flags_and_the_replies_counts_and_refuse_damage(tmp_path):
    tok = with_chat_tokens(Tokenizer.train(SONNET, 300, "gpt4"))
    talks = [chat(f"Question {i}?", f"Answer {i}.") for i in range(6)]
    build_conversations([write_jsonl(tmp_path / "c.jsonl", talks)], [], tmp_path / "conv", 1 / 6)
    meta = encode_conversation_splits(tmp_path / "conv", tok, tmp_path / "tokens")
    assert meta["val"]["conversations"] == 1 and meta["val"]["chars"] == len("Answer 5.")
    ids, learn = load_tokens(tmp_path / "tokens", "val"), load_learned(tmp_path / "tokens", "val")
    assert tok.decode(ids[learn == 1].tolist()) == "Answer 5.<|end|>"
    assert learn.sum() == meta["val"]["learned_tokens"]
    flags = tmp_path / "tokens" / "train.learn.bin"
    data = bytearray(flags.read_bytes())
    data[3] ^= 1
    flags.write_bytes(bytes(data))
    with pytest.raises(SMLError, match=r"train.learn.bin: its bytes changed since it was written.*conversations"):
        load_learned(tmp_path / "tokens", "train")
    flags.write_bytes(bytes(data[:-1]))
    with pytest.raises(SMLError, match=r"train.learn.bin: \d+ flags for \d+ tokens"):
        load_learned(tmp_path / "tokens", "train")


def test_a_bad_conversations_file_fails_the_stage_in_one_line_and_keeps_the_previous_data(tmp_path, monkeypatch):
    import yaml

    from tests.conftest import command, local_sources, params_template

    monkeypatch.chdir(tmp_path)
    Tokenizer.train(SONNET, 300, "gpt4").save(tmp_path / "tok")
    good = write_jsonl(tmp_path / "good.jsonl", [chat(f"q{i}", f"a{i}") for i in range(10)])
    params = params_template()
    params["finetune"]["sources"] = local_sources(good.path, fmt="jsonl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = command("stages.conversations", "--tokenizer", "tok/tokenizer.json")
    assert done.returncode == 0, done.stderr
    before = {p: p.read_bytes() for p in (tmp_path / "data/chat").rglob("*") if p.is_file()}
    bad = write_jsonl(tmp_path / "bad.jsonl", [chat("q", "a"), {"messages": [{"role": "robot", "content": "x"}]}])
    params["finetune"]["sources"] = local_sources(bad.path, fmt="jsonl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = command("stages.conversations", "--tokenizer", "tok/tokenizer.json")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {bad.path} (finetune.sources[0]) line 2, message 1: role \"robot\" is not one of system, user,"
        " assistant"]
    assert {p: p.read_bytes() for p in (tmp_path / "data/chat").rglob("*") if p.is_file()} == before


def test_the_learners_chat_part_makes_the_same_fine_tuning_data_and_a_broken_one_is_named(tmp_path, monkeypatch):
    """impl.chat: mine runs the learner's render in the conversations stage: a correct one gives the
    reference's token files byte for byte; one that learns the prompt trains after a warning."""
    import shutil

    import yaml

    from tests.conftest import ROOT, command, local_sources, params_template

    monkeypatch.chdir(tmp_path)
    Tokenizer.train(SONNET, 300, "gpt4").save(tmp_path / "tok")
    good = write_jsonl(tmp_path / "good.jsonl", [chat(f"q{i}", f"a{i}", system="brief") for i in range(10)])
    params = params_template()
    params["finetune"]["sources"] = local_sources(good.path, fmt="jsonl")
    made = {}
    for impl, solution in (("reference", None), ("mine", "chat.py"), ("mine", "broken/chat__prompt_learned.py")):
        params["impl"]["chat"] = impl
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        shutil.rmtree(tmp_path / "mine", ignore_errors=True)
        (tmp_path / "mine").mkdir()
        if solution:
            shutil.copy(ROOT / "tests/solutions" / solution, tmp_path / "mine/chat.py")
        done = command("stages.conversations", "--tokenizer", "tok/tokenizer.json", "--out", f"out-{len(made)}")
        assert done.returncode == 0, done.stderr
        made[solution] = {p.name: p.read_bytes() for p in (tmp_path / f"out-{len(made)}" / "tokens").iterdir()}
        if solution and "broken" in solution:
            assert "warning: mine/chat.py fails a check" in done.stderr
            assert "the prompt's tokens are counted in the loss" in done.stderr
    assert made["chat.py"] == made[None]
    assert made["broken/chat__prompt_learned.py"]["train.learn.bin"] != made[None]["train.learn.bin"]


def test_conversations_encoded_by_worker_processes_are_the_ones_encoded_here(tmp_path, monkeypatch):
    """A big file is cut into ranges of lines, encoded by several processes and written in order:
    the same files as one process writes; a bad line deep in it is named by its place in the file."""
    import sml.data.conversations
    import sml.data.encode

    tok = with_chat_tokens(Tokenizer.train(SONNET, 300, "gpt4"))
    talks = [chat(f"Question {i}?" * (1 + i % 3), f"Answer {i}. " * (1 + i % 5), system="brief" * (i % 2))
             for i in range(60)]
    build_conversations([write_jsonl(tmp_path / "c.jsonl", talks)], [], tmp_path / "conv", 0.5)
    monkeypatch.setattr(sml.data.encode, "SERIAL_BELOW", 0)  # workers even for a small file
    monkeypatch.setattr(sml.data.conversations, "RANGE_BYTES", 500)
    assert len(sml.data.conversations.line_ranges(tmp_path / "conv" / "train.jsonl")) > 4
    made = {}
    for workers in (1, 2):
        meta = encode_conversation_splits(tmp_path / "conv", tok, tmp_path / f"t{workers}", workers=workers)
        made[workers] = meta, {p.name: p.read_bytes() for p in (tmp_path / f"t{workers}").iterdir()}
    assert made[1] == made[2]
    lines = (tmp_path / "conv" / "train.jsonl").read_text().splitlines()
    lines[25] = '{"messages": [{"role": "robot", "content": "x"}]}'
    (tmp_path / "conv" / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SMLError, match=r"train.jsonl line 26, message 1: role \"robot\" is not one of"):
        encode_conversation_splits(tmp_path / "conv", tok, tmp_path / "t2", workers=2)
    assert made[2][1] == {p.name: p.read_bytes() for p in (tmp_path / "t2").iterdir()}  # nothing replaced
