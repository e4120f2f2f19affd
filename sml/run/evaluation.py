"""The evaluate stage's work: load the model, score both splits and the bigram floor, sample, print.

The measures themselves, and what each means, are in ``sml/evaluate.py``.
"""

import sys
import time
from pathlib import Path

from sml.config import EvaluateConfig
from sml.data.corpus import sample_lines
from sml.data.tokens import SPLITS, load_meta, load_tokens
from sml.evaluate import (
    WORD_SAMPLE_BYTES,
    bigram_loss,
    generation_quality,
    loss_units,
    scored_windows,
    split_loss,
    words_of,
)
from sml.generate import complete
from sml.learn.mine import Mine
from sml.run.checkpoint import load_model
from sml.run.device import pick_runtime, prepare_decoding
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer


def evaluate(model_dir: Path, tokenizer: Path, tokens: Path, corpus: Path, cfg: EvaluateConfig,
             out=None, mine: Mine | None = None) -> dict:
    """Every figure of ``sml/evaluate.py`` for the model in ``model_dir``; returns the metrics as a dict.

    ``mine``: the learner's parts (``sml/learn/mine.py``): the model's, and ``pick`` for the samples
    (the model carries them: ``model.parts``).

    Each figure is printed to ``out`` as soon as it is known (a whole split takes a while).
    """
    out = sys.stdout if out is None else out
    runtime = pick_runtime(cfg.device, "auto", compile=False, key="evaluate")
    tok = Tokenizer.load(tokenizer)
    model = load_model(model_dir, tokenizer, runtime.device, mine)
    meta = load_meta(tokens)
    encoded = meta["train"]["bytes"]
    if not corpus.exists() or corpus.stat().st_size != encoded:  # its words must be the train split's
        size = f"{corpus.stat().st_size:,} bytes" if corpus.exists() else "missing"
        raise SMLError(f"{corpus}: {size}, but {tokens / 'meta.json'} was encoded from {encoded:,} bytes of train"
                       " text: the corpus changed since; rerun the pipeline (dvc repro)")
    split_tokens = {split: load_tokens(tokens, split) for split in SPLITS}
    metrics: dict = {}
    for split in SPLITS:
        start = time.perf_counter()
        n = meta[split]["tokens"]
        starts, whole = scored_windows(n, model.cfg.block_size, cfg.max_tokens)
        scored = n - 1 if whole else len(starts) * model.cfg.block_size
        what = f"all {n:,} tokens" if whole else f"{scored:,} of {n:,} tokens (evaluate.max_tokens), evenly spread"
        print(f"evaluate: {split}: scoring {what} ...", end="", file=out, flush=True)
        loss = split_loss(model, split_tokens[split], runtime, cfg.batch_size, cfg.max_tokens)
        m = metrics[split] = loss_units(loss, meta[split]) | {"tokens": n, "scored_tokens": scored}
        print(f" {m['nats_per_token']:.4f} nats/token (perplexity {m['perplexity']:.1f}), {m['bits_per_char']:.4f}"
              f" bits/char, {m['bits_per_byte']:.4f} bits/byte ({time.perf_counter() - start:.1f} s)",
              file=out, flush=True)
    baseline = bigram_loss(split_tokens["train"], split_tokens["val"], meta["vocab_size"])
    b = metrics["bigram_val"] = loss_units(baseline, meta["val"])
    print(f"evaluate: bigram baseline on val: {b['nats_per_token']:.4f} nats/token, {b['bits_per_char']:.4f}"
          " bits/char (the floor to beat)", file=out, flush=True)
    sampler = prepare_decoding(model, runtime.device, cfg.max_new_tokens * len(cfg.prompts), "evaluate", out)
    samples = []
    for i, prompt in enumerate(cfg.prompts):
        pieces, _ = complete(sampler, tok, prompt, cfg.max_new_tokens, cfg.temperature, seed=cfg.seed + i)
        samples.append("".join(pieces))
    s = metrics["samples"] = generation_quality(samples, words_of(sample_lines(corpus, WORD_SAMPLE_BYTES)))
    print(f"evaluate: {len(samples)} samples of {cfg.max_new_tokens} tokens: {s['known_word_share']:.1%} known"
          f" words, distinct-2 {s['distinct_2']:.3f}, distinct-3 {s['distinct_3']:.3f}, longest repeat"
          f" {s['longest_repeat_words']} words", file=out, flush=True)
    return metrics

