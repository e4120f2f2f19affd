"""The training run around the loop: build it, resume it, print its header, run ``sml.train.loop``, export.

``train`` is what the train stage calls: it picks the device, starts the processes' group
(torchrun, ``sml.run.distributed``), builds the model, optimizer and batches (``build``),
resumes from the checkpoint when it belongs to this run (``sml.run.resume``), wraps the
model for DDP and compilation (``wrap``), says what it trains and whether it fits
(``print_header``), hands the run to the loop, and at the end exports the best weights
with model.json, the log and the metrics (``finish``).

With several processes every rank runs this same code on its own batches; DDP averages
the gradients, and rank 0 alone prints and writes files.
"""

import io
import math
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from sml.batches import RandomWindows
from sml.chat import grow_vocab, with_chat_tokens
from sml.config import ModelConfig, TrainConfig
from sml.data.tokens import RERUN, RERUN_CONVERSATIONS, SPLITS, check_vocab_size, load_learned, load_meta, load_tokens
from sml.learn.mine import Mine
from sml.model import GPT
from sml.optim import make_optimizer
from sml.parts import parts_for
from sml.run import distributed
from sml.run.atomic import atomic_open, write_json
from sml.run.checkpoint import (
    file_fingerprint,
    load_checkpoint,
    load_model,
    model_info,
    run_fingerprint,
    save_torch,
)
from sml.run.device import Runtime, pick_runtime, pick_threads
from sml.run.distributed import Dist
from sml.run.errors import SMLError
from sml.run.memory import check_fits, device_memory, estimate_training_memory, peak_flops
from sml.run.progress import write_log
from sml.run.resume import resume_run
from sml.run.state import Estimates, Run, RunState, TrainFiles
from sml.tokenizer import Tokenizer
from sml.train import NonFiniteLoss, estimate_loss, loop

__all__ = ["TrainFiles", "train"]


def train(model_cfg: ModelConfig, cfg: TrainConfig, files: TrainFiles,
          on_step: Callable[[int], None] | None = None, out=None, mine: Mine | None = None) -> dict:
    """Train (or resume) a GPT; write checkpoint, best model, log and metrics. Returns the metrics.

    ``mine``: the learner's parts (``sml/learn/mine.py``; None: all SML's).
    Progress goes to ``out`` (default: sys.stdout as it is when called).
    """
    out = sys.stdout if out is None else out
    runtime = pick_runtime(cfg.device, cfg.dtype, cfg.compile, deterministic=cfg.deterministic,
                           local_rank=distributed.local_rank())
    env = distributed.start(runtime.device.type)
    try:
        run = build(model_cfg, cfg, files, runtime, env, out if env.is_main else io.StringIO(), mine)
        resumed_at = run.step if resume_run(run) else None
        run.state.threads, why = pick_threads(cfg.threads, runtime.device, model_cfg.n_embd,
                                              min(cfg.batch_size * model_cfg.block_size, 4096), run.state.threads)
        wrap(run)
        print_header(run, resumed_at, f"{run.state.threads} CPU thread{'s' * (run.state.threads > 1)} ({why})")
        if run.stopped_early:
            print(f"{run.section}: this run stopped early at step {run.step:,} (no better val loss for {cfg.patience}"
                  f" evaluations): nothing to train; raise {run.section}.patience (0: off) to go on", file=run.out)
        try:
            loop(run, on_step)
        except NonFiniteLoss as e:  # the learner's parts first: the likelier cause than the lr
            raise NonFiniteLoss(f"{mine.in_use()}; {e}" if mine is not None and mine.sha256 else str(e)) from None
        return finish(run, mine)
    finally:
        distributed.stop(env)


def build(model_cfg: ModelConfig, cfg: TrainConfig, files: TrainFiles, runtime: Runtime, env: Dist,
          out, mine: Mine | None = None) -> Run:
    """The model, optimizer, scaler and this rank's sampler, at step 0."""
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    # Fine-tuning's token files and tokenizer come from the conversations stage: a damaged one says so.
    rerun = RERUN_CONVERSATIONS if files.base else RERUN
    meta = load_meta(files.tokens, rerun)
    # The tokenizer is checked whole (a damaged one fails here), and against the token files.
    tok = Tokenizer.load(files.tokenizer, RERUN_CONVERSATIONS) if files.base else Tokenizer.load(files.tokenizer)
    check_vocab_size(files.tokens, tok.vocab_size, files.tokenizer, rerun)
    tokens = {split: load_tokens(files.tokens, split, rerun) for split in SPLITS}
    learn = {split: load_learned(files.tokens, split) for split in SPLITS} if files.base else None
    check_splits(tokens, model_cfg.block_size, files.tokens)
    resolved = {"device": runtime.device.type, "dtype": str(runtime.dtype).removeprefix("torch."),
                "nproc": env.world_size}
    fingerprint = run_fingerprint(model_cfg, cfg, file_fingerprint(files.tokenizer), meta, resolved, mine)
    if files.base is None:
        model = GPT(model_cfg, meta["vocab_size"], parts_for(model_cfg, mine))
    else:  # fine-tuning: the trained model, and which weights it was
        model = base_model(files, meta["vocab_size"], mine, out)
        fingerprint["base_sha256"] = file_fingerprint(files.base / "model.pt")
    model = model.to(runtime.device)
    if env.rank:  # each rank its own dropout masks and batches (seed + 1 draws the eval batches)
        torch.manual_seed(cfg.seed + 1000 * env.rank)
    sampler = RandomWindows(tokens["train"], model_cfg.block_size, cfg.batch_size, cfg.seed + 1000 * env.rank,
                            runtime.device, model.parts.get_batch, learn=learn["train"] if learn else None)
    optimizer = make_optimizer(model, cfg, runtime.device, model.parts.adamw_step)
    return Run(model_cfg, cfg, files, runtime, env, model, optimizer,
               torch.amp.GradScaler(runtime.device.type, enabled=runtime.use_scaler), sampler, tokens,
               meta, fingerprint, estimate(model, model_cfg, cfg, runtime, env), out, RunState.start(cfg),
               learn=learn)


