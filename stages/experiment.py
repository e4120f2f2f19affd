"""Run the pipeline as a DVC experiment with a named preset from params.yaml.

    python -m stages.experiment cpu            # what `make quick` runs
    python -m stages.experiment cpu --queue    # queue it; start with `dvc queue start`

A preset is a set of overrides under ``presets:`` in params.yaml. This command turns it
into ``dvc exp run -S section.key=value ...``: an ordinary DVC experiment, listed by
``dvc exp show`` with its params and metrics. Like any ``dvc exp run``, it leaves the
preset's values in your params.yaml; ``git checkout params.yaml`` goes back to the
shipped ones. Not a pipeline stage itself: it runs the pipeline.
"""

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_preset
from stages.common import ParamsFile, stage


@stage
def main(
    preset: Annotated[str, typer.Argument(help="Name of a preset under `presets:` in params.yaml.")],
    name: Annotated[str, typer.Option(help="Experiment name (DVC picks one if empty).")] = "",
    queue: Annotated[bool, typer.Option(help="Queue the experiment instead of running it.")] = False,
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Run (or queue) the pipeline with a preset's parameters, as a DVC experiment."""
    overrides = load_preset(params, preset)
    args = ["dvc", "exp", "run", *(["--queue"] if queue else []), *(["--name", name] if name else [])]
    for key, value in overrides.items():
        args += ["-S", f"{key}={_hydra_value(value)}"]
    print(f"preset {preset}: " + " ".join(shlex.quote(a) for a in args), flush=True)
    raise SystemExit(subprocess.run([sys.executable, "-m", *args]).returncode)


def _hydra_value(value) -> str:
    """A value as DVC's -S (Hydra override grammar) reads it back with the same type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, str) and not value.replace("_", "").isalnum():
        return "'" + value.replace("'", "\\'") + "'"
    return str(value)


if __name__ == "__main__":
    typer.run(main)
