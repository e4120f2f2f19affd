"""The training loop: from token files to a trained GPT, resumable at any point.

One optimizer step (``train_step``):
1. set the learning rate for this step (``optim.lr_at``: warmup, then cosine decay; on a time
   budget, ``budget.schedule_step`` says how far along the schedule the run is);
2. ``grad_accum`` micro-batches: forward under autocast, loss / grad_accum, backward;
3. clip the gradient norm to ``grad_clip``, take the optimizer step (AdamW, or Muon + AdamW), zero the gradients.

Around it, at named moments (``Moments``): every ``log_interval`` steps a row goes to the
log; every ``eval_interval`` the val loss is measured, and when it is the best so far
those weights are kept (``best.pt``, next to the checkpoint). A val loss that rises
again means the model has started to memorize its train split, so after ``patience``
evaluations without a better one the run stops early, and the model it exports is the
best one, not the last. Every ``checkpoint_interval`` (and at the end, and on Ctrl-C) a
checkpoint is written, so a rerun resumes.

Losses are in nats/token (natural log). ``meta.json`` of the token files gives characters
per token, which turns them into bits/char: a unit that compares across tokenizers.

With several processes (``sml.run.distributed``, torchrun) every rank runs this same loop on
its own batches; DDP averages the gradients, and rank 0 alone prints and writes files.

With ``impl.training: mine`` (``sml/learn/mine.py``) the learner's functions take each of these
places: ``get_batch`` (the batches), ``cross_entropy`` (the model's loss, the logged val
loss's too), ``clip_grad_norm``, ``adamw_step`` (AdamW's parameters; Muon's stay PyTorch's)
and ``lr_at``. The evaluate stage scores with SML's own loss whatever ``impl`` says.

Left out on purpose: evaluation beyond the loss (``evaluate``), how checkpoints are
written and resumed (``checkpoint``), and the progress display (``progress``).
"""

import contextlib
import io
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sml.batches import RandomWindows
from sml.config import ModelConfig, TrainConfig
from sml.data.tokens import check_vocab_size, load_meta, load_tokens
from sml.learn.mine import Mine
from sml.model import GPT, theirs
from sml.optim import Optimizers, lr_at, make_optimizer
from sml.run import budget, distributed
from sml.run.atomic import write_json, write_text_or_warn
from sml.run.checkpoint import file_fingerprint, load_checkpoint, run_fingerprint, save_torch, save_weights
from sml.run.device import Runtime, pick_runtime, synchronize
from sml.run.distributed import Dist
from sml.run.errors import SMLError
from sml.run.memory import check_fits, device_memory, estimate_training_memory, peak_flops
from sml.run.progress import LOG_RETRY, Progress, StopOnCtrlC, Window, log_text, peak_memory_gb
from sml.run.resume import resume_run, save_run
from sml.tokenizer import Tokenizer


@dataclass(frozen=True)
class TrainFiles:
    """Where the train stage reads and writes."""

    tokens: Path  # directory with train.bin, val.bin, meta.json
    tokenizer: Path  # tokenizer.json the tokens were made with
    checkpoint: Path  # the resumable checkpoint (kept between runs)
    model: Path  # directory for the exported weights and model.json
    log: Path  # TSV, one row per log interval
    metrics: Path  # JSON with the final figures

    @property
    def best(self) -> Path:
        """The best-validation weights so far: next to the checkpoint, kept and resumed with it."""
        return self.checkpoint.with_name("best.pt")


class Interrupted(SMLError):
    """Ctrl-C during training: the checkpoint was saved, rerunning resumes."""

    exit_code = 130  # the shell's code for "stopped by Ctrl-C"


