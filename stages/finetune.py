"""Stage finetune: fine-tune the trained model on conversations, so that it answers.

Reads ``finetune`` (and, for what it does not name, ``train``) of params.yaml, the trained
model ``artifacts/model/`` with its tokenizer, and the conversations' token files
``data/chat/`` (the conversations stage). Writes ``artifacts/chat_model/`` (weights,
model.json and the chat tokenizer: what evaluate_chat, ``python -m stages.chat``, sample,
evaluate and the Hugging Face export take), the resumable checkpoint
``artifacts/finetune_checkpoint/``, the log ``artifacts/finetune_log.tsv`` and the metrics
``artifacts/finetune_metrics.json``.

It is the train stage's run (``sml.run.trainer``: resumable, checkpointed, best-val weights
kept, early stop, time budget) started from the trained weights, on windows of the
conversations whose targets are the assistant's tokens only.
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.learn.mine import MODEL_PARTS, load_mine
from sml.run import distributed
from stages.common import ModelDir, ParamsFile, TokenizerFile, run, stage


@stage
def main(
    base: ModelDir = Path("artifacts/model"),
    base_tokenizer: TokenizerFile = Path("artifacts/tokenizer/tokenizer.json"),
    chat: Annotated[Path, typer.Option(help="The conversations stage's directory (tokens/, tokenizer/).")] = Path(
        "data/chat"),
    checkpoint: Annotated[Path, typer.Option(help="Resumable checkpoint file.")] = Path(
        "artifacts/finetune_checkpoint/checkpoint.pt"),
    model: Annotated[Path, typer.Option(help="Directory for the fine-tuned model.")] = Path("artifacts/chat_model"),
    log: Annotated[Path, typer.Option(help="Fine-tuning log (TSV).")] = Path("artifacts/finetune_log.tsv"),
    metrics: Annotated[Path, typer.Option(help="Final metrics (JSON).")] = Path("artifacts/finetune_metrics.json"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Fine-tune (or resume fine-tuning) the trained model on the conversations."""
    p = load_params(params)
    cfg = p.finetune.train_config(p.train)
    if cfg.nproc > 1 and not distributed.launched_by_torchrun():
        raise SystemExit(distributed.launch(cfg.nproc, "stages.finetune", sys.argv[1:]))
    from sml.run.checkpoint import model_info
    from sml.run.trainer import TrainFiles, train

    mine = load_mine(p.impl, params.parent, (*MODEL_PARTS, "training"))
    files = TrainFiles(chat / "tokens", chat / "tokenizer" / "tokenizer.json", checkpoint, model, log, metrics,
                       base=base, base_tokenizer=base_tokenizer)
    train(model_info(base)["config"], cfg, files, mine=mine)


if __name__ == "__main__":
    run(main)
