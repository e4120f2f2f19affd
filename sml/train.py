"""The training loop: from token files to a trained GPT, resumable at any point.

One optimizer step:
1. set the learning rate for this step (``optim.lr_at``: warmup, then cosine decay);
2. ``grad_accum`` micro-batches: forward under autocast, loss / grad_accum, backward;
3. clip the gradient norm to ``grad_clip``, take the AdamW step, zero the gradients.
Every ``eval_interval`` steps the train and val losses are estimated on ``eval_iters``
fixed batches; every ``log_interval`` a row goes to the log; every ``checkpoint_interval``
(and at the end, and on Ctrl-C) a checkpoint is written.

Losses are in nats/token (natural log). ``meta.json`` of the token files gives characters
per token, which turns them into nats/char and bits/char: units that compare across
tokenizers, and with character-level models.

Left out on purpose: distributed training, and evaluation beyond the loss (``evaluate``).
"""

import dataclasses
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sml.atomic import atomic_open, write_json
from sml.batches import RandomWindows
from sml.checkpoint import (
    file_fingerprint,
    fingerprint_difference,
    load_checkpoint,
    run_fingerprint,
    save_checkpoint,
)
from sml.config import ModelConfig, TrainConfig
from sml.device import Runtime, pick_runtime, synchronize
from sml.errors import SMLError
from sml.model import GPT
from sml.optim import lr_at, make_optimizer
from sml.tokens import load_meta, load_tokens

# train_loss and val_loss are in nats/token (what the optimizer sees); the *_bits_per_char
# columns are the same losses per character of text, the unit every chart and table uses.
LOG_COLUMNS = ("step", "tokens", "train_loss", "val_loss", "train_bits_per_char", "val_bits_per_char",
               "lr", "tokens_per_s", "elapsed_s")


@dataclass(frozen=True)
class TrainFiles:
    """Where the train stage reads and writes."""

    tokens: Path  # directory with train.bin, val.bin, meta.json
    tokenizer: Path  # tokenizer.json the tokens were made with
    checkpoint: Path  # the resumable checkpoint (kept between runs)
    model: Path  # directory for the final weights and model.json
    log: Path  # TSV, one row per log interval
    metrics: Path  # JSON with the final figures


class Interrupted(SMLError):
    """Ctrl-C during training: the checkpoint was saved, rerunning resumes."""

    exit_code = 130  # the shell's code for "stopped by Ctrl-C"


