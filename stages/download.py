"""Stage download: put the corpus named in params.yaml at data/corpus.txt, checksum verified.

Reads ``data.source`` and ``data.sha256``; honours ``SML_DATA_MIRROR`` (a directory searched
for a file with that sha256 before the source is tried).
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.download import fetch_corpus
from stages.common import ParamsFile, stage


@stage
def main(
    out: Annotated[Path, typer.Option(help="Where the corpus goes.")] = Path("data/corpus.txt"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Fetch the corpus and verify its sha256."""
    cfg = load_params(params).data
    origin = fetch_corpus(cfg.source, cfg.sha256, out)
    print(f"download: {out} ({out.stat().st_size:,} bytes, sha256 verified) from {origin}")


if __name__ == "__main__":
    typer.run(main)
