"""Evaluation: whole-split loss, its units, the bigram floor, and generated-text measures."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from sml.evaluate import bigram_loss, generation_quality, loss_units, split_loss, text_loss, words_of
from sml.model import GPT
from sml.run.device import Runtime
from sml.tokenizer import Tokenizer
from tests.test_model import TINY

CPU = Runtime(torch.device("cpu"), torch.float32, compile=False)


def test_split_loss_predicts_every_token_once():
    torch.manual_seed(0)
    model = GPT(TINY, 50).eval()
    tokens = np.random.default_rng(0).integers(0, 50, 16 * 3 + 7).astype(np.uint16)  # 3 windows + a tail
    expected = []
    with torch.no_grad():
        for start in range(0, len(tokens) - 1, 16):
            window = torch.from_numpy(tokens[start : start + 17].astype(np.int64))
            logits, _ = model(window[:-1][None])
            expected.append(torch.nn.functional.cross_entropy(logits[0], window[1:], reduction="sum"))
    mean = float(sum(expected)) / (len(tokens) - 1)
    assert split_loss(model, tokens, CPU, batch_size=2) == pytest.approx(mean, rel=1e-5)


def test_text_loss_scores_any_text_like_a_split(sonnet):
    torch.manual_seed(0)
    tok = Tokenizer.train(sonnet, 300, "gpt4")
    model = GPT(TINY, 300).eval()
    text = "Shall I compare thee to a summer's day? Thou art more lovely and more temperate."
    ids = tok.encode(text)
    got = text_loss(model, tok, text)
    assert got["tokens"] == len(ids) - 1 and len(ids) > TINY.block_size  # two windows
    assert got["nats_per_token"] == pytest.approx(split_loss(model, np.array(ids), CPU, 8), abs=1e-4)
    first = tok.decode(ids[:1])
    assert got["nats_per_char"] == pytest.approx(got["nats_per_token"] * got["tokens"] / (len(text) - len(first)),
                                                 abs=1e-3)
    with pytest.raises(ValueError, match="need at least 2"):
        text_loss(model, tok, "a")


def test_loss_units():
    units = loss_units(math.log(100), {"tokens": 1000, "chars": 3000, "bytes": 3300})
    assert units["perplexity"] == 100.0
    assert units["nats_per_char"] == pytest.approx(math.log(100) / 3, abs=1e-4)
    assert units["bits_per_char"] == pytest.approx(math.log2(100) / 3, abs=1e-4)
    assert units["bits_per_byte"] == pytest.approx(math.log2(100) / 3.3, abs=1e-4)


def test_bigram_baseline_learns_what_a_bigram_can():
    cycle = np.tile(np.arange(10), 500)  # every token fully predicts the next one
    assert bigram_loss(cycle, cycle[:200], 10) < 0.01
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 10, 5000)  # nothing to learn: about ln 10
    assert bigram_loss(noise, rng.integers(0, 10, 1000), 10) == pytest.approx(math.log(10), abs=0.05)
    unseen = bigram_loss(np.tile(np.arange(5), 100), np.array([7, 8, 9]), 10)
    assert math.isfinite(unseen) and unseen > math.log(10)  # unseen pairs get a small probability


def test_generation_quality_measures():
    known = words_of(["To be, or not to be: that is the question."])
    q = generation_quality(["to be or not to be", "the question is zorbly"], known)
    assert q["known_word_share"] == pytest.approx(9 / 10)
    assert q["longest_repeat_words"] == 2  # "to be" twice
    assert q["distinct_2"] == pytest.approx(7 / 8)  # 8 pairs, "to be" repeated
    assert q["words"] == 10
    loop = generation_quality(["a b c a b c a b c"], {"a", "b", "c"})
    assert loop["longest_repeat_words"] == 6 and loop["distinct_3"] < 0.5


def test_a_model_that_learned_beats_the_bigram_floor_on_its_own_data():
    torch.manual_seed(0)
    seq = np.tile(np.array([1, 2, 3, 1, 4, 5] * 5 + [0]), 60).astype(np.uint16)  # needs 2 tokens of context
    model = GPT(dataclasses.replace(TINY, n_embd=32), 8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = torch.from_numpy(seq.astype(np.int64))
    for step in range(150):
        i = (step * 7) % (len(data) - 17)
        _, loss = model(data[i : i + 16][None], data[i + 1 : i + 17][None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert split_loss(model, seq, CPU, 4) < bigram_loss(seq, seq, 8) / 2


def test_the_bigram_floor_is_the_same_counted_in_chunks_and_sparsely(monkeypatch):
    import sml.evaluate as evaluate_module

    rng = np.random.default_rng(1)
    train, val = rng.integers(0, 40, 5000), rng.integers(0, 40, 700)
    exact = bigram_loss(train, val, 40)
    assert bigram_loss(train, val, 40, chunk=7) == pytest.approx(exact, rel=1e-12)  # chunk borders
    monkeypatch.setattr(evaluate_module.PairCounts, "DENSE_MAX", 10)  # as for a vocabulary too big for a table
    assert bigram_loss(train, val, 40, chunk=333) == pytest.approx(exact, rel=1e-12)


def test_a_capped_split_scores_evenly_spread_windows_and_says_so():
    from sml.evaluate import scored_windows

    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, block_size=8), 20)
    tokens = np.random.default_rng(0).integers(0, 20, 1001)
    starts, whole = scored_windows(len(tokens), 8, 80)
    assert not whole and len(starts) == 10 and starts[0] == 0 and starts[-1] == (1000 // 8 - 1) * 8
    capped = split_loss(model, tokens, CPU, 4, max_tokens=80)
    by_hand = np.mean([split_loss(model, tokens[s : s + 9], CPU, 1) for s in starts])
    assert capped == pytest.approx(by_hand, rel=1e-5)
    assert split_loss(model, tokens, CPU, 4, max_tokens=5000) == pytest.approx(split_loss(model, tokens, CPU, 4))
