"""Stage encode: split the corpus into train/val by characters and write flat token files.

Reads ``data.val_fraction`` and ``data.special_in_text``; writes ``data/tokens/train.bin``,
``data/tokens/val.bin`` and ``data/tokens/meta.json`` (token, character and byte counts).
"""

import time
from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.encode import encode_corpus
from sml.tokenizer import Tokenizer
from stages.common import ParamsFile, stage


@stage
def main(
    corpus: Annotated[Path, typer.Option(help="The text to encode (UTF-8).")] = Path("data/corpus.txt"),
    tokenizer: Annotated[Path, typer.Option(help="The trained tokenizer.")] = Path("artifacts/tokenizer"),
    out: Annotated[Path, typer.Option(help="Directory for the token files.")] = Path("data/tokens"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Encode train and val splits with the trained tokenizer."""
    cfg = load_params(params).data
    tok = Tokenizer.load(tokenizer)
    start = time.perf_counter()
    meta = encode_corpus(corpus, tok, out, cfg.val_fraction, cfg.special_in_text)
    seconds = time.perf_counter() - start
    for split in ("train", "val"):
        m = meta[split]
        print(
            f"encode: {split}: {m['tokens']:,} tokens ({meta['dtype']}),"
            f" {m['chars']:,} chars, {m['chars'] / max(m['tokens'], 1):.2f} chars/token"
        )
    print(f"encode: {meta['backend']} backend, {seconds:.2f} s -> {out}")


if __name__ == "__main__":
    typer.run(main)
