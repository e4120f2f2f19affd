"""Saving a training run and resuming it: exactly where it was, or not at all.

``save_run`` writes what a run needs to continue bit-exactly: weights, optimizer moments,
gradient scaler, every RNG (torch's, the device's, the batch sampler's) and the run's own
progress (step, log, best val so far). With several processes, rank 0 writes one
checkpoint holding every rank's sampler and RNG states; each rank takes its own back.

``resume_run`` decides from the run fingerprint (``checkpoint.run_fingerprint``) whether
the checkpoint on disk belongs to this run: the same one resumes; one that differs only
in how long it trains (``train.max_iters``, ``train.time_budget_s``) continues ("train
longer"); any other starts over, and says why.

Left out on purpose: the file format and safe loading (``checkpoint``).
"""

import dataclasses

import torch

from sml.optim import lr_at
from sml.run.checkpoint import fingerprint_difference, load_checkpoint, save_checkpoint, save_weights
from sml.run.state import RunState


def save_run(run) -> None:
    """The checkpoint of a ``sml.run.state.Run`` at its current step. Every rank calls; rank 0 writes."""
    ranks = run.dist.gather({"sampler": run.sampler.state_dict(), "rng": rng_state(run.runtime.device)})
    if run.dist.is_main:
        state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                 "scaler": run.scaler.state_dict(), "ranks": ranks, "run": run.state.saved(),
                 "fingerprint": run.fingerprint}
        save_checkpoint(run.files.checkpoint, state, {"step": run.step, "fingerprint": run.fingerprint})
    run.dist.barrier()


def resume_run(run) -> bool:
    """Load the checkpoint into ``run`` if it belongs to this run; True if it did.

    A run that differs only in ``train.max_iters`` continues too ("train longer"): the
    steps already taken stay as they were, and from the checkpoint's step on the learning
    rate follows the cosine of the new ``max_iters``. That is said in one line, since it
    is not the run that the new ``max_iters`` would have given from step 0. A new
    ``train.time_budget_s`` is the same for a run on a time budget: it goes on with the
    seconds it has trained, and the schedule follows the new budget.
    """
    path, cfg, out = run.files.checkpoint, run.cfg, run.out
    if not path.exists():
        return False
    state = load_checkpoint(path, if_damaged=f"delete {path.parent} to start the run over")  # onto the CPU
    saved = state.get("fingerprint", {})
    difference = fingerprint_difference(saved, run.fingerprint)
    saved_train = saved.get("train", {})
    saved_max_iters, saved_budget = saved_train.get("max_iters"), saved_train.get("time_budget_s", 0.0)
    longer = difference is not None and saved_max_iters is not None and fingerprint_difference(
        saved, _with_length(run.fingerprint, saved_max_iters, saved_budget)) is None
    step, trained_s = state["run"]["step"], state["run"].get("clock", {}).get("seconds", 0.0)
    if longer and step > cfg.max_iters:
        print(f"not resuming {path}: it is at step {step:,}, past {run.section}.max_iters {cfg.max_iters:,};"
              " starting at step 0", file=out)
        return False
    if longer and cfg.time_budget_s and trained_s > cfg.time_budget_s:
        print(f"not resuming {path}: it has trained {trained_s:.1f} s, past {run.section}.time_budget_s"
              f" {cfg.time_budget_s:g}; starting at step 0", file=out)
        return False
    if difference and not longer:
        print(f"not resuming {path}: it is from another run ({difference}); starting at step 0", file=out)
        return False
    if longer and saved_budget != cfg.time_budget_s:
        print(f"train longer: {run.section}.time_budget_s {saved_budget:g} -> {cfg.time_budget_s:g} s, resuming at step"
              f" {step:,} after {trained_s:.1f} s of training: warmup and decay follow the new budget"
              f" (steps 1-{step:,} keep the schedule they had)", file=out)
    elif longer:
        old_cfg = dataclasses.replace(cfg, max_iters=saved_max_iters)
        print(f"train longer: {run.section}.max_iters {saved_max_iters:,} -> {cfg.max_iters:,}, resuming at step"
              f" {step:,}: the learning rate goes from {lr_at(step - 1, old_cfg):.2e} to"
              f" {lr_at(step, cfg):.2e} and follows the {cfg.schedule} schedule to {cfg.min_lr:.2e} at step"
              f" {cfg.max_iters:,}"
              f" (steps 1-{step:,} keep the schedule they had)", file=out)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])  # moves the moments to the parameters' device
    run.scaler.load_state_dict(state["scaler"])
    mine = state["ranks"][run.dist.rank]
    run.sampler.load_state_dict(mine["sampler"])
    set_rng_state(mine["rng"])
    run.state = RunState.from_saved(state["run"])
    if longer:
        run.state.schedule.append({"from_step": step, "max_iters": cfg.max_iters})
        run.state.clock.spent = False  # the new length decides (sml.run.budget.out_of_time)
    return True


def save_best(run) -> None:
    """The weights of the best val loss so far (``best.pt``, next to the checkpoint); rank 0 writes."""
    if run.dist.is_main:
        best = run.state.best
        save_weights(run.files.best, run.model.state_dict(),
                     {"step": best.step, "val_loss": best.val_loss, "fingerprint": run.fingerprint})


def _with_length(fingerprint: dict, max_iters: int, time_budget_s: float) -> dict:
    return {**fingerprint, "train": {**fingerprint["train"], "max_iters": max_iters, "time_budget_s": time_budget_s}}


def rng_state(device: torch.device) -> dict:
    """torch's CPU RNG state and the device's (dropout masks are drawn there), as CPU tensors."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore ``rng_state``'s result, wherever its tensors were loaded (``set_state`` wants CPU bytes)."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu())
    if "mps" in state:
        torch.mps.set_rng_state(state["mps"].cpu())