@dataclass
class Run:
    """One training run's parts, so that each function below takes just the run."""

    model_cfg: ModelConfig
    cfg: TrainConfig
    files: TrainFiles
    runtime: Runtime
    dist: Dist
    model: GPT  # the weights: what is saved, exported and evaluated
    optimizer: Optimizers  # AdamW, or Muon + AdamW (sml.optim)
    scaler: torch.amp.GradScaler
    sampler: RandomWindows  # this rank's training batches
    tokens: dict[str, np.ndarray]  # "train" and "val", memory-mapped
    meta: dict  # token, character and byte counts per split (meta.json)
    fingerprint: dict  # what identifies the run (checkpoint.run_fingerprint)
    out: Any  # where rank 0 prints; other ranks print nowhere
    forward: Callable | None = None  # computes the loss: the model, wrapped in DDP and/or compiled
    ddp: Any = None  # the DistributedDataParallel wrapper when there are several ranks
    mine: Mine | None = None  # the learner's parts: the model's, and impl.training's functions
    # What the checkpoint carries besides tensors (see ``new_state``).
    state: dict = field(default_factory=dict)

    @property
    def step(self) -> int:
        return self.state["step"]

    @property
    def tokens_per_step(self) -> int:
        """Tokens of one optimizer step, all ranks together."""
        return self.cfg.batch_size * self.cfg.grad_accum * self.model_cfg.block_size * self.dist.world_size

    def bits_per_char(self, nats_per_token: float, split: str) -> float:
        counts = self.meta[split]
        return nats_per_token * counts["tokens"] / counts["chars"] / math.log(2)

    @property
    def stopped_early(self) -> bool:
        return self.cfg.patience > 0 and self.state["best"]["evals_since"] >= self.cfg.patience

    @property
    def out_of_time(self) -> bool:
        """The time budget (``train.time_budget_s``) is spent: see ``sml.run.budget``."""
        return budget.out_of_time(self.state["clock"], self.step, self.cfg.time_budget_s)

    @property
    def done(self) -> bool:
        return self.step >= self.cfg.max_iters or self.stopped_early or self.out_of_time

    def lr(self) -> float:
        """The learning rate of the next step (before ``lr_scale``)."""
        at = budget.schedule_step(self.step, self.state["clock"], self.cfg.max_iters, self.cfg.time_budget_s)
        return lr_at(at, self.cfg, theirs(self.mine, "lr_at"))  # mine: their schedule


def new_state(cfg: TrainConfig) -> dict:
    """A run's progress at step 0: what a checkpoint saves besides tensors.

    ``window``: the steps since the last log row (so a resumed run logs exactly what an
    uninterrupted one would). ``schedule``: where train.max_iters changed ("train longer",
    see ``resume.resume_run``). ``best``: the best val loss, its step, and how many
    evaluations have not beaten it. Seconds count training steps only, not evaluations;
    ``warmup_s`` is each session's first step (compilation), left out of tokens/s and of
    the time budget. ``clock``: the training seconds the time budget counts (``sml.run.budget``).
    """
    return {"step": 0, "elapsed_s": 0.0, "warmup_s": 0.0, "timed_steps": 0, "timed_s": 0.0, "history": [],
            "window": {"steps": 0, "loss": 0.0, "timed_steps": 0, "seconds": 0.0},
            "schedule": [{"from_step": 0, "max_iters": cfg.max_iters}],
            "best": {"step": None, "val_loss": None, "evals_since": 0}, "clock": budget.new_clock()}


def train(model_cfg: ModelConfig, cfg: TrainConfig, files: TrainFiles,
          on_step: Callable[[int], None] | None = None, out=None, mine: Mine | None = None) -> dict:
    """Train (or resume) a GPT; write checkpoint, best model, log and metrics. Returns the metrics.

    ``mine``: the learner's parts the model calls (``sml/learn/mine.py``; None: all SML's).

    Progress goes to ``out`` (default: sys.stdout as it is when called).
    """
    out = sys.stdout if out is None else out
    runtime = pick_runtime(cfg.device, cfg.dtype, cfg.compile, deterministic=cfg.deterministic,
                           local_rank=distributed.local_rank())
    env = distributed.start(runtime.device.type)
    try:
        run = build(model_cfg, cfg, files, runtime, env, out if env.is_main else io.StringIO(), mine)
        resumed_at = run.step if resume_run(run) else None
        wrap(run)
        print_header(run, resumed_at)
        if run.stopped_early:
            print(f"train: this run stopped early at step {run.step:,} (no better val loss for {cfg.patience}"
                  " evaluations): nothing to train; raise train.patience (0: off) to go on", file=run.out)
        loop(run, on_step)
        return finish(run)
    finally:
        distributed.stop(env)


