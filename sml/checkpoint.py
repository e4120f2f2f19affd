"""Checkpoints: everything a run needs to continue exactly, saved atomically, loaded safely.

A checkpoint holds the model weights, the optimizer's moments, the step (the learning rate
is a function of it), the RNG states (torch's, the device's, and the batch sampler's) and
the log so far. Loading uses ``torch.load(weights_only=True)``: tensors and plain Python
data only, never arbitrary pickled objects. Next to it, ``checkpoint.json`` says in
readable form what run it belongs to.

Whether a checkpoint may be resumed is decided by the run's *fingerprint*: everything that
changes the numbers a run computes (model shape, optimization params, tokenizer, data).
Intervals for logging and evaluation are left out: changing them does not change the run.

The best weights so far (by val loss) are kept apart in ``best.pt``: the checkpoint is
always the *last* step, to resume from; ``best.pt`` is what the run exports.

How a training run is saved into one and resumed from it is ``resume.py``.

Left out on purpose: keeping more checkpoints (one "last" and one "best" are enough).
"""

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from sml.atomic import atomic_open, write_json
from sml.config import ModelConfig, TrainConfig
from sml.errors import SMLError
from sml.model import GPT

# TrainConfig fields that do not change the computed weights (only how often we look, when
# we stop looking, and which kernels compute the same numbers).
_NOT_IN_FINGERPRINT = {"eval_interval", "eval_iters", "log_interval", "checkpoint_interval", "compile",
                       "patience", "deterministic"}


def run_fingerprint(model_cfg: ModelConfig, train_cfg: TrainConfig, tokenizer_sha256: str,
                    data_meta: dict, resolved: dict) -> dict:
    """What identifies a run: resuming is allowed only into the same fingerprint.

    ``resolved`` holds what ``auto`` turned into and how many processes train:
    ``{"device": "cuda", "dtype": "bfloat16", "nproc": 2}`` (the same params on another
    machine are another run).
    """
    train = {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in _NOT_IN_FINGERPRINT}
    return {
        "model": dataclasses.asdict(model_cfg),
        "train": train | resolved,
        "tokenizer_sha256": tokenizer_sha256,
        "data": {split: data_meta[split] for split in ("train", "val")},
    }


def save_checkpoint(path: str | Path, state: dict[str, Any], info: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain data) to ``path`` and ``info`` to ``path``.json, atomically."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save(state, f)
    write_json(path.with_suffix(".json"), info)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; tensors land on ``device``.

    Resuming loads onto the CPU whatever the run's device: ``load_state_dict`` of the
    model and the optimizer moves their tensors to where the parameters are, and RNG
    states must be CPU tensors (a CUDA copy of one is refused by ``set_state``).
    """
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise SMLError(f"{path}: no checkpoint (run the train stage)") from None
    except Exception as e:  # a truncated or foreign file: say which, not a pickle traceback
        raise SMLError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None


def save_weights(path: str | Path, weights: dict, info: dict) -> None:
    """Write model weights with what they are (``{"step": ..., "val_loss": ...}``), atomically."""
    with atomic_open(path, "wb") as f:
        torch.save({"model": weights, **info}, f)


def load_model(model_dir: str | Path, tokenizer: str | Path, device: torch.device | str = "cpu") -> GPT:
    """The trained GPT in ``model_dir`` (model.pt + model.json), checked against ``tokenizer``.

    A model only makes sense with the tokenizer it was trained with: a different one fails
    here, with both hashes, instead of producing gibberish later.
    """
    model_dir = Path(model_dir)
    info = model_info(model_dir)
    actual = file_fingerprint(tokenizer)
    if info["tokenizer_sha256"] != actual:
        raise SMLError(
            f"{model_dir} was trained with tokenizer sha256 {info['tokenizer_sha256'][:12]}..., but"
            f" {tokenizer} has sha256 {actual[:12]}...: retrain (dvc repro train) or use its tokenizer"
        )
    model = GPT(ModelConfig(**info["model"]), info["vocab_size"])
    model.load_state_dict(load_checkpoint(model_dir / "model.pt", device))
    return model.to(device)


def model_info(model_dir: str | Path) -> dict:
    """``model.json`` of a trained model: its config, tokenizer hash, metrics, train params and schedule."""
    path = Path(model_dir) / "model.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SMLError(f"{path}: no trained model (run the train stage)") from None


def fingerprint_difference(saved: dict, current: dict, prefix: str = "") -> str | None:
    """The first key where two fingerprints differ, as 'key: old -> new', or None if equal.

    >>> fingerprint_difference({"a": {"b": 1}}, {"a": {"b": 2}})
    'a.b: 1 -> 2'
    """
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found = fingerprint_difference(old, new, f"{prefix}{key}.")
            if found:
                return found
        elif old != new:
            return f"{prefix}{key}: {_short(old)} -> {_short(new)}"
    return None


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's bytes (used for the tokenizer that a model was trained with)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 20 else text[:17] + "..."