def base_model(files: TrainFiles, vocab_size: int, mine: Mine | None, out) -> GPT:
    """Fine-tuning's start: the trained model in ``files.base``, its vocabulary grown to the chat
    tokenizer's (``sml.chat.grow_vocab``), which must be its own tokenizer plus the chat tokens."""
    base_tok, chat_tok = Tokenizer.load(files.base_tokenizer), Tokenizer.load(files.tokenizer)
    if with_chat_tokens(base_tok).to_dict() != chat_tok.to_dict():
        raise SMLError(f"{files.tokenizer} is not {files.base_tokenizer} with the chat tokens added: rerun the"
                       " conversations stage (dvc repro conversations)")
    model = load_model(files.base, files.base_tokenizer, "cpu", mine)
    before = model.vocab_size
    grow_vocab(model, vocab_size)
    print(f"finetune: from {files.base} ({model_info(files.base)['steps']:,} steps of training); vocabulary"
          f" {before:,} -> {vocab_size:,} ids, the chat tokens' rows at the mean of the others", file=out)
    return model


def check_splits(tokens: dict, block_size: int, where: Path) -> None:
    """Refuse, before any step, splits too small to train on (one window) or to score (two tokens)."""
    if len(tokens["train"]) <= block_size:
        raise SMLError(f"{where / 'train.bin'}: {len(tokens['train']):,} tokens cannot fill one window of"
                       f" model.block_size {block_size:,} + 1: lower model.block_size or use a bigger corpus")
    if len(tokens["val"]) < 2:
        raise SMLError(f"{where / 'val.bin'}: {len(tokens['val'])} token(s), and scoring needs at least 2:"
                       " raise data.val_fraction or use a bigger corpus")
    if len(tokens["val"]) <= block_size:  # one short window: a noisy val loss, and "best" picked by it
        print(f"warning: {where / 'val.bin'} holds {len(tokens['val']):,} tokens, less than one window of"
              f" model.block_size {block_size:,}: the val loss is one short window's; raise data.val_fraction"
              " for a val loss to trust", file=sys.stderr)


def estimate(model: GPT, model_cfg: ModelConfig, cfg: TrainConfig, runtime: Runtime, env: Dist) -> Estimates:
    """The device's peak FLOP/s (for MFU) and the run's memory, before any step."""
    devices = [runtime.device] if runtime.device.type == "cuda" else []
    with torch.random.fork_rng(devices, device_type=runtime.device.type):  # leave the run's RNG alone
        peak, source = peak_flops(runtime.device, runtime.dtype)
    memory = estimate_training_memory(model_cfg, model.vocab_size, cfg.batch_size, runtime.dtype,
                                      world_size=env.world_size, device_type=runtime.device.type)
    return Estimates(peak, source, memory.total / 1e9,
                     (memory.total - memory.parts.get("CUDA runtime", 0)) / 1e9,
                     check_fits(memory, device_memory(runtime.device), runtime.device.type))


def wrap(run: Run) -> None:
    """What computes the loss: DDP around the model when there are several ranks, compiled if asked."""
    forward = run.model
    if run.dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [run.runtime.device.index] if run.runtime.device.type == "cuda" else None
        forward = run.ddp = DistributedDataParallel(run.model, device_ids=ids)
    run.forward = torch.compile(forward) if run.runtime.compile else forward