def build(model_cfg: ModelConfig, cfg: TrainConfig, files: TrainFiles, runtime: Runtime, env: Dist,
          out, mine: Mine | None = None) -> Run:
    """The model, optimizer, scaler and this rank's sampler, at step 0."""
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    meta = load_meta(files.tokens)
    # The tokenizer is checked whole (a damaged one fails here), and against the token files.
    check_vocab_size(files.tokens, Tokenizer.load(files.tokenizer).vocab_size, files.tokenizer)
    tokens = {split: load_tokens(files.tokens, split) for split in ("train", "val")}
    check_splits(tokens, model_cfg.block_size, files.tokens)
    resolved = {"device": runtime.device.type, "dtype": str(runtime.dtype).removeprefix("torch."),
                "nproc": env.world_size}
    fingerprint = run_fingerprint(model_cfg, cfg, file_fingerprint(files.tokenizer), meta, resolved, mine)
    model = GPT(model_cfg, meta["vocab_size"], mine).to(runtime.device)
    if env.rank:  # each rank its own dropout masks and batches (seed + 1 draws the eval batches)
        torch.manual_seed(cfg.seed + 1000 * env.rank)
    sampler = RandomWindows(tokens["train"], model_cfg.block_size, cfg.batch_size, cfg.seed + 1000 * env.rank,
                            runtime.device, theirs(mine, "get_batch"))  # mine: their batches
    optimizer = make_optimizer(model, cfg, runtime.device, theirs(mine, "adamw_step"))  # mine: their AdamW
    return Run(model_cfg, cfg, files, runtime, env, model, optimizer,
               torch.amp.GradScaler(runtime.device.type, enabled=runtime.use_scaler), sampler, tokens,
               meta, fingerprint, out, state=new_state(cfg), mine=mine)


def check_splits(tokens: dict, block_size: int, where: Path) -> None:
    """Refuse, before any step, splits too small to train on (one window) or to score (two tokens)."""
    if len(tokens["train"]) <= block_size:
        raise SMLError(f"{where / 'train.bin'}: {len(tokens['train']):,} tokens cannot fill one window of"
                       f" model.block_size {block_size:,} + 1: lower model.block_size or use a bigger corpus")
    if len(tokens["val"]) < 2:
        raise SMLError(f"{where / 'val.bin'}: {len(tokens['val'])} token(s), and scoring needs at least 2:"
                       " raise data.val_fraction or use a bigger corpus")


def wrap(run: Run) -> None:
    """What computes the loss: DDP around the model when there are several ranks, compiled if asked."""
    forward = run.model
    if run.dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [run.runtime.device.index] if run.runtime.device.type == "cuda" else None
        forward = run.ddp = DistributedDataParallel(run.model, device_ids=ids)
    run.forward = torch.compile(forward) if run.runtime.compile else forward


@dataclass(frozen=True)
class Moments:
    """What happens after a step: a log row, a val loss, a checkpoint (each at its interval, all at the end)."""

    log: bool
    eval: bool
    checkpoint: bool

    @classmethod
    def at(cls, run: Run) -> "Moments":
        if run.done:
            return cls.last()
        return cls(log=run.step % run.cfg.log_interval == 0, eval=run.step % run.cfg.eval_interval == 0,
                   checkpoint=run.step % run.cfg.checkpoint_interval == 0)

    @classmethod
    def last(cls) -> "Moments":
        """The end of a run: everything."""
        return cls(log=True, eval=True, checkpoint=True)


