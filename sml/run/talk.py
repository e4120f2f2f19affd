"""The chat command's side of a conversation: the fine-tuned model loaded and checked
(``load_chat``), the REPL (``talk``) and one streamed reply (``say``).

``sml.chat.Chat`` keeps the conversation and its KV cache; this reads the user's lines, runs
the commands (``/reset``, ``/exit``), prints each reply as it comes, says when old messages
had to go, and stops a reply at Ctrl-C (what was shown stays the assistant's turn).
"""

from pathlib import Path

from sml.chat import CHAT_TOKENS, Chat
from sml.generate import TextStream
from sml.learn.mine import Mine
from sml.run.checkpoint import load_model, model_info
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer
from sml.tokenizer.tokenizer import replace_surrogates

HELP = "/reset starts over, /exit (or Ctrl-D) ends, Ctrl-C stops a reply"


def load_chat(model_dir: Path, device, system: str = "", mine: Mine | None = None) -> Chat:
    """A conversation with the fine-tuned model in ``model_dir`` (model.pt, model.json and its chat
    tokenizer.json), each missing piece one line saying what to run."""
    tokenizer = model_dir / "tokenizer.json"
    if not model_dir.is_dir():
        raise SMLError(f"{model_dir}: not found: fine-tune a model first (make quick, or dvc repro finetune), or pass"
                       " --model")
    if not tokenizer.is_file():
        raise SMLError(f"{model_dir}: no tokenizer.json, so not a fine-tuned chat model: fine-tune one (dvc repro"
                       " finetune), or pass --model")
    tok = Tokenizer.load(tokenizer)
    if not set(CHAT_TOKENS) <= set(tok.special_tokens):
        raise SMLError(f"{tokenizer}: no chat tokens ({', '.join(CHAT_TOKENS)}): not a chat model's tokenizer;"
                       " fine-tune one (dvc repro finetune)")
    return Chat(load_model(model_dir, tokenizer, device, mine), tok, replace_surrogates(system))


def talk(chat: Chat, model_dir: Path, settings: dict, seed: int) -> None:
    """The REPL: a line from the user, the reply streamed, until /exit, Ctrl-D or Ctrl-C at the prompt."""
    steps = model_info(model_dir).get("steps", 0)
    print(f"chat: {model_dir} ({steps:,} steps), a context of {chat.model.cfg.block_size:,} tokens; {HELP}")
    turn = 0
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):  # Ctrl-D, or Ctrl-C at the prompt: the end
            print()
            return
        command = line.strip()
        if command == "/exit":
            return
        if command == "/reset":
            chat.reset()
            print("(a new conversation)")
        elif command.startswith("/"):
            print(f"(unknown command {command.split()[0]}: {HELP})")
        elif command:
            say(chat, replace_surrogates(line), settings, seed + turn, prefix="sml> ")
            turn += 1


def say(chat: Chat, text: str, settings: dict, seed: int, prefix: str = "") -> None:
    """Stream the reply to ``text``; say first when old messages had to go. Ctrl-C stops the reply.

    Without ``prefix`` (``--message``: one reply for a script) a message that cannot be
    answered is an ``SMLError``, and Ctrl-C ends the command after the reply so far.
    """
    dropped, stream, pieces = chat.dropped, TextStream(chat.tok), chat.reply(text, seed=seed, **settings)
    try:
        first = next(pieces, None)  # the prompt is read here: too long, or old messages dropped
    except ValueError as e:
        if not prefix:
            raise SMLError(f"--message: {e}") from None
        print(f"(not sent: {e}; /reset, or a shorter message)")
        return
    if chat.dropped > dropped:
        n = chat.dropped - dropped
        print(f"(the context is full: the {n} oldest message{'s' * (n > 1)} dropped to make room)")
    print(prefix, end="", flush=True)
    try:
        if first is not None:
            print(stream.push(first), end="", flush=True)
            for token in pieces:
                print(stream.push(token), end="", flush=True)
        cut = " [cut: no <|end|> within max_new_tokens or the context]" if prefix and not chat.ended else ""
        print(stream.flush() + cut)
    except KeyboardInterrupt:
        pieces.close()  # the reply so far stays the assistant's turn
        print(stream.flush() + " [stopped]")
        if not prefix:
            raise
