"""Evaluation: how good is the model, in units that compare across models and tokenizers.

**Loss over a whole split**, deterministically: the split is cut into consecutive windows
of ``block_size`` tokens (the last one shorter) and every token is predicted once, from
the tokens before it in its window. The mean is reported as
- nats/token (the training loss) and perplexity (e^loss: "as unsure as a uniform choice
  among this many tokens");
- nats/char and bits/char: per character of text, so a BPE model compares with a
  character-level one (bits/char = nats/char / ln 2);
- bits/byte: per UTF-8 byte, the unit that compares across languages and scripts.

**A floor to compare with**: a bigram model on the same tokens (the next token predicted
from the current one alone, counts from the train split, smoothed toward the unigram
distribution). A transformer that does not beat it has learned nothing about context.

**Generated text**, from fixed prompts and seeds: the share of generated words that occur
in the training text (made-up words lower it), distinct-2 and distinct-3 (unique word pairs
and triples over all pairs and triples: low means repetitive), and the longest word n-gram
repeated within one sample (loops show up here).

Left out on purpose: human judgement, benchmarks beyond the corpus's own val split, and
the evaluate stage's loading and printing (``sml/run/evaluation.py``).
"""

import math
import re
from collections.abc import Iterable

import numpy as np
import torch

from sml.data.tokens import PairCounts, chunks, drop_pages
from sml.model import GPT
from sml.run.device import Runtime
from sml.tokenizer import Tokenizer

WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


def text_loss(model: GPT, tok: Tokenizer, text: str) -> dict:
    """The model's loss on any ``text``, in every unit (as for a split: windows of block_size).

    ``text`` needs at least two tokens: the first is only context, the rest are predicted.
    """
    ids = tok.encode(text, special="allow")
    if len(ids) < 2:
        raise ValueError(f"text of {len(ids)} token(s): need at least 2 to predict one")
    runtime = Runtime(next(model.parameters()).device, torch.float32, compile=False)  # where the model already is
    loss = split_loss(model, np.array(ids), runtime, batch_size=8)
    # The first token is never predicted, so count only what follows it.
    rest = text.encode("utf-8")[len(tok.decode_bytes(ids[:1])):]
    counts = {"tokens": len(ids) - 1, "chars": len(rest.decode("utf-8", errors="replace")), "bytes": len(rest)}
    return loss_units(loss, counts) | {"tokens": counts["tokens"]}


@torch.no_grad()
def split_loss(model: GPT, tokens: np.ndarray, runtime: Runtime, batch_size: int,
               max_tokens: int | None = None) -> float:
    """Mean next-token loss (nats/token) over ``tokens``, window by window.

    The whole split, or at most ``max_tokens`` of it (``evaluate.max_tokens``: windows
    evenly spread over the split, see ``scored_windows``). Only one batch of windows is
    turned into int64 at a time, so memory does not grow with the split.
    """
    model.eval()
    T = model.cfg.block_size
    starts, whole = scored_windows(len(tokens), T, max_tokens)
    offsets = np.arange(T + 1)
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        windows = torch.from_numpy(np.asarray(tokens[starts[i : i + batch_size, None] + offsets], dtype=np.int64))
        total += _summed_loss(model, windows[:, :-1], windows[:, 1:], runtime)  # (B, T) inputs and targets
        count += windows[:, 1:].numel()
    tail_start = (len(tokens) - 1) // T * T  # the last, shorter window: part of a whole split
    if whole and len(tokens) - 1 > tail_start:
        rest = torch.from_numpy(np.asarray(tokens[tail_start:], dtype=np.int64))
        total += _summed_loss(model, rest[:-1][None], rest[1:][None], runtime)
        count += len(rest) - 1
    drop_pages(tokens)  # at most max_tokens were read, spread over the file: let them go
    return total / count


