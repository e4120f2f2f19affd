"""Stage evaluate: loss over the whole train and val splits in every unit, a bigram
baseline, and measures of generated text.

Reads the ``evaluate`` section of params.yaml, the trained model, the tokenizer, the token
files and the corpus; writes ``artifacts/eval_metrics.json`` (DVC metrics).
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.atomic import write_json
from sml.config import load_params
from sml.evaluate import evaluate
from stages.common import ModelDir, ParamsFile, TokenizerFile, TokensDir, stage


@stage
def main(
    model: ModelDir = Path("artifacts/model"),
    tokenizer: TokenizerFile = Path("artifacts/tokenizer/tokenizer.json"),
    tokens: TokensDir = Path("data/tokens"),
    corpus: Annotated[Path, typer.Option(help="The corpus (for its words).")] = Path("data/corpus.txt"),
    out: Annotated[Path, typer.Option(help="Metrics file (JSON).")] = Path("artifacts/eval_metrics.json"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Evaluate the trained model."""
    metrics = evaluate(model, tokenizer, tokens, corpus, load_params(params).evaluate)
    write_json(out, metrics)
    for split in ("train", "val"):
        m = metrics[split]
        print(f"evaluate: {split}: {m['nats_per_token']:.4f} nats/token (perplexity {m['perplexity']:.1f}),"
              f" {m['bits_per_char']:.4f} bits/char, {m['bits_per_byte']:.4f} bits/byte")
    b, s = metrics["bigram_val"], metrics["samples"]
    print(f"evaluate: bigram baseline on val: {b['nats_per_token']:.4f} nats/token, {b['bits_per_char']:.4f} bits/char")
    print(f"evaluate: samples: {s['known_word_share']:.1%} known words, distinct-2 {s['distinct_2']:.3f},"
          f" distinct-3 {s['distinct_3']:.3f}, longest repeat {s['longest_repeat_words']} words")


if __name__ == "__main__":
    typer.run(main)
