"""Stage download: fetch the corpus's sources and write it as data/corpus/{train,val}.txt.

Reads ``data.sources``, ``data.val_sources``, ``data.val_fraction``, ``data.text_field`` and
``data.separator``. Each source is checked against its sha256 (``sml/data/download.py``: a mirror,
the download cache, resumable HTTP), then its documents are joined (``sml/data/sources.py``).
Honours ``SML_DATA_MIRROR`` (a directory searched for a file with that sha256 first).
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.data.download import fetch_sources
from sml.data.sources import build_corpus
from stages.common import ParamsFile, run, stage


@stage
def main(
    out: Annotated[Path, typer.Option(help="Directory for train.txt and val.txt.")] = Path("data/corpus"),
    downloads: Annotated[Path, typer.Option(help="Where downloaded files are kept (and resumed).")] = Path(
        "data/downloads"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Fetch every source, verify its sha256, and write the train and val text."""
    cfg = load_params(params).data
    train = fetch_sources(cfg.sources, "data.sources", downloads, params)
    val = fetch_sources(cfg.val_sources, "data.val_sources", downloads, params)
    written = build_corpus(train, val, out, cfg.val_fraction, cfg.text_field, cfg.separator)
    for split, w in written.items():
        docs = f"{w.documents:,} document{'s' if w.documents != 1 else ''}, " if split == "train" or val else ""
        print(f"download: {out / (split + '.txt')}: {docs}{w.chars:,} chars, {w.bytes:,} bytes")


if __name__ == "__main__":
    run(main)
