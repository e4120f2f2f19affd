"""Plots: every figure is drawn from a real (tiny) run and written as a PNG."""

import dataclasses

import torch

from sml.model import GPT
from sml.run.plots import plot_all
from sml.tokenizer import Tokenizer
from tests.conftest import SONNET
from tests.test_model import TINY


def test_every_figure_is_written(tmp_path):
    tok = Tokenizer.train(SONNET, 300, "gpt4")
    log = tmp_path / "log.tsv"
    log.write_text("step\ttokens\ttrain_loss\tval_loss\ttrain_bits_per_char\tval_bits_per_char\tlr\ttokens_per_s"
                   "\telapsed_s\n5\t640\t5.1\t\t2.45\t\t0.001\t1000\t1\n10\t1280\t4.2\t4.4\t2.02\t2.12\t0.0005\t1000\t2\n")
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, block_size=32), tok.vocab_size)
    info = {"train": {"lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 2, "max_iters": 10},
            "schedule": [{"from_step": 0, "max_iters": 10}]}
    paths = plot_all(log, model, info, tok, "ROMEO:\nBut, soft!", layer=5, out=tmp_path / "plots")
    assert [p.name for p in paths] == ["loss.png", "lr.png", "attention.png", "token_lengths.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_the_lr_curve_starts_at_step_1_and_follows_a_longer_run():
    from sml.optim import lr_at, lr_curve

    train = {"lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 10, "max_iters": 30}
    lrs = lr_curve(train, [{"from_step": 0, "max_iters": 20}, {"from_step": 20, "max_iters": 30}])
    assert len(lrs) == 30 and lrs[0] == 1e-4  # warmup from the first step, not the first log row
    C = dataclasses.make_dataclass("C", ["lr", "min_lr", "warmup_iters", "max_iters"])
    first, longer = C(**{**train, "max_iters": 20}), C(**train)
    assert lrs[19] == lr_at(19, first) < 2e-4  # the first 20 steps decayed toward step 20
    assert lrs[20] == lr_at(20, longer) > 5e-4  # then train longer: back up, down toward step 30


def test_a_budgeted_runs_lr_is_drawn_from_its_log_rows():
    from sml.run.plots import lr_figure

    rows = [{"step": 5.0, "lr": 1e-3}, {"step": 10.0, "lr": 5e-4}, {"step": 12.0, "lr": 1e-4}]
    schedule = {"lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 2, "max_iters": 1000}
    budgeted = lr_figure(rows, {"train": schedule | {"time_budget_s": 30.0}, "schedule": [{"from_step": 0,
                                                                                            "max_iters": 1000}]})
    lines = budgeted.axes[0].get_lines()
    assert len(lines) == 1 and list(lines[0].get_xdata()) == [5.0, 10.0, 12.0]  # no step-based curve
    assert "time budget of 30 s" in budgeted.axes[0].get_title()
    stepped = lr_figure(rows, {"train": schedule | {"time_budget_s": 0.0}, "steps": 12,
                               "schedule": [{"from_step": 0, "max_iters": 1000}]})
    assert len(stepped.axes[0].get_lines()[0].get_xdata()) == 12  # the schedule, step by step, to the last step


def test_a_budgeted_runs_warmup_is_drawn_step_by_step_and_a_short_last_row_leaves_the_loss_line():
    from sml.run.plots import loss_figure, lr_figure

    rows = [{"step": s, "tokens": 64.0 * s, "lr": 1e-3, "train_bits_per_char": 2.0 - s / 100,
             "val_bits_per_char": None} for s in (10.0, 20.0, 30.0, 31.0)]
    rows[-1]["train_bits_per_char"] = 0.5  # one batch's mean: noise, not a dip
    info = {"train": {"lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 4, "max_iters": 1000, "time_budget_s": 30.0},
            "schedule": [{"from_step": 0, "max_iters": 1000}], "warmup_lrs": [2.5e-4, 5e-4, 7.5e-4, 1e-3]}
    first = lr_figure(rows, info).axes[0].get_lines()[0]
    assert list(first.get_xdata()[:5]) == [1, 2, 3, 4, 10.0] and first.get_ydata()[0] == 2.5e-4
    train = loss_figure(rows).axes[0].get_lines()[0]
    assert list(train.get_xdata()) == [10.0, 20.0, 30.0]  # the 1-step row at 31 is left out
