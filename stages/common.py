"""What every stage command shares: one-line errors instead of tracebacks, and the options
that name the same files in every stage (defaults stay in each command, next to dvc.yaml's)."""

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from sml.errors import SMLError

ParamsFile = Annotated[Path, typer.Option(help="The parameters file.")]
TokensDir = Annotated[Path, typer.Option(help="Directory of the token files (train.bin, val.bin, meta.json).")]
ModelDir = Annotated[Path, typer.Option(help="The trained model directory (model.pt, model.json).")]
TokenizerFile = Annotated[Path, typer.Option(help="The tokenizer.json the model was trained with.")]


def stage(fn):
    """Wrap a stage's main function: a user-fixable error prints as one line and exits 1.

    Interrupting with Ctrl-C exits 130 without a traceback. Anything else is a bug in SML
    and keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SMLError as e:
            print(f"error: {e}" if e.exit_code == 1 else str(e), file=sys.stderr)
            raise SystemExit(e.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
