"""Run the pipeline as a DVC experiment with a named preset from params.yaml.

    python -m stages.experiment cpu            # what `make quick` runs
    python -m stages.experiment cpu --queue    # queue it; start with `dvc queue start`

A preset is a set of overrides under ``presets:`` in params.yaml. This command turns it
into ``dvc exp run -S section.key=value ...``: an ordinary DVC experiment, listed by
``dvc exp show`` with its params and metrics. Like any ``dvc exp run``, it leaves the
preset's values in your params.yaml; ``git checkout params.yaml`` goes back to the
shipped ones. Not a pipeline stage itself: it runs the pipeline.
"""

import logging
import shlex
import time
from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_preset
from sml.run.compare import chat_reached, dvc_busy, reached
from sml.run.errors import SMLError
from stages.common import ParamsFile, params_as_written, run, stage


def _preset_names() -> str:
    """The presets of params.yaml in the current directory, for --help."""
    presets = params_as_written().get("presets")
    return (", ".join(presets) or "none") if isinstance(presets, dict) else "see presets: in params.yaml"


@stage
def main(
    preset: Annotated[str, typer.Argument(
        help=f"Name of a preset under `presets:` in params.yaml: {_preset_names()}.")],
    name: Annotated[str, typer.Option(help="Experiment name (DVC picks one if empty).")] = "",
    queue: Annotated[bool, typer.Option(help="Queue the experiment instead of running it.")] = False,
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Run (or queue) the pipeline with a preset's parameters, as a DVC experiment."""
    args = ["exp", "run", *(["--queue"] if queue else []), *(["--name", name] if name else [])]
    for setting in set_args(load_preset(params, preset)):
        args += ["-S", setting]
    print(f"preset {preset}: dvc " + " ".join(shlex.quote(a) for a in args), flush=True)
    if not queue and dvc_busy(params.parent):
        raise SMLError("another DVC command is running in this repository (.dvc/tmp/lock): experiments run one"
                       " at a time; wait for it, or queue this one (--queue, then dvc queue start)")
    if not Path("dvc.lock").exists():
        _quiet_first_run_checkout()
    from dvc.cli import main as dvc

    start = time.perf_counter()
    code = dvc(args)
    if code == 0 and not queue and (line := reached(Path("artifacts"), time.perf_counter() - start)):
        print(f"preset {preset}: {line}")
        if chat := chat_reached(Path("artifacts")):
            print(f"preset {preset}: {chat}")
    raise SystemExit(code)


def set_args(overrides: dict) -> list[str]:
    """A preset's overrides as the ``key=value`` strings of ``dvc exp run -S``.

    >>> set_args({"train.lr": 0.002, "model.bias": True})
    ['train.lr=0.002', 'model.bias=true']
    >>> set_args({"data.sources": [{"url": "https://x.org/a.txt", "sha256": "", "format": "text"}]})
    ["data.sources=[{url:'https://x.org/a.txt',sha256:'',format:text}]"]
    """
    return [f"{key}={_hydra_value(value)}" for key, value in overrides.items()]


def _hydra_value(value) -> str:
    """A value as DVC's -S (Hydra override grammar) reads it back with the same type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and not value.replace("_", "").isalnum():
        return "'" + value.replace("'", "\\'") + "'"
    return str(value)


def _quiet_first_run_checkout() -> None:
    """Drop DVC's "No file hash info found for '...'. It won't be created." warnings.

    Before its first run an experiment checks out the outputs it has on record; with no
    dvc.lock there are none, and DVC warns once per output. That is expected, not a fault.
    """

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No file hash info found")

    for name in ("dvc_data.index.checkout", "dvc_data.hashfile.checkout"):
        logging.getLogger(name).addFilter(keep)


if __name__ == "__main__":
    run(main)
