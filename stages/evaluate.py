"""Stage evaluate: loss over the whole train and val splits in every unit, a bigram
baseline, and measures of generated text.

Reads the ``evaluate`` section of params.yaml, the trained model, the tokenizer, the token
files and the corpus; writes ``artifacts/eval_metrics.json`` (DVC metrics).
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.learn.mine import MODEL_PARTS, load_mine
from sml.run.atomic import write_json
from sml.run.evaluation import evaluate
from stages.common import ModelDir, ParamsFile, TokenizerFile, TokensDir, run, stage


@stage
def main(
    model: ModelDir = Path("artifacts/model"),
    tokenizer: TokenizerFile = Path("artifacts/tokenizer/tokenizer.json"),
    tokens: TokensDir = Path("data/tokens"),
    corpus: Annotated[Path, typer.Option(help="The train text (for its words).")] = Path("data/corpus/train.txt"),
    out: Annotated[Path, typer.Option(help="Metrics file (JSON).")] = Path("artifacts/eval_metrics.json"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Evaluate the trained model."""
    p = load_params(params)
    mine = load_mine(p.impl, params.parent, (*MODEL_PARTS, "sampling"))  # impl.<part>: mine, graded first
    metrics = evaluate(model, tokenizer, tokens, corpus, p.evaluate, mine=mine)
    write_json(out, metrics)
    print(f"evaluate: -> {out}")


if __name__ == "__main__":
    run(main)
