"""Stage encode: turn data/corpus/{train,val}.txt into flat token files, on every core.

Reads ``data.special_in_text`` and ``impl.bpe`` (mine: the learner's ``encode_chunk``);
writes ``data/tokens/train.bin``, ``data/tokens/val.bin`` and ``data/tokens/meta.json``
(token, character and byte counts). ``--workers`` changes only the speed, never the ids, so
it is an option and not a param.
"""

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.data.encode import available_cores, encode_corpus
from sml.learn.mine import load_mine
from sml.tokenizer import Tokenizer
from stages.common import ParamsFile, run, stage


@stage
def main(
    corpus: Annotated[Path, typer.Option(help="Directory of train.txt and val.txt.")] = Path("data/corpus"),
    tokenizer: Annotated[Path, typer.Option(help="The trained tokenizer.")] = Path("artifacts/tokenizer"),
    out: Annotated[Path, typer.Option(help="Directory for the token files.")] = Path("data/tokens"),
    workers: Annotated[int, typer.Option(help="Processes to encode with; 0 = one per core.", min=0)] = 0,
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Encode the train and val text with the trained tokenizer."""
    p = load_params(params)
    mine = load_mine(p.impl, params.parent, ("bpe",))  # impl.bpe: mine, graded first
    tok = Tokenizer.load(tokenizer)
    start = time.perf_counter()
    meta = encode_corpus(corpus, tok, out, p.data.special_in_text, workers=workers or available_cores(),
                         progress=sys.stdout, mine_bpe=mine.files["bpe"] if mine is not None else None)
    seconds = time.perf_counter() - start
    for split in ("train", "val"):
        m = meta[split]
        print(
            f"encode: {split}: {m['tokens']:,} tokens ({meta['dtype']}),"
            f" {m['chars']:,} chars, {m['chars'] / max(m['tokens'], 1):.2f} chars/token"
        )
    n_bytes = meta["train"]["bytes"] + meta["val"]["bytes"]
    print(f"encode: {meta['backend']} backend, {seconds:.2f} s ({n_bytes / 1e6 / seconds:,.1f} MB/s) -> {out}")


if __name__ == "__main__":
    run(main)
