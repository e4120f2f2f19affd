"""train.time_budget_s: a run stops when its training seconds are spent, the schedule follows the
clock, and an interrupted run resumes with the time it had left.

Time is faked (each step "takes" 0.5 s, evaluations none), so the tests see exact seconds
on any machine and assert no timing of their own.
"""

import dataclasses
import os
import signal
import time
import types

import pytest

import sml.run.progress as progress_module
import sml.train as train_module
from sml.optim import lr_at
from sml.run.progress import LOG_COLUMNS
from sml.train import Interrupted
from tests.test_train import TRAIN, data, run  # noqa: F401 (data: the fixture)

STEP_S = 0.5
BUDGET = dataclasses.replace(TRAIN, max_iters=1000, time_budget_s=10.0, log_interval=5, eval_interval=10,
                             checkpoint_interval=10, warmup_iters=5)


@pytest.fixture
def fake_clock(monkeypatch):
    """Every training step takes STEP_S seconds of a clock that nothing else moves."""
    now = [1000.0]
    fake = types.SimpleNamespace(perf_counter=lambda: now[0], monotonic=time.monotonic)
    monkeypatch.setattr(train_module, "time", fake)
    monkeypatch.setattr(progress_module, "time", fake)
    real = train_module.train_step

    def timed_step(r):
        now[0] += STEP_S
        return real(r)

    monkeypatch.setattr(train_module, "train_step", timed_step)


def rows(out) -> list[dict]:
    lines = (out / "log.tsv").read_text().splitlines()[1:]
    return [{k: float(v) if v else None for k, v in zip(LOG_COLUMNS, line.split("\t"), strict=True)}
            for line in lines]


def test_a_budgeted_run_stops_when_its_training_seconds_are_spent(data, tmp_path, fake_clock):  # noqa: F811
    metrics, text = run(data, tmp_path, BUDGET)
    # Step 1 is the warmup (compilation: not counted); steps 2-21 are the 20 x 0.5 s = 10 s of budget.
    assert metrics["steps"] == 21 and metrics["train_seconds"] == pytest.approx(10.0 + STEP_S)
    assert metrics["warmup_seconds"] == pytest.approx(STEP_S)
    log = rows(tmp_path)
    assert [r["step"] for r in log] == [5, 10, 15, 20, 21]
    assert log[-1]["val_loss"] is not None  # the last step is evaluated and checkpointed like any end
    assert "steps, 10/10 s" in text  # the progress line counts the budget's seconds


def test_the_schedule_follows_the_clock_when_it_is_nearer_its_end(data, tmp_path, fake_clock):  # noqa: F811
    run(data, tmp_path, BUDGET)
    log = {r["step"]: r["lr"] for r in rows(tmp_path)}
    # The 10th step (index 9) ran at 4.0 s of 10 (step 1 untimed; the clock measured at step 5,
    # 0.5 s a step since): 40% of the schedule, as if at step 400 of max_iters 1000.
    assert log[10] == pytest.approx(lr_at(400, BUDGET), rel=1e-5)
    # The last step started at 9.5 s: 95% of the way, just above min_lr.
    assert log[21] == pytest.approx(lr_at(950, BUDGET), rel=1e-5) and log[21] < 1.1 * BUDGET.min_lr
    # Far more steps than the budget allows: the steps alone would still be warming up / near the top.
    assert lr_at(20, BUDGET) > 2 * log[21]


def test_the_clock_is_read_before_the_first_log_step(data, tmp_path, fake_clock):  # noqa: F811
    cfg = dataclasses.replace(BUDGET, log_interval=20)  # one log row before the budget runs out
    metrics, _ = run(data, tmp_path, cfg)
    assert metrics["steps"] == 21
    log = {r["step"]: r["lr"] for r in rows(tmp_path)}
    # Read at steps 1, 2, 4, 8, 16: the 20th step (index 19) ran at 7.5 s (16 read) + 3 x 0.5 s = 9 s.
    assert log[20] == pytest.approx(lr_at(900, cfg), rel=1e-5)


def test_without_a_budget_the_schedule_is_the_steps(data, tmp_path, fake_clock):  # noqa: F811
    cfg = dataclasses.replace(BUDGET, time_budget_s=0.0, max_iters=30)
    metrics, _ = run(data, tmp_path, cfg)
    assert metrics["steps"] == 30
    log = {r["step"]: r["lr"] for r in rows(tmp_path)}
    assert log[10] == pytest.approx(lr_at(9, cfg), rel=1e-5) and log[30] == pytest.approx(lr_at(29, cfg), rel=1e-5)


def test_an_interrupted_budgeted_run_resumes_with_the_time_it_had_left(data, tmp_path, fake_clock):  # noqa: F811
    def ctrl_c_at_13(step):
        if step == 13:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="interrupted at step 13"):
        run(data, tmp_path, BUDGET, on_step=ctrl_c_at_13)
    metrics, text = run(data, tmp_path, BUDGET)
    assert "resuming at step 13" in text
    # 10 s of budget in all: the second session's first step (its warmup) is not counted, so one
    # step more than an uninterrupted run's 21.
    assert metrics["steps"] == 22
    assert metrics["train_seconds"] == pytest.approx(10.0 + 2 * STEP_S)
    assert metrics["warmup_seconds"] == pytest.approx(2 * STEP_S)
    assert [r["step"] for r in rows(tmp_path)] == [5, 10, 15, 20, 22]


def test_a_finished_budgeted_run_reruns_as_a_no_op(data, tmp_path, fake_clock):  # noqa: F811
    first, _ = run(data, tmp_path, BUDGET)
    again, text = run(data, tmp_path, BUDGET)
    assert again["steps"] == first["steps"] == 21 and again["val_loss"] == first["val_loss"]
    assert "resuming at step 21" in text


def test_raising_the_budget_trains_longer_from_the_checkpoint(data, tmp_path, fake_clock):  # noqa: F811
    run(data, tmp_path, BUDGET)
    metrics, text = run(data, tmp_path, dataclasses.replace(BUDGET, time_budget_s=15.0))
    assert "train longer: train.time_budget_s 10 -> 15 s, resuming at step 21 after 10.0 s of training" in text
    # 5 s more: the new session's first step (warmup) is not counted, then 10 x 0.5 s.
    assert metrics["steps"] == 32 and metrics["train_seconds"] == pytest.approx(15.0 + 2 * STEP_S)
    _, text = run(data, tmp_path, dataclasses.replace(BUDGET, time_budget_s=5.0))
    assert "it has trained 15.0 s, past train.time_budget_s 5; starting at step 0" in text
