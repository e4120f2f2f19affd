"""What every stage command shares: one-line errors instead of tracebacks, and the options
that name the same files in every stage (defaults stay in each command, next to dvc.yaml's)."""

import functools
import gc
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Annotated

import typer

from sml.run.errors import SMLError, blame, refused_by_system

ParamsFile = Annotated[Path, typer.Option(help="The parameters file.")]

TokensDir = Annotated[Path, typer.Option(help="Directory of the token files (train.bin, val.bin, meta.json).")]
ModelDir = Annotated[Path, typer.Option(help="The trained model directory (model.pt, model.json).")]
TokenizerFile = Annotated[Path, typer.Option(help="The tokenizer.json the model was trained with.")]


@functools.cache
def params_as_written(path: str = "params.yaml") -> dict:
    """params.yaml of the current directory as plain data, read once, for help texts and tables.

    Unchecked, and {} when the file is missing or broken: ``--help`` must work regardless
    (the stage itself then fails on it with the usual one-line error).
    """
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def from_params(key: str) -> str:
    """What ``--help`` shows as the default of an option that falls back to params.yaml.

    'sample.temperature in params.yaml: 0.8', or just where the value comes from when the
    file does not say.
    """
    section, name = key.split(".")
    keys = params_as_written().get(section)
    if not isinstance(keys, dict) or name not in keys:
        return f"{key} in params.yaml"
    value = keys[name]
    return f"{key} in params.yaml: {value!r}" if isinstance(value, str) else f"{key} in params.yaml: {value}"


def stage(fn):
    """Wrap a stage's main function: whatever goes wrong ends in one line and a non-zero exit.

    - A user-fixable error (``SMLError``: bad params, a missing or damaged file) prints its
      message and exits 1.
    - Ctrl-C exits 130, without a traceback.
    - Anything else is a bug in SML: one line that says so, exit 2. ``SML_DEBUG=1`` shows
      the traceback instead. Tests tell the two apart by the exit code, so a bug cannot
      pass for a handled error.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctrl_c, previous = _watch_ctrl_c()
        try:
            return fn(*args, **kwargs)
        except SMLError as e:
            print(f"error: {e}" if e.exit_code == 1 else str(e), file=sys.stderr)
            raise SystemExit(e.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except (Exception, SystemExit) as e:
            # raised in the learner's own file (impl: mine): their line; or the file system's "no"
            theirs = blame(e) or refused_by_system(e)
            if theirs is not None and not os.environ.get("SML_DEBUG"):
                print(f"error: {theirs}", file=sys.stderr)
                raise SystemExit(1) from None
            if isinstance(e, SystemExit) or os.environ.get("SML_DEBUG"):
                raise
            if ctrl_c.is_set():  # Ctrl-C in the middle of an import can surface as any error after it
                print("interrupted", file=sys.stderr)
                raise SystemExit(130) from None
            where = traceback.extract_tb(e.__traceback__)[-1]
            what = " ".join(str(e).split())[:300]
            print(f"internal error (a bug in SML, please report it): {type(e).__name__}: {what}"
                  f" at {Path(where.filename).name}:{where.lineno}; SML_DEBUG=1 shows the traceback",
                  file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            if previous is not None:  # a stage called in-process (tests) leaves the handler as it was
                signal.signal(signal.SIGINT, previous)

    return wrapper


def _watch_ctrl_c() -> tuple[threading.Event, object]:
    """An event set by Ctrl-C, which still raises KeyboardInterrupt as Python's own handler does;
    and the handler it replaced (None off the main thread, where none is installed)."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return pressed, None

    def handler(signum, frame):
        pressed.set()
        signal.default_int_handler(signum, frame)

    return pressed, signal.signal(signal.SIGINT, handler)


def run(main) -> None:
    """``typer.run(main)``, for ``python -m stages.<name>``: parse the command line, run, exit.

    The heap is frozen on the way out: the interpreter's last garbage collection then skips
    the objects torch made (hundreds of thousands), and the process ends ~0.6 s sooner.
    """
    try:
        typer.run(main)
    finally:
        gc.freeze()
