"""A training run, typed: its settings, files and parts (``Run``) and its progress (``RunState``).

``sml/train.py``'s loop reads the run and moves its state forward; ``sml/run/trainer.py``
builds it, ``sml/run/resume.py`` saves and restores it. ``RunState`` is what a checkpoint
keeps besides tensors: each field below, saved as a plain dict (``saved``, ``from_saved``).

Left out on purpose: how the run is built (``trainer``) and how it is saved (``resume``).
"""

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sml.batches import RandomWindows
from sml.config import ModelConfig, TrainConfig
from sml.model import GPT
from sml.optim import Optimizers
from sml.run import budget
from sml.run.device import Runtime
from sml.run.distributed import Dist


@dataclass(frozen=True)
class TrainFiles:
    """Where the train stage reads and writes."""

    tokens: Path  # directory with train.bin, val.bin, meta.json
    tokenizer: Path  # tokenizer.json the tokens were made with
    checkpoint: Path  # the resumable checkpoint (kept between runs)
    model: Path  # directory for the exported weights and model.json
    log: Path  # TSV, one row per log interval
    metrics: Path  # JSON with the final figures
    base: Path | None = None  # fine-tuning: the trained model directory to start from (None: from scratch)
    base_tokenizer: Path | None = None  # fine-tuning: the tokenizer that model was trained with

    @property
    def best(self) -> Path:
        """The best-validation weights so far: next to the checkpoint, kept and resumed with it."""
        return self.checkpoint.with_name("best.pt")


@dataclass
class Best:
    """The best val loss so far (nats/token), its step, and how many evaluations have not beaten it."""

    step: int | None = None
    val_loss: float | None = None
    evals_since: int = 0


@dataclass
class RunState:
    """A run's progress. Seconds count training steps only, not evaluations; ``warmup_s`` is
    each session's first step (compilation), left out of tokens/s and of the time budget."""

    step: int = 0
    elapsed_s: float = 0.0
    warmup_s: float = 0.0
    timed_steps: int = 0
    timed_s: float = 0.0
    history: list[dict] = field(default_factory=list)  # the log's rows so far
    # the steps since the last log row, so a resumed run logs what an uninterrupted one would
    window: dict = field(default_factory=lambda: {"steps": 0, "loss": 0.0, "timed_steps": 0, "seconds": 0.0})
    # where train.max_iters changed ("train longer", sml/run/resume.py): the cosine of each part
    schedule: list[dict] = field(default_factory=list)
    best: Best = field(default_factory=Best)
    warmup_lrs: list[float] = field(default_factory=list)  # the lr of each step before train.warmup_iters
    threads: int = 0  # the CPU threads picked when the run started (sml.run.device.pick_threads; 0: none)
    clock: budget.Clock = field(default_factory=budget.Clock)  # the time budget's (sml/run/budget.py)

    @classmethod
    def start(cls, cfg: TrainConfig) -> "RunState":
        """Step 0 of a run of ``cfg.max_iters`` steps."""
        return cls(schedule=[{"from_step": 0, "max_iters": cfg.max_iters}])

    def saved(self) -> dict:
        """As a checkpoint keeps it: plain dicts, lists and numbers."""
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, saved: dict) -> "RunState":
        """Back from ``saved`` (a checkpoint's; keys this version does not know are left out)."""
        known = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in saved.items() if k in known and k not in ("best", "clock")})
        state.best = Best(**saved.get("best", {}))
        state.clock = budget.Clock(**saved.get("clock", {}))
        return state


@dataclass(frozen=True)
class Estimates:
    """What the header measures and estimates before the first step, for MFU and memory."""

    peak_flops: float  # FLOP/s of one device in the run's dtype
    peak_source: str  # where that figure comes from
    memory_gb: float  # the whole training's, with the CUDA runtime
    tensors_gb: float  # the tensors alone: what torch.cuda.max_memory_allocated can be held against
    fits: str  # one line: does it fit the device


@dataclass
class Run:
    """One training run's parts, so that each function of the loop takes just the run."""

    model_cfg: ModelConfig
    cfg: TrainConfig
    files: TrainFiles
    runtime: Runtime
    dist: Dist
    model: GPT  # the weights: what is saved, exported and evaluated; ``model.parts``: the functions
    optimizer: Optimizers  # AdamW, or Muon + AdamW (sml.optim)
    scaler: torch.amp.GradScaler
    sampler: RandomWindows  # this rank's training batches
    tokens: dict[str, np.ndarray]  # "train" and "val", memory-mapped
    meta: dict  # token, character and byte counts per split (meta.json)
    fingerprint: dict  # what identifies the run (checkpoint.run_fingerprint)
    estimates: Estimates
    out: Any  # where rank 0 prints; other ranks print nowhere
    state: RunState
    forward: Callable | None = None  # computes the loss: the model, wrapped in DDP and/or compiled
    learn: dict[str, np.ndarray] | None = None  # fine-tuning: per split, 1 where a token is learned
    ddp: Any = None  # the DistributedDataParallel wrapper when there are several ranks

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def section(self) -> str:
        """The params section this run's settings are named by: ``train``, or ``finetune``."""
        return "train" if self.files.base is None else "finetune"

    @property
    def tokens_per_step(self) -> int:
        """Tokens of one optimizer step, all ranks together."""
        return self.cfg.batch_size * self.cfg.grad_accum * self.model_cfg.block_size * self.dist.world_size

    def bits_per_char(self, nats_per_token: float, split: str) -> float:
        """A loss in nats per (learned) token as bits per character (of the learned text, fine-tuning)."""
        counts = self.meta[split]
        return nats_per_token * counts.get("learned_tokens", counts["tokens"]) / counts["chars"] / math.log(2)

    @property
    def stopped_early(self) -> bool:
        return self.cfg.patience > 0 and self.state.best.evals_since >= self.cfg.patience

    @property
    def out_of_time(self) -> bool:
        """The time budget (``train.time_budget_s``) is spent: see ``sml.run.budget``."""
        return budget.out_of_time(self.state.clock, self.step, self.cfg.time_budget_s)

    @property
    def done(self) -> bool:
        return self.step >= self.cfg.max_iters or self.stopped_early or self.out_of_time

    @property
    def schedule_step(self) -> float:
        """Where the learning-rate schedule is: the step, or further on a time budget."""
        return budget.schedule_step(self.step, self.state.clock, self.cfg.max_iters, self.cfg.time_budget_s)
