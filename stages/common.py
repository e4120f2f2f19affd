"""What every stage command shares: one-line errors instead of tracebacks, and the options
that name the same files in every stage (defaults stay in each command, next to dvc.yaml's)."""

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from sml.errors import SMLError

ParamsFile = Annotated[Path, typer.Option(help="The parameters file.")]


def from_params(key: str, path: str = "params.yaml") -> str:
    """What ``--help`` shows as the default of an option that falls back to params.yaml.

    'sample.temperature in params.yaml: 0.8' when the file in the current directory can be
    read, else just where the value comes from: a broken file must not break ``--help``.
    """
    try:
        import yaml

        section, name = key.split(".")
        value = yaml.safe_load(Path(path).read_text(encoding="utf-8"))[section][name]
        return f"{key} in {path}: {value!r}" if isinstance(value, str) else f"{key} in {path}: {value}"
    except Exception:
        return f"{key} in {path}"
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
