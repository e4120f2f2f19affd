"""Hugging Face in and out: ``export`` a trained model, ``import`` GPT-2 (or any export) to sample from.

    python -m stages.hf export                        # artifacts/model -> artifacts/hf
    python -m stages.hf import gpt2 --out artifacts/gpt2
    python -m stages.sample --model artifacts/gpt2 --tokenizer artifacts/gpt2/tokenizer/tokenizer.json \\
        --prompt "Hello, I'm a language model,"

Not a DVC stage: run it when you want a copy for ``transformers`` (``sml/hf/``, README).
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.hf import export_model, import_model
from stages.common import ModelDir, TokenizerFile, stage

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Export an SML model to Hugging Face format, or import one into SML.")


@app.command("export")
@stage
def export(
    model: ModelDir = Path("artifacts/model"),
    tokenizer: TokenizerFile = Path("artifacts/tokenizer/tokenizer.json"),
    out: Annotated[Path, typer.Option(help="The Hugging Face model directory to write.")] = Path("artifacts/hf"),
) -> None:
    """Write the trained model as a transformers directory (config.json, model.safetensors, tokenizer.json)."""
    print(export_model(model, tokenizer, out))


@app.command("import")
@stage
def import_(
    source: Annotated[str, typer.Argument(help="A Hugging Face model directory, or a hub name such as gpt2.")],
    out: Annotated[Path, typer.Option(help="The SML model directory to write (model.pt, model.json, tokenizer/).")],
) -> None:
    """Read a GPT-2, GPT-NeoX or Llama model (safetensors) into an SML model directory."""
    print(import_model(source, out))


if __name__ == "__main__":
    app()