def loop(run: Run, on_step: Callable[[int], None] | None) -> None:
    """Steps until max_iters or an early stop; Ctrl-C saves a checkpoint and raises ``Interrupted``."""
    progress = Progress(run.cfg.max_iters, run.step, run.out, run.cfg.time_budget_s, run.state["timed_s"])
    window = Window(run.state["window"], run.runtime.device)
    first = True
    with StopOnCtrlC(merge_s=1.0 if run.dist.world_size > 1 else 0.0) as ctrl_c:
        while not run.done:
            # Between two steps, where model, optimizer and RNGs agree. Ranks must stop at the
            # same step, so with several they agree at log steps (it costs a round trip).
            if ctrl_c.requested if run.dist.world_size == 1 else (
                    run.step % run.cfg.log_interval == 0 and run.dist.any(ctrl_c.requested)):
                run.state["window"] = window.saved()
                save_run(run)
                raise Interrupted(f"interrupted at step {run.step}: checkpoint saved to"
                                  f" {run.files.checkpoint}; rerun to resume")
            for group in run.optimizer.param_groups:
                group["lr"] = run.lr() * group["lr_scale"]
            if first:  # compiles the model (and warms up the allocator): timed apart from the rest
                first = False
                synchronize(run.runtime.device)
                start = time.perf_counter()
                window.add(train_step(run), timed=False)
                synchronize(run.runtime.device)
                seconds = time.perf_counter() - start
                run.state["warmup_s"] += seconds
                run.state["elapsed_s"] += seconds
                window.restart_clock()
            else:
                window.add(train_step(run))
            run.state["step"] += 1
            if on_step is not None:
                on_step(run.step)
            if budget.early_read(run.step, run.cfg.log_interval, run.cfg.time_budget_s):
                read_clock(run, window)  # a look (below) reads it too
            moments = Moments.at(run)
            if moments.log or moments.eval or moments.checkpoint:
                look(run, window, moments, progress)
    progress.close()


def read_clock(run: Run, window: Window) -> float:
    """Read the time budget's clock (a sync): the seconds of ``window`` so far, one figure for all ranks."""
    synchronize(run.runtime.device)
    seconds = run.dist.mean(window.elapsed())
    budget.read_clock(run.state["clock"], run.step, run.state["timed_s"] + seconds,
                      run.state["timed_steps"] + window.timed_steps)
    return seconds


def look(run: Run, window: Window, moments: Moments, progress: Progress) -> None:
    """Log, evaluate, keep the best weights, checkpoint: the moments when numbers are read (a sync)."""
    seconds = read_clock(run, window)
    run.state["elapsed_s"] += seconds
    run.state["timed_steps"] += window.timed_steps
    run.state["timed_s"] += seconds
    if run.out_of_time:  # measured, not extrapolated: this look is the last one
        moments = Moments.last()
    lr = run.optimizer.param_groups[0]["lr"]  # the last step's (group 0 has lr_scale 1)
    train_loss = run.dist.mean(window.loss.item() / window.steps)
    if not math.isfinite(train_loss):
        raise SMLError(f"loss is {train_loss} at step {run.step} (lr {lr:.2e}):"
                       f" stopped; the last good checkpoint ({run.files.checkpoint}) is kept. Lower train.lr"
                       " or raise train.warmup_iters, then rerun")
    rate = window.timed_steps * run.tokens_per_step / seconds if window.timed_steps and seconds else None
    flops = rate * run.model.flops_per_token() if rate else None
    row = {"step": run.step, "tokens": run.step * run.tokens_per_step, "train_loss": train_loss,
           "val_loss": None, "train_bits_per_char": run.bits_per_char(train_loss, "train"),
           "val_bits_per_char": None, "lr": lr, "tokens_per_s": rate,
           "model_flops_per_s": flops, "mfu": flops / (run.state["peak_flops"] * run.dist.world_size)
           if flops else None, "peak_memory_gb": peak_memory_gb(run.runtime), "elapsed_s": run.state["elapsed_s"]}
    if moments.eval:
        row["val_loss"] = estimate_loss(run, "val")
        row["val_bits_per_char"] = run.bits_per_char(row["val_loss"], "val")
        keep_if_best(run, row["val_loss"])
    run.state["history"].append(row)
    if run.dist.is_main:
        write_text_or_warn(run.files.log, log_text(run.state["history"]), then=LOG_RETRY)
    progress.update(row, run.state["timed_s"])
    if len(run.state["history"]) == 1 and row["peak_memory_gb"] is not None:
        print(f"memory: tensors took {row['peak_memory_gb']:.2f} GB at peak so far (estimated"
              f" {run.state['estimated_tensors_gb']:.2f} GB, without the CUDA runtime)", file=run.out)
    window.reset()
    if moments.checkpoint or run.stopped_early:
        run.state["window"] = window.saved()
        save_run(run)
    window.restart_clock()