def train(model_cfg: ModelConfig, cfg: TrainConfig, files: TrainFiles,
          on_step: Callable[[int], None] | None = None, out=sys.stdout) -> dict:
    """Train (or resume) a GPT; write checkpoint, final model, log and metrics. Returns the metrics."""
    runtime = pick_runtime(cfg.device, cfg.dtype, cfg.compile)
    torch.manual_seed(cfg.seed)
    meta = load_meta(files.tokens)
    train_tokens, val_tokens = load_tokens(files.tokens, "train"), load_tokens(files.tokens, "val")
    fingerprint = run_fingerprint(model_cfg, cfg, file_fingerprint(files.tokenizer), meta)

    model = GPT(model_cfg, meta["vocab_size"]).to(runtime.device)
    optimizer = make_optimizer(model, cfg, runtime.device)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.use_scaler)
    sampler = RandomWindows(train_tokens, model_cfg.block_size, cfg.batch_size, cfg.seed, runtime.device)
    # What a checkpoint carries besides tensors: the step, the log, and the log window in
    # progress (so a resumed run logs exactly what an uninterrupted one would).
    # ``schedule`` lists where train.max_iters changed ("train longer", see _resume): the
    # cosine of the steps from ``from_step`` on ran to that segment's ``max_iters``.
    run = {"step": 0, "elapsed_s": 0.0, "history": [], "window": {"steps": 0, "loss": 0.0, "seconds": 0.0},
           "schedule": [{"from_step": 0, "max_iters": cfg.max_iters}]}
    resumed = _resume(files.checkpoint, fingerprint, cfg, model, optimizer, scaler, sampler, run, out)
    forward = torch.compile(model) if runtime.compile else model

    tokens_per_step = cfg.batch_size * cfg.grad_accum * model_cfg.block_size
    bits_per_nat = {split: meta[split]["tokens"] / meta[split]["chars"] / math.log(2) for split in ("train", "val")}
    _print_header(model, runtime, cfg, tokens_per_step, run["step"] if resumed else None, out)
    progress = Progress(cfg.max_iters, run["step"], out)

    def checkpoint(window_seconds: float) -> None:
        run["window"] = {"steps": window_steps, "loss": loss_sum.item(), "seconds": window_seconds}
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scaler": scaler.state_dict(), "sampler": sampler.state_dict(),
                 "rng": _rng_state(runtime), "run": run, "fingerprint": fingerprint}
        save_checkpoint(files.checkpoint, state, {"step": run["step"], "fingerprint": fingerprint})

    window_start = time.perf_counter() - run["window"]["seconds"]
    window_steps = run["window"]["steps"]
    loss_sum = torch.tensor(run["window"]["loss"], device=runtime.device)
    with StopOnCtrlC() as ctrl_c:
        while run["step"] < cfg.max_iters:
            if ctrl_c.requested:  # between two steps, where model, optimizer and RNGs agree
                checkpoint(window_seconds=time.perf_counter() - window_start)
                raise Interrupted(f"interrupted at step {run['step']}: checkpoint saved to"
                                  f" {files.checkpoint}; rerun to resume")
            step = run["step"]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg)
            loss_sum += train_step(forward, model, optimizer, scaler, sampler, cfg, runtime)
            run["step"] = step = step + 1
            window_steps += 1
            if on_step is not None:
                on_step(step)
            last = step == cfg.max_iters
            if step % cfg.log_interval and step % cfg.eval_interval and step % cfg.checkpoint_interval \
                    and not last:
                continue
            # Log, evaluate or checkpoint: time to look at the numbers (this syncs the GPU).
            synchronize(runtime.device)
            window_s = time.perf_counter() - window_start
            run["elapsed_s"] += window_s
            train_loss = loss_sum.item() / window_steps
            if not math.isfinite(train_loss):
                raise SMLError(
                    f"loss is {train_loss} at step {step} (lr {lr_at(step - 1, cfg):.2e}): stopped;"
                    f" the last good checkpoint ({files.checkpoint}) is kept. Lower train.lr or"
                    " raise train.warmup_iters, then rerun"
                )
            row = {"step": step, "tokens": step * tokens_per_step, "train_loss": train_loss, "val_loss": None,
                   "train_bits_per_char": train_loss * bits_per_nat["train"], "val_bits_per_char": None,
                   "lr": lr_at(step - 1, cfg), "tokens_per_s": window_steps * tokens_per_step / window_s,
                   "elapsed_s": run["elapsed_s"]}
            if step % cfg.eval_interval == 0 or last:
                row["val_loss"] = estimate_loss(forward, model, val_tokens, model_cfg, cfg, runtime)
                row["val_bits_per_char"] = row["val_loss"] * bits_per_nat["val"]
            run["history"].append(row)
            _write_log(files.log, run["history"])
            progress.update(row)
            window_steps = 0
            loss_sum.zero_()
            if step % cfg.checkpoint_interval == 0 or last:
                checkpoint(window_seconds=0.0)
            window_start = time.perf_counter()
    progress.close()
    return _finish(model, model_cfg, cfg, files, run, fingerprint, bits_per_nat, tokens_per_step,
                   train_tokens, runtime, out)


def train_step(forward, model: GPT, optimizer, scaler, sampler, cfg: TrainConfig,
                    runtime: Runtime) -> torch.Tensor:
    """One optimizer step over ``grad_accum`` micro-batches; returns the mean loss (a 0-d tensor).

    The learning rate must already be set in ``optimizer``. ``bench/train.py`` times this.
    """
    total = torch.zeros((), device=runtime.device)
    for _ in range(cfg.grad_accum):
        x, y = sampler.next()
        with runtime.autocast():
            _, loss = forward(x, y)
        loss = loss / cfg.grad_accum  # so the accumulated gradient is the mean over micro-batches
        scaler.scale(loss).backward()
        total += loss.detach()
    if cfg.grad_clip > 0:
        scaler.unscale_(optimizer)  # clip the true gradient, not the scaled one
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return total