def scored_windows(n_tokens: int, block_size: int, max_tokens: int | None) -> tuple[np.ndarray, bool]:
    """Where the scored windows of a split start, and whether they cover it whole.

    Whole: every full window, back to back (plus the shorter tail, in ``split_loss``).
    Capped: ``max_tokens // block_size`` windows at evenly spaced places, first to last.

    >>> scored_windows(10, 3, None)
    (array([0, 3, 6]), True)
    >>> scored_windows(1001, 10, 30)
    (array([  0, 500, 990]), False)
    """
    n_windows = (n_tokens - 1) // block_size
    if max_tokens is None or n_tokens - 1 <= max_tokens:
        return np.arange(n_windows) * block_size, True
    picked = np.linspace(0, n_windows - 1, max(1, max_tokens // block_size)).round().astype(np.int64)
    return np.unique(picked) * block_size, False


def _summed_loss(model: GPT, x: torch.Tensor, y: torch.Tensor, runtime: Runtime) -> float:
    x, y = x.to(runtime.device), y.to(runtime.device)
    with runtime.autocast():
        logits, _ = model(x)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").item()


def loss_units(nats_per_token: float, counts: dict) -> dict:
    """One loss in every unit, given the split's ``tokens``, ``chars`` and ``bytes`` counts.

    >>> loss_units(2.0, {"tokens": 10, "chars": 20, "bytes": 20})["bits_per_char"]
    1.4427
    """
    nats_per_char = nats_per_token * counts["tokens"] / counts["chars"]
    return {
        "nats_per_token": round(nats_per_token, 4),
        "perplexity": round(math.exp(nats_per_token), 2),
        "nats_per_char": round(nats_per_char, 4),
        "bits_per_char": round(nats_per_char / math.log(2), 4),
        "bits_per_byte": round(nats_per_token * counts["tokens"] / counts["bytes"] / math.log(2), 4),
    }


def bigram_loss(train: np.ndarray, val: np.ndarray, vocab_size: int, prior_weight: float = 1.0,
                chunk: int = 1 << 22) -> float:
    """Val nats/token of a token-bigram model counted on ``train``.

    P(b | a) = (count(a, b) + w * P(b)) / (count(a) + w), with P(b) the add-one unigram:
    pairs never seen in train still get probability, in proportion to how common b is.
    Counted ``chunk`` tokens at a time, so memory depends on the vocabulary and the number
    of distinct pairs, never on the length of the splits (memory maps stay on disk).
    """
    V = vocab_size
    unigram, firsts = np.zeros(V), np.zeros(V)
    pairs = PairCounts(V)
    for piece in chunks(train, chunk, overlap=1):  # one token of overlap: the pair across the border
        unigram += np.bincount(piece[:chunk], minlength=V)  # the overlap token counts in the next chunk
        firsts += np.bincount(piece[:-1], minlength=V)
        pairs.add(piece[:-1] * V + piece[1:])
    unigram = (unigram + 1.0) / (len(train) + V)
    total, count = 0.0, 0
    for piece in chunks(val, chunk, overlap=1, stop=max(len(val) - 1, 0)):
        a, b = piece[:-1], piece[1:]
        probs = (pairs.lookup(a * V + b) + prior_weight * unigram[b]) / (firsts[a] + prior_weight)
        total += float(-np.log(probs).sum())
        count += len(a)
    return total / count


def generation_quality(samples: list[str], known_words: set[str]) -> dict:
    """Word-level measures of generated text (see the module docstring).

    >>> generation_quality(["the cat the cat the cat"], {"the", "cat"})["longest_repeat_words"]
    4
    """
    words_per_sample = [[w.lower() for w in WORD.findall(s)] for s in samples]
    words = [w for ws in words_per_sample for w in ws]
    return {
        "known_word_share": round(sum(w in known_words for w in words) / max(len(words), 1), 4),
        "distinct_2": round(_distinct(words_per_sample, 2), 4),
        "distinct_3": round(_distinct(words_per_sample, 3), 4),
        "longest_repeat_words": max((_longest_repeat(ws) for ws in words_per_sample), default=0),
        "words": len(words),
    }


WORD_SAMPLE_BYTES = 20_000_000  # the known-word set is read from at most about this much train text


def words_of(lines: Iterable[str]) -> set[str]:
    """The set of (lowercased) words in some text."""
    found: set[str] = set()
    for line in lines:
        found.update(w.lower() for w in WORD.findall(line))
    return found


def _distinct(words_per_sample: list[list[str]], n: int) -> float:
    grams = [tuple(ws[i : i + n]) for ws in words_per_sample for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _longest_repeat(words: list[str]) -> int:
    """Length of the longest word n-gram that occurs at least twice (overlaps allowed)."""
    longest = 0
    n = 1
    while n <= len(words) - 1:
        seen: set[tuple[str, ...]] = set()
        repeated = False
        for i in range(len(words) - n + 1):
            gram = tuple(words[i : i + n])
            if gram in seen:
                repeated = True
                break
            seen.add(gram)
        if not repeated:
            break
        longest = n
        n += 1
    return longest