def print_header(run: Run, resumed_at: int | None, threads: str = "") -> None:
    """What is trained, where, how fast it could go, and whether it fits: before any step."""
    counts, out = run.model.param_counts(), run.out
    parts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items() if k != "total")
    print(f"model: {counts['total'] / 1e6:.2f}M parameters ({parts})", file=out)
    print(f"model: {run.model.flops_per_token() / 1e6:.1f} MFLOP/token (forward + backward)", file=out)
    ranks = f" x {run.dist.world_size} processes" if run.dist.world_size > 1 else ""
    print(f"{run.section}: {run.runtime.describe()}{ranks}; {run.tokens_per_step:,} tokens/step; {run.cfg.max_iters:,}"
          f" steps" + (f"; resuming at step {resumed_at:,}" if resumed_at is not None else ""), file=out)
    print(f"{run.section}: peak {run.estimates.peak_flops / 1e12:.3g} TFLOP/s per device ({run.estimates.peak_source}),"
          " for MFU", file=out)
    if threads and run.runtime.device.type == "cpu":
        print(f"{run.section}: {threads}", file=out)
    print(f"memory: {run.estimates.fits}", file=out)


def finish(run: Run, mine: Mine | None = None) -> dict:
    """Export the best weights; write model.json, the log and the metrics. Returns the metrics.

    Also reached straight from a finished checkpoint (a rerun whose loop has nothing to
    do), so it writes every output itself.
    """
    s, last = run.state, run.state.history[-1]
    best_step, best_val = s.best.step, s.best.val_loss
    if best_step != run.step:
        try:
            saved = load_checkpoint(run.files.best) if run.files.best.exists() else None
        except SMLError as e:  # damaged: say so, and export the last weights rather than nothing
            print(f"warning: {e}", file=run.out)
            saved = None
        # best.pt is this run's only once this run wrote it: a run that started over keeps the
        # previous run's until it has a best of its own (nothing is deleted in between)
        ours = saved is not None and saved.get("fingerprint", run.fingerprint) == run.fingerprint
        if ours and saved["step"] == best_step:
            run.model.load_state_dict(saved["model"])
        else:  # best.pt deleted by hand (or left by a lost attempt): export what there is, and say so
            print(f"warning: {run.files.best} is missing, damaged or not from step {best_step:,}:"
                  f" exporting the weights of step {run.step:,}", file=run.out)
            best_step, best_val = run.step, last["val_loss"]
    rate = s.timed_steps * run.tokens_per_step / s.timed_s if s.timed_s else 0.0
    flops = rate * run.model.flops_per_token()
    metrics = {
        "val_loss": best_val,  # nats/token, of the exported (best) weights
        "val_nats_per_char": run.bits_per_char(best_val, "val") * math.log(2),
        "val_bits_per_char": run.bits_per_char(best_val, "val"),
        "train_loss": estimate_loss(run, "train"),
        "best_step": best_step,
        "last_val_loss": last["val_loss"],
        "last_val_bits_per_char": last["val_bits_per_char"],
        "steps": run.step,
        "stopped_early": run.stopped_early,
        "tokens_per_s": rate,  # without each session's first step (compilation)
        "model_flops_per_s": flops,
        "mfu": flops / (run.estimates.peak_flops * run.dist.world_size),
        "train_seconds": s.elapsed_s,
        "warmup_seconds": s.warmup_s,
        "peak_memory_gb": max((r["peak_memory_gb"] or 0.0 for r in s.history), default=0.0) or None,
        "estimated_memory_gb": run.estimates.memory_gb,  # with the CUDA runtime; peak_memory_gb is tensors only
        "estimated_tensors_gb": run.estimates.tensors_gb,
        "parameters": run.model.param_counts()["total"],
    }
    if run.dist.is_main:
        save_torch(run.files.model / "model.pt", run.model.state_dict())
        if run.files.base is not None:  # a fine-tuned model travels with its (chat) tokenizer
            with atomic_open(run.files.model / "tokenizer.json", "wb") as f:
                f.write(run.files.tokenizer.read_bytes())
        write_json(run.files.model / "model.json", {
            "model": asdict(run.model_cfg), "vocab_size": run.model.vocab_size,
            "tokenizer_sha256": run.fingerprint["tokenizer_sha256"], "steps": run.step, "metrics": metrics,
            "train": asdict(run.cfg) | run.fingerprint["train"], "schedule": s.schedule, "warmup_lrs": s.warmup_lrs,
            "impl": (mine or Mine()).model_impl(),  # evaluating needs the same parts
        } | ({"base_sha256": run.fingerprint["base_sha256"]} if run.files.base else {}))
        write_log(run.files.log, s.history)
        # fine-tuning's under its own name, so `dvc exp show` keeps train's columns as they are
        write_json(run.files.metrics, {"finetune": metrics} if run.files.base else metrics)
    run.dist.barrier()
    print(f"done: best val {best_val:.4f} nats/token = {metrics['val_bits_per_char']:.4f} bits/char"
          f" at step {best_step:,} of {run.step:,} (exported); {rate:,.0f} tokens/s, MFU"
          f" {metrics['mfu']:.1%}; {s.elapsed_s:.1f} s of training", file=run.out)
    return metrics
