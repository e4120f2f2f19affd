"""Stage download: fetch the corpus's sources and write it as data/corpus/{train,val}.txt.

Reads ``data.sources``, ``data.val_sources``, ``data.val_fraction``, ``data.text_field`` and
``data.separator``. Each source is checked against its sha256 (``sml/data/download.py``: a mirror,
the download cache, resumable HTTP), then its documents are joined (``sml/data/sources.py``).
Honours ``SML_DATA_MIRROR`` (a directory searched for a file with that sha256 first).
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.data.download import fetch
from sml.data.sources import Source, build_corpus
from stages.common import ParamsFile, run, stage


def fetched(sources, key: str, downloads: Path, params: Path) -> list:
    """Each of ``sources`` (``data.sources``' or ``finetune.sources``' entries) fetched and checked
    against its sha256 (``sml.data.download``), as ``sml.data.sources.Source``s; ``key`` names the
    list in messages. An unpinned source prints the line to pin it with."""
    files = []
    for i, source in enumerate(sources):
        got = fetch(source.url, source.sha256, downloads, progress=sys.stdout, key=f"{key}[{i}]")
        pinned = "sha256 verified" if source.sha256 else "NOT PINNED"
        print(f"download: {key}[{i}]: {got.path.stat().st_size:,} bytes ({pinned}) from {got.origin}")
        if not source.sha256:
            print(f"download: to pin {key}[{i}], write under its url in {params}:  sha256: {got.sha256}")
        files.append(Source(got.path, source.format, f"{key}[{i}]"))
    return files


@stage
def main(
    out: Annotated[Path, typer.Option(help="Directory for train.txt and val.txt.")] = Path("data/corpus"),
    downloads: Annotated[Path, typer.Option(help="Where downloaded files are kept (and resumed).")] = Path(
        "data/downloads"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Fetch every source, verify its sha256, and write the train and val text."""
    cfg = load_params(params).data
    train = fetched(cfg.sources, "data.sources", downloads, params)
    val = fetched(cfg.val_sources, "data.val_sources", downloads, params)
    written = build_corpus(train, val, out, cfg.val_fraction, cfg.text_field, cfg.separator)
    for split, w in written.items():
        docs = f"{w.documents:,} document{'s' if w.documents != 1 else ''}, " if split == "train" or val else ""
        print(f"download: {out / (split + '.txt')}: {docs}{w.chars:,} chars, {w.bytes:,} bytes")


if __name__ == "__main__":
    run(main)
