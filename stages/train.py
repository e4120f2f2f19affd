"""Stage train: train the GPT on the encoded tokens; resume an interrupted run.

Reads the ``model`` and ``train`` sections of params.yaml, ``data/tokens/`` and the
tokenizer; writes ``artifacts/model/`` (weights + model.json), the resumable checkpoint
``artifacts/checkpoint/``, the log ``artifacts/train_log.tsv`` (DVC plots) and the
metrics ``artifacts/train_metrics.json`` (DVC metrics).

With ``train.nproc`` above 1 it starts itself that many times under torchrun (one process
per GPU), as ``torchrun --standalone --nproc_per_node=N -m stages.train`` would.
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.learn.mine import MODEL_PARTS, load_mine
from sml.run import distributed
from stages.common import ParamsFile, TokenizerFile, TokensDir, run, stage


@stage
def main(
    tokens: TokensDir = Path("data/tokens"),
    tokenizer: TokenizerFile = Path(
        "artifacts/tokenizer/tokenizer.json"),
    checkpoint: Annotated[Path, typer.Option(help="Resumable checkpoint file.")] = Path(
        "artifacts/checkpoint/checkpoint.pt"),
    model: Annotated[Path, typer.Option(help="Directory for the trained model.")] = Path("artifacts/model"),
    log: Annotated[Path, typer.Option(help="Training log (TSV).")] = Path("artifacts/train_log.tsv"),
    metrics: Annotated[Path, typer.Option(help="Final metrics (JSON).")] = Path(
        "artifacts/train_metrics.json"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Train (or resume) the model."""
    p = load_params(params)
    if p.train.nproc > 1 and not distributed.launched_by_torchrun():
        raise SystemExit(distributed.launch(p.train.nproc, "stages.train", sys.argv[1:]))
    from sml.run.trainer import TrainFiles, train  # here, not above: the launcher needs none of it (1.5 s of imports)

    mine = load_mine(p.impl, params.parent, (*MODEL_PARTS, "training"))  # impl.<part>: mine, graded first
    train(p.model, p.train, TrainFiles(tokens, tokenizer, checkpoint, model, log, metrics), mine=mine)


if __name__ == "__main__":
    run(main)
