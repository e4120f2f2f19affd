"""Phase 7 end to end on CPU: a tiny base model, fine-tuned on 20 synthetic conversations,
answers them through ``python -m stages.chat``; fine-tuning resumes bit-exactly; the REPL
works through a pseudo terminal (multi-turn, /reset, a context that fills up)."""

import contextlib
import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from sml.run.checkpoint import load_checkpoint
from tests.conftest import MIXED, ROOT, SONNET, built_once, command, params_template

WORDS = ("amber basil cedar dune ember fern garnet hazel iris jade kelp lilac maple nutmeg olive pearl quartz rose sage"
         " thyme").split()
BOXES = [(f"What is in box {i}?", f"Box {i} holds {w}.") for i, w in enumerate(WORDS)]


def conversation(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def build(root: Path) -> None:
    """A tiny base model on the sonnet, and the 20 conversations, encoded (stages run in-process)."""
    root.mkdir(parents=True)
    (root / "corpus.txt").write_text(SONNET * 3 + MIXED, encoding="utf-8")
    lines = "".join(json.dumps(conversation(*box)) + "\n" for box in BOXES)
    (root / "boxes.jsonl").write_text(lines, encoding="utf-8")
    (root / "val.jsonl").write_text(lines, encoding="utf-8")  # scored on what it should learn by heart
    params = params_template()
    params["model"].update(n_layer=2, n_embd=64, n_head=4, block_size=64)
    params["finetune"].update(
        sources=[{"url": "boxes.jsonl", "sha256": "", "format": "jsonl"}],
        val_sources=[{"url": "val.jsonl", "sha256": "", "format": "jsonl"}],
        max_iters=600, lr=3e-3, min_lr=3e-4, warmup_iters=10, batch_size=8, eval_interval=100,
        checkpoint_interval=100, log_interval=50)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    with contextlib.chdir(root):
        for stage in ("parts", "download", "train_bpe", "encode", "train", "conversations", "finetune"):
            args = ("--out", "artifacts/parts") if stage == "parts" else ()
            done = command(f"stages.{stage}", *args)
            assert done.returncode == 0, (stage, done.stdout, done.stderr)
            (root / f"{stage}.txt").write_text(done.stdout, encoding="utf-8")


@pytest.fixture(scope="session")
def tuned(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, "finetuned", build)


@pytest.fixture
def here(tuned, tmp_path, monkeypatch) -> Path:
    """This test's own copy of the fine-tuned project, as the current directory."""
    copy = tmp_path / "project"
    import shutil

    shutil.copytree(tuned, copy)
    monkeypatch.chdir(copy)
    return copy


def test_the_fine_tuned_model_answers_a_conversation_it_learned_exactly(tuned):
    from sml.chat import Chat
    from sml.run.checkpoint import load_model
    from sml.tokenizer import Tokenizer

    with contextlib.chdir(tuned):
        done = command("stages.chat", "--message", "What is in box 7?", "--temperature", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Box 7 holds hazel.\n"
    model_dir = tuned / "artifacts" / "chat_model"
    tok = Tokenizer.load(model_dir / "tokenizer.json")
    model = load_model(model_dir, model_dir / "tokenizer.json")
    exact = sum(tok.decode(list(Chat(model, tok).reply(q, 30))) == a for q, a in BOXES)
    assert exact >= 15, exact  # 19 of 20 on an AVX2 CPU: most by heart, greedy
    info = json.loads((model_dir / "model.json").read_text())
    assert info["vocab_size"] == tok.vocab_size and len(info["base_sha256"]) == 64
    assert "finetune: from artifacts/model (20 steps of training); vocabulary" in (tuned / "finetune.txt").read_text()


def test_finetune_keeps_the_base_model_and_learns_only_the_replies(tuned):
    """The base model's own files are untouched, and the fine-tuning data learns the replies only."""
    import numpy as np

    from sml.data.tokens import load_learned, load_tokens
    from sml.tokenizer import Tokenizer

    tok = Tokenizer.load(tuned / "data/chat/tokenizer/tokenizer.json")
    ids = np.asarray(load_tokens(tuned / "data/chat/tokens", "train"))
    learn = np.asarray(load_learned(tuned / "data/chat/tokens", "train"))
    assert tok.decode(ids[learn == 1].tolist()) == "".join(a + "<|end|>" for _, a in BOXES[:20])
    metrics = json.loads((tuned / "artifacts/finetune_metrics.json").read_text())["finetune"]
    assert metrics["val_loss"] < 0.5 and metrics["steps"] == 600  # nats per reply token, by heart
    assert json.loads((tuned / "artifacts/model/model.json").read_text())["vocab_size"] == tok.vocab_size - 4


def test_an_interrupted_finetune_resumes_to_exactly_the_same_weights(tuned, tmp_path):
    from sml.config import load_params
    from sml.run.checkpoint import model_info
    from sml.run.trainer import TrainFiles, train
    from sml.train import Interrupted

    p = load_params(tuned / "params.yaml")
    cfg = dataclasses.replace(p.finetune.train_config(p.train), max_iters=30, eval_interval=10, log_interval=5)

    def files(name: str) -> TrainFiles:
        out = tmp_path / name
        return TrainFiles(tuned / "data/chat/tokens", tuned / "data/chat/tokenizer/tokenizer.json",
                          out / "ckpt/checkpoint.pt", out / "model", out / "log.tsv", out / "metrics.json",
                          base=tuned / "artifacts/model", base_tokenizer=tuned / "artifacts/tokenizer/tokenizer.json")

    base_cfg = model_info(tuned / "artifacts/model")["config"]
    train(base_cfg, cfg, files("straight"), out=open(os.devnull, "w"))

    def interrupt(step):
        if step == 17:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="interrupted at step 17"):
        train(base_cfg, cfg, files("resumed"), on_step=interrupt, out=open(os.devnull, "w"))
    train(base_cfg, cfg, files("resumed"), out=open(os.devnull, "w"))
    straight, resumed = (load_checkpoint(tmp_path / d / "model/model.pt") for d in ("straight", "resumed"))
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    logs = [(tmp_path / d / "log.tsv").read_text().splitlines() for d in ("straight", "resumed")]
    assert [r.split("\t")[:4] for r in logs[0]] == [r.split("\t")[:4] for r in logs[1]]


def test_evaluate_chat_scores_the_replies_and_how_the_model_replies(here):
    done = command("stages.evaluate_chat")
    assert done.returncode == 0, done.stderr
    m = json.loads(Path("artifacts/chat_metrics.json").read_text())["chat"]
    assert m["conversations_scored"] == 20 and m["replies"] == 4  # chat.eval_conversations
    assert m["val_loss"] < 0.5 and m["val_bits_per_char"] < 1.0 and m["ends_with_end"] == 1.0
    assert m["words_used"] is None and m["words_asked"] == 0  # no Words: line in these requests
    assert "fine-tuned: 4 greedy replies (0 requests too long for the context left out): 100% end" in done.stdout
    before = m["base"]  # the trained model before fine-tuning, scored the same way: it never ends a reply
    assert before["val_loss"] > 2 * m["val_loss"] and before["ends_with_end"] == 0.0


def test_a_model_that_is_not_a_chat_model_is_one_line(here):
    done = command("stages.chat", "--model", "artifacts/model", "--message", "hi")
    assert done.returncode == 1 and "no tokenizer.json, so not a fine-tuned chat model" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


class Terminal:
    """``python -m stages.chat`` on a pseudo terminal: type lines, read what it shows."""

    def __init__(self, cwd: Path, *args: str):
        import pty

        self.master, slave = pty.openpty()
        self.process = subprocess.Popen([sys.executable, "-m", "stages.chat", *args], cwd=cwd, stdin=slave,
                                        stdout=slave, stderr=slave, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                        start_new_session=True)
        os.close(slave)
        self.seen = ""

    def read_until(self, text: str, timeout: float = 60.0) -> str:
        """Everything shown up to and including ``text`` (which is then consumed)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"waited {timeout} s for {text!r}; shown so far: {self.seen!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.seen += os.read(self.master, 4096).decode("utf-8", "replace").replace("\r\n", "\n")
                except OSError:  # the other end closed
                    break
        assert text in self.seen, f"{text!r} never shown; shown: {self.seen!r}"
        before, _, self.seen = self.seen.partition(text)
        return before + text

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        try:
            return self.process.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.mark.e2e
@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo terminal is POSIX's (pty)")
def test_the_repl_keeps_the_conversation_resets_and_drops_old_turns_when_the_context_fills(tuned):
    term = Terminal(tuned, "--temperature", "0", "--max-new-tokens", "16")
    try:
        assert "a context of 64 tokens; /reset starts over" in term.read_until("you> ")
        term.type("What is in box 3?")
        assert "sml> Box 3 holds dune." in term.read_until("you> ")
        term.type("What is in box 8?")  # the second turn fits beside the first: nothing dropped
        shown = term.read_until("you> ")
        assert "sml> Box 8 holds iris." in shown and "dropped" not in shown
        term.type("What is in box 5?")  # three turns do not fit in 64 tokens with 16 to write
        shown = term.read_until("you> ")
        assert "(the context is full: the 2 oldest messages dropped to make room)" in shown
        assert "sml> Box 5 holds fern." in shown
        term.type("/reset")
        assert "(a new conversation)" in term.read_until("you> ")
        term.type("/nonsense")
        assert "(unknown command /nonsense:" in term.read_until("you> ")
        term.type("What is in box 9? " * 8)  # alone longer than the context: said, nothing sent
        assert "(not sent: this message takes" in term.read_until("you> ")
        term.type("What is in box 9?")
        assert "sml> Box 9 holds jade." in term.read_until("you> ")
        term.type("/exit")
        assert term.close() == 0
    finally:
        if term.process.poll() is None:
            term.process.kill()


def test_the_chat_model_samples_evaluates_and_exports_to_hugging_face_with_its_template(here):
    """The fine-tuned model directory is a model like any: sample and evaluate take it (the corpus's
    ids are the chat tokenizer's too), and transformers runs it with the chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sml.chat import Message, prompt
    from sml.tokenizer import Tokenizer

    model = ["--model", "artifacts/chat_model", "--tokenizer", "artifacts/chat_model/tokenizer.json"]
    done = command("stages.sample", *model, "--prompt", "Shall", "--max-new-tokens", "5")
    assert done.returncode == 0 and done.stdout.startswith("Shall"), done.stderr
    assert command("stages.evaluate", *model).returncode == 0
    done = command("stages.hf", "export", *model, "--out", "hf")
    assert done.returncode == 0, done.stderr
    hf_tok = AutoTokenizer.from_pretrained("hf")
    asked = [{"role": "user", "content": "What is in box 4?"}]
    ids = hf_tok.apply_chat_template(asked, add_generation_prompt=True, return_dict=False)
    tok = Tokenizer.load("artifacts/chat_model/tokenizer.json")
    assert list(ids) == prompt([Message("user", "What is in box 4?")], tok)  # the same template, id for id
    hf_model = AutoModelForCausalLM.from_pretrained("hf")
    out = hf_model.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False)[0, len(ids):].tolist()
    assert out[-1] == tok.special_tokens["<|end|>"]  # generate stops at the end of the reply
    assert hf_tok.decode(out, skip_special_tokens=True) == "Box 4 holds ember."


def test_a_message_too_long_for_the_context_is_one_line_and_ctrl_c_stops_a_reply_keeping_it(tuned, capsys):
    from sml.chat import Chat
    from sml.run.checkpoint import load_model
    from sml.run.talk import say
    from sml.tokenizer import Tokenizer

    with contextlib.chdir(tuned):
        done = command("stages.chat", "--message", "What is in box 3? " * 20)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --message: this message takes 283 tokens, which leaves"
                                                   " less than 20 for the reply in the context of 64"), lines

    model_dir = tuned / "artifacts" / "chat_model"
    tok = Tokenizer.load(model_dir / "tokenizer.json")
    talk = Chat(load_model(model_dir, model_dir / "tokenizer.json"), tok)
    real = talk.reply

    def pressed_after_three(*args, **kwargs):  # Ctrl-C arrives while the fourth token is written
        for i, token in enumerate(real(*args, **kwargs)):
            if i == 3:
                raise KeyboardInterrupt
            yield token

    talk.reply = pressed_after_three
    say(talk, "What is in box 3?", {"max_new_tokens": 20, "temperature": 0.0, "top_k": 0, "top_p": 1.0}, 0, "sml> ")
    assert capsys.readouterr().out == "sml> Box [stopped]\n"
    assert talk.messages[-1].role == "assistant" and talk.messages[-1].content.startswith("Box")  # it stays
    talk.reply = real
    say(talk, "What is in box 3?", {"max_new_tokens": 3, "temperature": 0.0, "top_k": 0, "top_p": 1.0}, 0, "sml> ")
    assert capsys.readouterr().out == "sml> Box [cut: no <|end|> within max_new_tokens or the context]\n"
    talk.reply = pressed_after_three
    with pytest.raises(KeyboardInterrupt):  # --message: Ctrl-C ends the command (exit 130 from the stage)
        say(talk, "What is in box 5?", {"max_new_tokens": 20, "temperature": 0.0, "top_k": 0, "top_p": 1.0}, 0)


def test_evaluate_chat_measures_the_required_words_of_requests_that_have_them(here):
    asked = [conversation(f"What is in box {i}?\nWords: holds, {w}", f"Box {i} holds {w}.")
             for i, w in enumerate(WORDS[:3])]
    Path("asked.jsonl").write_text("".join(json.dumps(c) + "\n" for c in asked), encoding="utf-8")
    done = command("stages.evaluate_chat", "--conversations", "asked.jsonl", "--out", "asked.json")
    assert done.returncode == 0, done.stderr
    m = json.loads(Path("asked.json").read_text())["chat"]
    assert m["words_asked"] == 3 and 0.0 <= m["words_used"] <= 1.0
    assert "of the required words used (3 requests)" in done.stdout
