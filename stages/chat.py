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

from sml.config import load_params, with_options
from sml.learn.mine import MODEL_PARTS, load_mine
from sml.run.device import pick_runtime
from sml.run.talk import load_chat, say, talk
from sml.tokenizer.tokenizer import replace_surrogates
from stages.common import ParamsFile, from_params, run, stage


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
    mine = load_mine(p.impl, params.parent, (*MODEL_PARTS, "sampling"))
    runtime = pick_runtime(cfg.device, "float32", compile=False, key="chat")
    chat = load_chat(model, runtime.device, cfg.system, mine)
    settings = {key: getattr(cfg, key) for key in ("max_new_tokens", "temperature", "top_k", "top_p")}
    if message is None:
        talk(chat, model, settings, cfg.seed)
    else:
        say(chat, replace_surrogates(message), settings, cfg.seed)


if __name__ == "__main__":
    run(main)
