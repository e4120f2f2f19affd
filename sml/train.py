"""The training loop: one optimizer step, repeated, with a look at the numbers now and then.

One step (``train_step``):
1. the learning rate for this step is already set (``optim.lr_at``: warmup, then a cosine);
2. ``grad_accum`` micro-batches: forward under autocast, loss / grad_accum, backward;
3. clip the gradient norm to ``grad_clip``, take the optimizer step, zero the gradients.

The loop (``loop``) sets the learning rate, takes a step, and at named moments (``Moments``)
looks: every ``log_interval`` steps a row goes to the log, every ``eval_interval`` the val
loss is measured, and when it is the best so far those weights are kept (``best.pt``). A val
loss that rises again means the model has started to memorize its train split, so after
``patience`` evaluations without a better one the run stops early. Every
``checkpoint_interval`` (and at the end, and on Ctrl-C) a checkpoint is written.

Losses are in nats/token (natural log); ``run.bits_per_char`` turns them into bits/char, a
unit that compares across tokenizers. The functions a learner can replace (the batches,
the loss, clipping, AdamW's update, the schedule) are called through ``run.model.parts``
(``sml/parts.py``), whoever wrote them.

Left out on purpose, beneath this file in ``sml/run/``: building the run, resuming it, the
time budget, several processes (DDP), the header and the export at the end (``trainer``).
"""

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from sml.batches import IGNORE, RandomWindows
from sml.optim import lr_at
from sml.run import budget
from sml.run.device import synchronize
from sml.run.errors import SMLError
from sml.run.progress import Progress, StopOnCtrlC, Window, peak_memory_gb, write_log
from sml.run.resume import save_best, save_run

if TYPE_CHECKING:
    from sml.run.state import Run


class Interrupted(SMLError):
    """Ctrl-C during training: the checkpoint was saved, rerunning resumes."""

    exit_code = 130  # the shell's code for "stopped by Ctrl-C"


class NonFiniteLoss(SMLError):
    """The loss became inf or nan: the run stops, keeping its last good checkpoint."""