@torch.no_grad()
def estimate_loss(forward, model: GPT, tokens, model_cfg: ModelConfig, cfg: TrainConfig,
                  runtime: Runtime) -> float:
    """Mean loss (nats/token) over ``eval_iters`` batches, the same batches every time.

    ``forward`` is the model or its compiled version; ``model`` the module (for eval mode).
    """
    model.eval()
    windows = RandomWindows(tokens, model_cfg.block_size, cfg.batch_size, cfg.seed + 1, runtime.device)
    total = torch.zeros((), device=runtime.device)
    for _ in range(cfg.eval_iters):
        x, y = windows.next()
        with runtime.autocast():
            total += forward(x, y)[1].float()
    model.train()
    return total.item() / cfg.eval_iters


def _finish(model, model_cfg, cfg, files, run, fingerprint, bits_per_nat, tokens_per_step,
            train_tokens, runtime, out) -> dict:
    """Final figures, the exported model, the log and the metrics JSON.

    Also reached straight from a finished checkpoint (a rerun whose loop has nothing to do),
    so it writes every output itself.
    """
    last = run["history"][-1]
    val_loss = last["val_loss"]
    train_s = run["elapsed_s"]
    metrics = {
        "val_loss": val_loss,  # nats/token
        "val_nats_per_char": val_loss * bits_per_nat["val"] * math.log(2),
        "val_bits_per_char": val_loss * bits_per_nat["val"],
        "train_loss": estimate_loss(model, model, train_tokens, model_cfg, cfg, runtime),
        "tokens_per_s": cfg.max_iters * tokens_per_step / train_s if train_s else 0.0,
        "train_seconds": train_s,
        "steps": run["step"],
        "parameters": model.param_counts()["total"],
    }
    files.model.mkdir(parents=True, exist_ok=True)
    with atomic_open(files.model / "model.pt", "wb") as f:
        torch.save(model.state_dict(), f)
    write_json(files.model / "model.json", {
        "model": asdict(model_cfg), "vocab_size": model.vocab_size,
        "tokenizer_sha256": fingerprint["tokenizer_sha256"], "steps": run["step"], "metrics": metrics,
        "train": asdict(cfg), "schedule": run["schedule"],
    })
    _write_log(files.log, run["history"])
    write_json(files.metrics, metrics)
    print(f"done: val {val_loss:.4f} nats/token = {metrics['val_nats_per_char']:.4f} nats/char"
          f" = {metrics['val_bits_per_char']:.4f} bits/char; {metrics['tokens_per_s']:,.0f} tokens/s;"
          f" {train_s:.1f} s of training", file=out)
    return metrics


def _resume(path: Path, fingerprint: dict, cfg: TrainConfig, model, optimizer, scaler, sampler, run: dict,
            out) -> bool:
    """Load the checkpoint at ``path`` into the objects if it belongs to this run.

    A run that differs only in ``train.max_iters`` continues too ("train longer"): the
    steps already taken stay as they were, and from the checkpoint's step on the learning
    rate follows the cosine of the new ``max_iters``. That is said in one line, since it
    is not the run that the new ``max_iters`` would have given from step 0.
    """
    if not path.exists():
        return False
    state = load_checkpoint(path, next(model.parameters()).device)
    saved = state.get("fingerprint", {})
    difference = fingerprint_difference(saved, fingerprint)
    saved_max_iters = saved.get("train", {}).get("max_iters")
    longer = difference is not None and saved_max_iters is not None and fingerprint_difference(
        saved, _with_max_iters(fingerprint, saved_max_iters)) is None
    step = state["run"]["step"]
    if longer and step > cfg.max_iters:
        print(f"not resuming {path}: it is at step {step:,}, past train.max_iters {cfg.max_iters:,};"
              " starting at step 0", file=out)
        return False
    if difference and not longer:
        print(f"not resuming {path}: it is from another run ({difference}); starting at step 0", file=out)
        return False
    run["schedule"] = [{"from_step": 0, "max_iters": saved_max_iters}]  # checkpoints from before "schedule"
    if longer:
        old_cfg = dataclasses.replace(cfg, max_iters=saved_max_iters)
        print(f"train longer: train.max_iters {saved_max_iters:,} -> {cfg.max_iters:,}, resuming at step"
              f" {step:,}: the learning rate goes from {lr_at(step - 1, old_cfg):.2e} to"
              f" {lr_at(step, cfg):.2e} and follows the cosine to {cfg.min_lr:.2e} at step {cfg.max_iters:,}"
              f" (steps 1-{step:,} keep the schedule they had)", file=out)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    sampler.load_state_dict(state["sampler"])
    _set_rng_state(state["rng"])
    run.update(state["run"])
    if longer:
        run["schedule"] = [*run["schedule"], {"from_step": step, "max_iters": cfg.max_iters}]
    return True


