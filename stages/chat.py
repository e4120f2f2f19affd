"""Talk to the fine-tuned model: ``python -m stages.chat`` (``make chat``), or one reply with ``--message``.

The REPL streams each reply token by token and keeps the conversation: each turn reuses the
KV cache of the last (``sml.chat.Chat``); when the context is full the oldest messages go,
and it says so. ``/reset`` starts over, ``/exit`` (or Ctrl-D) ends; Ctrl-C stops a reply
half-way (what was shown stays the assistant's turn).

    python -m stages.chat                              # the REPL
    python -m stages.chat --message "Good morrow"      # one reply, for scripts

Settings come from the ``chat`` section of params.yaml; options given here override them.
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.chat import CHAT_TOKENS, Chat
from sml.config import load_params, with_options
from sml.generate import TextStream
from sml.learn.mine import MODEL_PARTS, load_mine
from sml.run.checkpoint import load_model, model_info
from sml.run.device import pick_runtime
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer
from sml.tokenizer.tokenizer import replace_surrogates
from stages.common import ParamsFile, from_params, run, stage

HELP = "/reset starts over, /exit (or Ctrl-D) ends, Ctrl-C stops a reply"


@stage
def main(
    message: Annotated[str | None, typer.Option(
        help="Print the reply to this one message and exit (without it: the REPL).", show_default=False)] = None,
    system: Annotated[str | None, typer.Option(
        help="The system message.", show_default=from_params("chat.system"))] = None,
    temperature: Annotated[float | None, typer.Option(
        help="0 = greedy.", show_default=from_params("chat.temperature"))] = None,
    top_k: Annotated[int | None, typer.Option(help="0 = off.", show_default=from_params("chat.top_k"))] = None,
    top_p: Annotated[float | None, typer.Option(help="1.0 = off.", show_default=from_params("chat.top_p"))] = None,
    max_new_tokens: Annotated[int | None, typer.Option(
        help="A reply's tokens at most.", show_default=from_params("chat.max_new_tokens"))] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.", show_default=from_params("chat.seed"))] = None,
    model: Annotated[Path, typer.Option(help="The fine-tuned model directory (model.pt, model.json,"
                                             " tokenizer.json).")] = Path("artifacts/chat_model"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Talk to the fine-tuned model."""
    p = load_params(params)
    cfg = with_options(p.chat, "chat", system=system, temperature=temperature, top_k=top_k, top_p=top_p,
                       max_new_tokens=max_new_tokens, seed=seed)
    tokenizer = model / "tokenizer.json"
    if not model.is_dir():
        raise SMLError(f"{model}: not found: fine-tune a model first (make quick, or dvc repro finetune), or pass"
                       " --model")
    if not tokenizer.is_file():
        raise SMLError(f"{model}: no tokenizer.json, so not a fine-tuned chat model: fine-tune one (dvc repro"
                       " finetune), or pass --model")
    tok = Tokenizer.load(tokenizer)
    if not set(CHAT_TOKENS) <= set(tok.special_tokens):
        raise SMLError(f"{tokenizer}: no chat tokens ({', '.join(CHAT_TOKENS)}): not a chat model's tokenizer;"
                       " fine-tune one (dvc repro finetune)")
    mine = load_mine(p.impl, params.parent, (*MODEL_PARTS, "sampling"))
    runtime = pick_runtime(cfg.device, "float32", compile=False, key="chat")
    chat = Chat(load_model(model, tokenizer, runtime.device, mine), tok, replace_surrogates(cfg.system))
    settings = {key: getattr(cfg, key) for key in ("max_new_tokens", "temperature", "top_k", "top_p")}
    if message is not None:
        say(chat, replace_surrogates(message), settings, cfg.seed)
        return
    steps = model_info(model).get("steps", 0)
    print(f"chat: {model} ({steps:,} steps), a context of {chat.model.cfg.block_size:,} tokens; {HELP}")
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
            continue
        if command.startswith("/"):
            print(f"(unknown command {command.split()[0]}: {HELP})")
            continue
        if not command:
            continue
        say(chat, replace_surrogates(line), settings, cfg.seed + turn, prefix="sml> ")
        turn += 1


def say(chat: Chat, text: str, settings: dict, seed: int, prefix: str = "") -> None:
    """Stream the reply to ``text``; say first when old messages had to go. Ctrl-C stops the reply."""
    dropped, stream, pieces = chat.dropped, TextStream(chat.tok), chat.reply(text, seed=seed, **settings)
    try:
        first = next(pieces, None)  # the prompt is read here: too long, or old messages dropped
    except ValueError as e:
        if not prefix:  # --message: the one reply asked for cannot be made
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
        print(stream.flush())
    except KeyboardInterrupt:
        pieces.close()  # the reply so far stays the assistant's turn
        print(stream.flush() + " [stopped]")
        if not prefix:
            raise


if __name__ == "__main__":
    run(main)