def train_step(run: "Run") -> torch.Tensor:
    """One optimizer step over ``grad_accum`` micro-batches; returns the mean loss (a 0-d tensor).

    The learning rate must already be set in the optimizer. With DDP, gradients are averaged
    across ranks during the backward pass of the last micro-batch only (``no_sync`` skips the
    others: their gradients just add up locally). ``bench/train.py`` times this.
    """
    cfg = run.cfg
    total = torch.zeros((), device=run.runtime.device)
    for micro in range(cfg.grad_accum):
        x, y = run.sampler.next()  # (B, T) each: y is x shifted by one token
        last = micro == cfg.grad_accum - 1
        with contextlib.nullcontext() if run.ddp is None or last else run.ddp.no_sync():
            with run.runtime.autocast():
                _, loss = run.forward(x, y)
            loss = loss / cfg.grad_accum  # so the accumulated gradient is the mean over micro-batches
            run.scaler.scale(loss).backward()
        total += loss.detach()
    if cfg.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)  # clip the true gradient, not the scaled one
        grads = [p.grad for p in run.model.parameters() if p.grad is not None]
        run.model.parts.clip_grad_norm(grads, cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return total


@dataclass(frozen=True)
class Moments:
    """What happens after a step: a log row, a val loss, a checkpoint (each at its interval, all at the end)."""

    log: bool
    eval: bool
    checkpoint: bool

    @classmethod
    def at(cls, run: "Run") -> "Moments":
        if run.done:
            return cls.last()
        return cls(log=run.step % run.cfg.log_interval == 0, eval=run.step % run.cfg.eval_interval == 0,
                   checkpoint=run.step % run.cfg.checkpoint_interval == 0)

    @classmethod
    def last(cls) -> "Moments":
        """The end of a run: everything."""
        return cls(log=True, eval=True, checkpoint=True)


def loop(run: "Run", on_step: Callable[[int], None] | None = None) -> None:
    """Steps until max_iters, the time budget or an early stop; Ctrl-C saves a checkpoint and
    raises ``Interrupted``."""
    state = run.state
    progress = Progress(run.cfg.max_iters, run.step, run.out, run.cfg.time_budget_s, state.timed_s)
    window = Window(state.window, run.runtime.device)
    first = True
    with StopOnCtrlC(merge_s=1.0 if run.dist.world_size > 1 else 0.0) as ctrl_c:
        while not run.done:
            # Between two steps, where model, optimizer and RNGs agree. Ranks must stop at the
            # same step, so with several they agree at log steps (it costs a round trip).
            if ctrl_c.requested if run.dist.world_size == 1 else (
                    run.step % run.cfg.log_interval == 0 and run.dist.any(ctrl_c.requested)):
                state.window = window.saved()
                save_run(run)
                raise Interrupted(f"interrupted at step {run.step}: checkpoint saved to"
                                  f" {run.files.checkpoint}; rerun to resume")
            lr = lr_at(run.schedule_step, run.cfg, run.model.parts.lr_at)
            if run.step < run.cfg.warmup_iters:  # for lr.png: a budget's log rows may miss the warmup
                state.warmup_lrs.append(lr)
            for group in run.optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            if first:  # compiles the model (and warms up the allocator): timed apart from the rest
                first = False
                synchronize(run.runtime.device)
                start = time.perf_counter()
                window.add(train_step(run), timed=False)
                synchronize(run.runtime.device)
                seconds = time.perf_counter() - start
                state.warmup_s += seconds
                state.elapsed_s += seconds
                window.restart_clock()
            else:
                window.add(train_step(run))
            state.step += 1
            if on_step is not None:
                on_step(run.step)
            if budget.early_read(run.step, run.cfg.log_interval, run.cfg.time_budget_s):
                read_clock(run, window)  # a look (below) reads it too
            moments = Moments.at(run)
            if moments.log or moments.eval or moments.checkpoint:
                look(run, window, moments, progress)
    progress.close()


def look(run: "Run", window: Window, moments: Moments, progress: Progress) -> None:
    """Log, evaluate, keep the best weights, checkpoint: the moments when numbers are read (a sync)."""
    state = run.state
    seconds = read_clock(run, window)
    state.elapsed_s += seconds
    state.timed_steps += window.timed_steps
    state.timed_s += seconds
    if run.out_of_time:  # measured, not extrapolated: this look is the last one
        moments = Moments.last()
    lr = run.optimizer.param_groups[0]["lr"]  # the last step's (group 0 has lr_scale 1)
    train_loss = run.dist.mean(window.loss.item() / window.steps)
    if not math.isfinite(train_loss):
        raise NonFiniteLoss(f"loss is {train_loss} at step {run.step} (lr {lr:.2e}):"
                       f" stopped; the last good checkpoint ({run.files.checkpoint}) is kept. Lower {run.section}.lr"
                       f" or raise {run.section}.warmup_iters, then rerun")
    rate = window.timed_steps * run.tokens_per_step / seconds if window.timed_steps and seconds else None
    flops = rate * run.model.flops_per_token() if rate else None
    row = {"step": run.step, "tokens": run.step * run.tokens_per_step, "train_loss": train_loss,
           "val_loss": None, "train_bits_per_char": run.bits_per_char(train_loss, "train"),
           "val_bits_per_char": None, "lr": lr, "tokens_per_s": rate, "model_flops_per_s": flops,
           "mfu": flops / (run.estimates.peak_flops * run.dist.world_size) if flops else None,
           "peak_memory_gb": peak_memory_gb(run.runtime), "elapsed_s": state.elapsed_s}
    if moments.eval:
        row["val_loss"] = estimate_loss(run, "val")
        row["val_bits_per_char"] = run.bits_per_char(row["val_loss"], "val")
        keep_if_best(run, row["val_loss"])
    state.history.append(row)
    if run.dist.is_main:
        write_log(run.files.log, state.history)
    progress.update(row, state.timed_s)
    if len(state.history) == 1 and row["peak_memory_gb"] is not None:
        print(f"memory: tensors took {row['peak_memory_gb']:.2f} GB at peak so far (estimated"
              f" {run.estimates.tensors_gb:.2f} GB, without the CUDA runtime)", file=run.out)
    window.reset()
    if moments.checkpoint or run.stopped_early:
        state.window = window.saved()
        save_run(run)
    window.restart_clock()


def read_clock(run: "Run", window: Window) -> float:
    """Read the time budget's clock (a sync): the seconds of ``window`` so far, one figure for all ranks."""
    synchronize(run.runtime.device)
    seconds = run.dist.mean(window.elapsed())
    budget.read_clock(run.state.clock, run.step, run.state.timed_s + seconds,
                      run.state.timed_steps + window.timed_steps)
    return seconds


def keep_if_best(run: "Run", val_loss: float) -> None:
    """Save the weights when ``val_loss`` is the best so far; count evaluations since the best."""
    best = run.state.best
    if best.val_loss is None or val_loss < best.val_loss:
        best.step, best.val_loss, best.evals_since = run.step, val_loss, 0
        save_best(run)
    else:
        best.evals_since += 1
        if run.stopped_early:
            print(f"early stop at step {run.step:,}: val loss has not improved for {run.cfg.patience}"
                  f" evaluations; the best was {best.val_loss:.4f} nats/token at step {best.step:,}",
                  file=run.out)


@torch.no_grad()
def estimate_loss(run: "Run", split: str) -> float:
    """Mean loss (nats/token) on ``split``, the same tokens every time, shared out among ranks.

    A split no bigger than the ``eval_iters`` batches an estimate would draw is scored
    whole, window after window: exact, and fewer tokens than the random draws. A bigger
    one: ``eval_iters`` batches at fixed random offsets.
    """
    tokens, T, B = run.tokens[split], run.model_cfg.block_size, run.cfg.batch_size
    learn = run.learn[split] if run.learn is not None else None  # fine-tuning: the replies' tokens only
    if len(tokens) - 1 <= run.cfg.eval_iters * B * T:
        ids = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
        targets = ids[1:]
        if learn is not None:
            targets = targets.masked_fill(torch.from_numpy(np.asarray(learn[1:]) == 0), IGNORE)
        n = (len(ids) - 1) // T
        x, y = ids[: n * T].view(n, T), targets[: n * T].view(n, T)  # (n, T) each: consecutive windows
        batches = [(x[i : i + B], y[i : i + B]) for i in range(0, n, B)]
        if len(ids) - 1 > n * T:  # the rest: one shorter window
            batches.append((ids[n * T : -1][None], targets[n * T :][None]))
    else:
        windows = RandomWindows(tokens, T, B, run.cfg.seed + 1, torch.device("cpu"), learn=learn)
        batches = [windows.next() for _ in range(run.cfg.eval_iters)]
    counted = [int((y != IGNORE).sum()) for _, y in batches]  # the targets each batch's mean is over
    run.model.eval()
    total = torch.zeros((), dtype=torch.float64, device=run.runtime.device)
    for (x, y), n in list(zip(batches, counted, strict=True))[run.dist.rank :: run.dist.world_size]:
        if n == 0:  # nothing learned in this batch (fine-tuning): its mean would be 0 / 0
            continue
        x, y = x.to(run.runtime.device), y.to(run.runtime.device)
        with run.runtime.autocast():
            total += run.model(x, y)[1].double() * n
    run.model.train()
    return run.dist.sum(total.item()) / sum(counted)
