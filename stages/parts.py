"""Stage parts: write down whose code each part runs, so that the stages depend on that, not on mine/.

    python -m stages.parts --out artifacts/parts

Reads ``impl`` in params.yaml and, for each part set to ``mine``, hashes ``mine/<part>.py``
and the grader; writes one ``<part>.json`` per part (``sml.learn.mine.manifest``). A file
changes only when what runs changes: editing a stub while its part is ``reference`` leaves
every record as it was, and DVC reruns nothing after this stage.
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.learn.mine import manifest
from sml.run.atomic import write_json
from stages.common import ParamsFile, run, stage


@stage
def main(out: Annotated[Path, typer.Option(help="Directory for one <part>.json per part.")] = Path("artifacts/parts"),
         params: ParamsFile = Path("params.yaml")) -> None:
    """Write whose code each part runs."""
    records = manifest(load_params(params).impl, params.parent)
    for part, record in records.items():
        write_json(out / f"{part}.json", record)
    theirs = [p for p, r in records.items() if r["impl"] == "mine"]
    print(f"parts: {', '.join(theirs) + ' from mine/' if theirs else 'all SML reference'}; wrote {out}")


if __name__ == "__main__":
    run(main)
