"""Stage evaluate_chat: the fine-tuned model on held-out conversations.

Reads the ``chat`` section of params.yaml, ``artifacts/chat_model/`` and the val
conversations (``data/chat/conversations/val.jsonl``); writes ``artifacts/chat_metrics.json``
(DVC metrics): the loss over the replies (nats/token, bits/char) and how it replies (ends
with ``<|end|>``; uses the required words), and the same of the trained model before
fine-tuning (``artifacts/model/``), under ``base``. What each figure is: ``sml.run.chat_evaluation.evaluate_chat``.
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.learn.mine import MODEL_PARTS, load_mine
from sml.run.atomic import write_json
from sml.run.chat_evaluation import evaluate_chat
from stages.common import ModelDir, ParamsFile, TokenizerFile, run, stage


@stage
def main(
    model: Annotated[Path, typer.Option(help="The fine-tuned model directory.")] = Path("artifacts/chat_model"),
    conversations: Annotated[Path, typer.Option(help="Held-out conversations (JSON lines).")] = Path(
        "data/chat/conversations/val.jsonl"),
    base: ModelDir = Path("artifacts/model"),  # the model before fine-tuning, scored beside it
    base_tokenizer: TokenizerFile = Path("artifacts/tokenizer/tokenizer.json"),
    out: Annotated[Path, typer.Option(help="Metrics file (JSON).")] = Path("artifacts/chat_metrics.json"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Evaluate the fine-tuned model."""
    p = load_params(params)
    mine = load_mine(p.impl, params.parent, (*MODEL_PARTS, "chat"))
    metrics = evaluate_chat(model, conversations, p.chat, base=(base, base_tokenizer), mine=mine)
    write_json(out, {"chat": metrics})  # chat.val_loss, chat.base.val_loss, ... in dvc exp show
    print(f"evaluate_chat: -> {out}")


if __name__ == "__main__":
    run(main)