def keep_if_best(run: Run, val_loss: float) -> None:
    """Save the weights when ``val_loss`` is the best so far; count evaluations since the best."""
    best = run.state["best"]
    if best["val_loss"] is None or val_loss < best["val_loss"]:
        best.update(step=run.step, val_loss=val_loss, evals_since=0)
        if run.dist.is_main:
            save_weights(run.files.best, run.model.state_dict(), {"step": run.step, "val_loss": val_loss})
    else:
        best["evals_since"] += 1
        if run.stopped_early:
            print(f"early stop at step {run.step:,}: val loss has not improved for {run.cfg.patience}"
                  f" evaluations; the best was {best['val_loss']:.4f} nats/token at step {best['step']:,}",
                  file=run.out)


def train_step(run) -> torch.Tensor:
    """One optimizer step over ``grad_accum`` micro-batches; returns the mean loss (a 0-d tensor).

    The learning rate must already be set in the optimizer. With DDP, gradients are averaged
    across ranks during the backward pass of the last micro-batch only (``no_sync`` skips the
    others: their gradients just add up locally). ``bench/train.py`` times this.
    """
    cfg = run.cfg
    total = torch.zeros((), device=run.runtime.device)
    for micro in range(cfg.grad_accum):
        x, y = run.sampler.next()
        last = micro == cfg.grad_accum - 1
        with contextlib.nullcontext() if run.ddp is None or last else run.ddp.no_sync():
            with run.runtime.autocast():
                _, loss = run.forward(x, y)
            loss = loss / cfg.grad_accum  # so the accumulated gradient is the mean over micro-batches
            run.scaler.scale(loss).backward()
        total += loss.detach()
    if cfg.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)  # clip the true gradient, not the scaled one
        clip = theirs(run.mine, "clip_grad_norm")  # mine: their clipping
        if clip is None:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        else:
            clip([p.grad for p in run.model.parameters() if p.grad is not None], cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return total


@torch.no_grad()
def estimate_loss(run: Run, split: str) -> float:
    """Mean loss (nats/token) on ``split``, the same tokens every time, shared out among ranks.

    A split no bigger than the ``eval_iters`` batches an estimate would draw is scored
    whole, window after window: exact, and fewer tokens than the random draws. A bigger
    one: ``eval_iters`` batches at fixed random offsets.
    """
    tokens, T, B = run.tokens[split], run.model_cfg.block_size, run.cfg.batch_size
    if len(tokens) - 1 <= run.cfg.eval_iters * B * T:
        ids = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
        n = (len(ids) - 1) // T
        x, y = ids[: n * T].view(n, T), ids[1 : n * T + 1].view(n, T)  # (n, T) each: consecutive windows
        batches = [(x[i : i + B], y[i : i + B]) for i in range(0, n, B)]
        if len(ids) - 1 > n * T:  # the rest: one shorter window
            batches.append((ids[n * T : -1][None], ids[n * T + 1 :][None]))
    else:
        windows = RandomWindows(tokens, T, B, run.cfg.seed + 1, torch.device("cpu"))
        batches = [windows.next() for _ in range(run.cfg.eval_iters)]
    run.model.eval()
    total = torch.zeros((), dtype=torch.float64, device=run.runtime.device)
    for x, y in batches[run.dist.rank :: run.dist.world_size]:
        x, y = x.to(run.runtime.device), y.to(run.runtime.device)
        with run.runtime.autocast():
            total += run.model(x, y)[1].double() * y.numel()
    run.model.train()
    return run.dist.sum(total.item()) / sum(y.numel() for _, y in batches)


def finish(run: Run) -> dict:
    """Export the best weights; write model.json, the log and the metrics. Returns the metrics.

    Also reached straight from a finished checkpoint (a rerun whose loop has nothing to
    do), so it writes every output itself.
    """
    best, last = run.state["best"], run.state["history"][-1]
    if best["step"] != run.step:
        try:
            saved = load_checkpoint(run.files.best) if run.files.best.exists() else None
        except SMLError as e:  # damaged: say so, and export the last weights rather than nothing
            print(f"warning: {e}", file=run.out)
            saved = None
        if saved is not None and saved["step"] == best["step"]:
            run.model.load_state_dict(saved["model"])
        else:  # best.pt deleted by hand (or left by a lost attempt): export what there is, and say so
            print(f"warning: {run.files.best} is missing, damaged or not from step {best['step']:,}:"
                  f" exporting the weights of step {run.step:,}", file=run.out)
            best = {"step": run.step, "val_loss": last["val_loss"]}
    s = run.state
    rate = s["timed_steps"] * run.tokens_per_step / s["timed_s"] if s["timed_s"] else 0.0
    metrics = {
        "val_loss": best["val_loss"],  # nats/token, of the exported (best) weights
        "val_nats_per_char": run.bits_per_char(best["val_loss"], "val") * math.log(2),
        "val_bits_per_char": run.bits_per_char(best["val_loss"], "val"),
        "train_loss": estimate_loss(run, "train"),
        "best_step": best["step"],
        "last_val_loss": last["val_loss"],
        "last_val_bits_per_char": last["val_bits_per_char"],
        "steps": run.step,
        "stopped_early": run.stopped_early,
        "tokens_per_s": rate,  # without each session's first step (compilation)
        "model_flops_per_s": rate * run.model.flops_per_token(),
        "mfu": rate * run.model.flops_per_token() / (s["peak_flops"] * run.dist.world_size),
        "train_seconds": s["elapsed_s"],
        "warmup_seconds": s["warmup_s"],
        "peak_memory_gb": max((r["peak_memory_gb"] or 0.0 for r in s["history"]), default=0.0) or None,
        "estimated_memory_gb": s["estimated_memory_gb"],  # with the CUDA runtime; peak_memory_gb is tensors only
        "estimated_tensors_gb": s["estimated_tensors_gb"],
        "parameters": run.model.param_counts()["total"],
    }
    if run.dist.is_main:
        save_torch(run.files.model / "model.pt", run.model.state_dict())
        write_json(run.files.model / "model.json", {
            "model": asdict(run.model_cfg), "vocab_size": run.model.vocab_size,
            "tokenizer_sha256": run.fingerprint["tokenizer_sha256"], "steps": run.step, "metrics": metrics,
            "train": asdict(run.cfg) | run.fingerprint["train"], "schedule": s["schedule"],
            "impl": (run.model.mine or Mine()).model_impl(),  # evaluating needs the same parts
        })
        write_text_or_warn(run.files.log, log_text(s["history"]), then=LOG_RETRY)
        write_json(run.files.metrics, metrics)
    run.dist.barrier()
    print(f"done: best val {best['val_loss']:.4f} nats/token = {metrics['val_bits_per_char']:.4f} bits/char"
          f" at step {best['step']:,} of {run.step:,} (exported); {rate:,.0f} tokens/s, MFU"
          f" {metrics['mfu']:.1%}; {s['elapsed_s']:.1f} s of training", file=run.out)
    return metrics


def print_header(run: Run, resumed_at: int | None) -> None:
    """What is trained, where, how fast it could go, and whether it fits: before any step."""
    counts, out = run.model.param_counts(), run.out
    parts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items() if k != "total")
    print(f"model: {counts['total'] / 1e6:.2f}M parameters ({parts})", file=out)
    print(f"model: {run.model.flops_per_token() / 1e6:.1f} MFLOP/token (forward + backward)", file=out)
    ranks = f" x {run.dist.world_size} processes" if run.dist.world_size > 1 else ""
    print(f"train: {run.runtime.describe()}{ranks}; {run.tokens_per_step:,} tokens/step; {run.cfg.max_iters:,}"
          f" steps" + (f"; resuming at step {resumed_at:,}" if resumed_at is not None else ""), file=out)
    devices = [run.runtime.device] if run.runtime.device.type == "cuda" else []
    with torch.random.fork_rng(devices, device_type=run.runtime.device.type):  # leave the run's RNG alone
        peak, source = peak_flops(run.runtime.device, run.runtime.dtype)
    run.state["peak_flops"] = peak
    print(f"train: peak {peak / 1e12:.3g} TFLOP/s per device ({source}), for MFU", file=out)
    estimate = estimate_training_memory(run.model_cfg, run.model.vocab_size, run.cfg.batch_size, run.runtime.dtype,
                                        world_size=run.dist.world_size, device_type=run.runtime.device.type)
    run.state["estimated_memory_gb"] = estimate.total / 1e9
    # What torch.cuda.max_memory_allocated can be held against: the tensors, not the CUDA runtime.
    run.state["estimated_tensors_gb"] = (estimate.total - estimate.parts.get("CUDA runtime", 0)) / 1e9
    print(f"memory: {check_fits(estimate, device_memory(run.runtime.device), run.runtime.device.type)}", file=out)
