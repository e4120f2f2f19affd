"""A readable ``dvc exp show``: every experiment, its figures, and the params it changed.

    python -m stages.show                 # what `make show` runs
    python -m stages.show -A              # experiments of every commit
    python -m stages.show --sort-by val.bits_per_char

One line per experiment (``sml/run/compare.py``): whole-split val and train bits/char, seconds
of training, and the params that differ from the commit the experiment started from.
Other arguments go to ``dvc exp show``; plain ``dvc exp show`` still shows every column.
Not a pipeline stage: it only reads what the stages recorded.
"""

import subprocess
import sys

from sml.run.compare import DROP, experiments_table
from stages.common import params_as_written


def main(argv: list[str]) -> int:
    """Print the table; returns DVC's exit code."""
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    args = [sys.executable, "-m", "dvc", "exp", "show", "--csv", "--drop", DROP, *argv]
    result = subprocess.run(args, capture_output=True, text=True, encoding="utf-8")
    if result.returncode:
        print(result.stderr.strip() or result.stdout.strip(), file=sys.stderr)
        return result.returncode
    print(experiments_table(result.stdout, _presets()))
    return 0


def _presets() -> dict:
    """params.yaml's presets, to name them in the table (none if the file does not say)."""
    presets = params_as_written().get("presets")
    return presets if isinstance(presets, dict) else {}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
