"""Stage train_bpe: learn the byte-level BPE tokenizer from the corpus.

Reads ``tokenizer.vocab_size``, ``tokenizer.pattern``, ``tokenizer.special_tokens`` and
``tokenizer.train_bytes`` (a bigger corpus is sampled: ``sml.data.corpus.sample_lines``);
writes ``artifacts/tokenizer/tokenizer.json`` and ``artifacts/tokenizer/vocab.txt``. With
``impl.bpe: mine`` the merges are the learner's ``learn_merges``'s (mine/bpe.py, graded first).
This path imports no torch and no numpy (but the grader does): it must start as fast as the
tokenizer trains.
"""

import time
from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.data.corpus import check_corpus, sample_lines
from sml.learn.mine import load_mine
from sml.tokenizer import Tokenizer
from sml.tokenizer.pretokenize import compile_pattern, special_regex, stream_pieces
from stages.common import ParamsFile, run, stage


@stage
def main(
    corpus: Annotated[Path, typer.Option(help="The training text (UTF-8).")] = Path("data/corpus/train.txt"),
    out: Annotated[Path, typer.Option(help="Directory for the tokenizer.")] = Path("artifacts/tokenizer"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Train the tokenizer and save it."""
    p = load_params(params)
    cfg, mine = p.tokenizer, load_mine(p.impl, params.parent, ("bpe",))
    check_corpus(corpus)
    start = time.perf_counter()
    # Pieces of up to 64 MiB cut at chunk borders: a small corpus is one piece, a big one
    # never sits in memory whole.
    pieces = stream_pieces(
        sample_lines(corpus, cfg.train_bytes), compile_pattern(cfg.pattern), special_regex(cfg.special_tokens),
        min_piece_chars=1 << 26,
    )
    tok = Tokenizer.train(pieces, cfg.vocab_size, cfg.pattern, cfg.special_tokens,
                          learn=mine.learn_merges if mine is not None else None)
    seconds = time.perf_counter() - start
    tok.save(out)
    size = corpus.stat().st_size
    read = "" if size <= cfg.train_bytes else (
        f", trained on ~{cfg.train_bytes / 1e6:,.0f} MB of its {size / 1e6:,.0f} MB (tokenizer.train_bytes)")
    print(
        f"train_bpe: {len(tok.merges):,} merges{' (mine/bpe.py)' if mine is not None else ''},"
        f" vocab {tok.vocab_size:,} tokens"
        f" (pattern {cfg.pattern}) in {seconds:.2f} s{read} -> {out}"
    )
    if tok.vocab_size < cfg.vocab_size:
        print(
            f"warning: the corpus ran out of pairs: vocab is {tok.vocab_size:,} tokens,"
            f" not the {cfg.vocab_size:,} of tokenizer.vocab_size"
        )


if __name__ == "__main__":
    run(main)
