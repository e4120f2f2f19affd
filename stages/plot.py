"""Stage plot: PNG figures of the run under artifacts/plots/.

Reads the ``plot`` section of params.yaml (the sentence and layer for the attention map),
the training log, the model and the tokenizer; writes loss.png, lr.png,
attention.png and token_lengths.png.
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.learn.mine import MODEL_PARTS, load_mine
from sml.run.checkpoint import load_model, model_info
from sml.run.device import pick_runtime
from sml.run.plots import layer_note, plot_all
from sml.tokenizer import Tokenizer
from stages.common import ModelDir, ParamsFile, TokenizerFile, run, stage


@stage
def main(
    log: Annotated[Path, typer.Option(help="The training log (TSV).")] = Path("artifacts/train_log.tsv"),
    model: ModelDir = Path("artifacts/model"),
    tokenizer: TokenizerFile = Path("artifacts/tokenizer/tokenizer.json"),
    out: Annotated[Path, typer.Option(help="Directory for the figures.")] = Path("artifacts/plots"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Draw the figures."""
    p = load_params(params)
    cfg, mine = p.plot, load_mine(p.impl, params.parent, MODEL_PARTS)  # the attention map runs the model
    # The attention figure needs a few forward passes of one sentence: the CPU does that in
    # a blink, and the figures do not depend on which GPU (if any) the machine has.
    runtime = pick_runtime("cpu", "float32", compile=False, key="plot")
    net = load_model(model, tokenizer, runtime.device, mine)
    if note := layer_note(net, cfg.layer):
        print(f"plot: {note}")
    paths = plot_all(log, net, model_info(model), Tokenizer.load(tokenizer), cfg.sentence, cfg.layer, out)
    print(f"plot: {', '.join(p.name for p in paths)} -> {out}")


if __name__ == "__main__":
    run(main)