def _with_max_iters(fingerprint: dict, max_iters: int) -> dict:
    return {**fingerprint, "train": {**fingerprint["train"], "max_iters": max_iters}}


def _rng_state(runtime: Runtime) -> dict:
    state = {"torch": torch.get_rng_state()}
    if runtime.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(runtime.device)
    elif runtime.device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu())
    if "mps" in state:
        torch.mps.set_rng_state(state["mps"].cpu())


def _write_log(path: Path, history: list[dict]) -> None:
    """Rewrite the whole TSV log (a few hundred rows): what is on disk matches the checkpoint."""
    lines = ["\t".join(LOG_COLUMNS)]
    for row in history:
        lines.append("\t".join("" if row.get(c) is None else f"{row[c]:.6g}" for c in LOG_COLUMNS))
    with atomic_open(path) as f:
        f.write("\n".join(lines) + "\n")


def _print_header(model: GPT, runtime: Runtime, cfg: TrainConfig, tokens_per_step: int,
                  resumed_at: int | None, out) -> None:
    counts = model.param_counts()
    parts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items() if k != "total")
    print(f"model: {counts['total'] / 1e6:.2f}M parameters ({parts})", file=out)
    print(f"model: {model.flops_per_token() / 1e6:.1f} MFLOP/token (forward + backward)", file=out)
    print(f"train: {runtime.describe()}; {tokens_per_step:,} tokens/step; {cfg.max_iters:,} steps"
          + (f"; resuming at step {resumed_at:,}" if resumed_at is not None else ""), file=out)


class StopOnCtrlC:
    """Turn Ctrl-C into a request that the loop honours at the next step boundary.

    A checkpoint taken in the middle of a step (batches drawn, gradients half-summed) would
    not resume exactly, so the first Ctrl-C only sets ``requested``. A second one stops at
    once, saving nothing: the last checkpoint stays as it was.
    """

    def __enter__(self) -> "StopOnCtrlC":
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():  # signals reach only it
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step (again to stop at once, unsaved)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Progress:
    """A one-line progress bar on a terminal; plain log lines otherwise (CI, DVC, files).

    The time left is this session's wall time per step (evaluations and compilation
    included) times the steps still to go.
    """

    def __init__(self, total: int, start_step: int, out):
        self.total, self.out = total, out
        self.start_step, self.start_time = start_step, time.perf_counter()
        self.tty = hasattr(out, "isatty") and out.isatty()

    def update(self, row: dict) -> None:
        val = f" val {row['val_bits_per_char']:.3f}" if row["val_loss"] is not None else ""
        done = row["step"] - self.start_step
        left = (time.perf_counter() - self.start_time) / done * (self.total - row["step"]) if done else 0.0
        text = (f"step {row['step']:>6}/{self.total}  train {row['train_bits_per_char']:.3f}{val} bits/char"
                f"  lr {row['lr']:.2e}  {row['tokens_per_s']:,.0f} tokens/s"
                f"  {duration(row['elapsed_s'])}, {duration(left)} left")
        if self.tty:
            bar = int(30 * row["step"] / self.total)
            print(f"\r[{'#' * bar}{'.' * (30 - bar)}] {text}", end="" if val == "" else "\n",
                  file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=self.out)


def duration(seconds: float) -> str:
    """A time span for people.

    >>> duration(42.4), duration(185), duration(7260)
    ('42 s', '3 min 05 s', '2 h 01 min')
    """
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
