"""Plots: every figure is drawn from a real (tiny) run and written as a PNG."""

import dataclasses

import torch

from sml.model import GPT
from sml.plots import plot_all
from sml.tokenizer import Tokenizer
from tests.conftest import SONNET
from tests.test_model import TINY


def test_every_figure_is_written(tmp_path):
    tok = Tokenizer.train(SONNET, 300, "gpt4")
    log = tmp_path / "log.tsv"
    log.write_text("step\ttokens\ttrain_loss\tval_loss\tlr\ttokens_per_s\telapsed_s\n"
                   "5\t640\t5.1\t\t0.001\t1000\t1\n10\t1280\t4.2\t4.4\t0.0005\t1000\t2\n")
    meta = {s: {"tokens": 100, "chars": 300, "bytes": 300} for s in ("train", "val")}
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, block_size=32), tok.vocab_size)
    paths = plot_all(log, meta, model, tok, "ROMEO:\nBut, soft!", layer=5, out=tmp_path / "plots")
    assert [p.name for p in paths] == ["loss.png", "lr.png", "attention.png", "token_lengths.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
