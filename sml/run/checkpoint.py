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

from sml.config import ModelConfig, TrainConfig
from sml.learn.mine import Mine, check_model_impl
from sml.model import GPT
from sml.parts import parts_for
from sml.run.atomic import atomic_open, write_json
from sml.run.errors import SMLError

# Which params may change and still resume a checkpoint: a deliberate list, every other key
# of ``model`` and ``train`` is in the fingerprint (tests/test_train.py checks that every key
# is in exactly one of the two). These only say how often to look at the run, when to stop
# looking (patience, max_iters: see resume.resume_run), and which kernels compute the same
# numbers (compile, deterministic) or nearly (threads: the last bits of a sum); none changes
# what a step computes beyond that.
RESUMABLE = {"eval_interval", "eval_iters", "log_interval", "checkpoint_interval", "compile",
             "patience", "deterministic", "threads"}


def run_fingerprint(model_cfg: ModelConfig, train_cfg: TrainConfig, tokenizer_sha256: str,
                    data_meta: dict, resolved: dict, mine: Mine | None = None) -> dict:
    """What identifies a run: resuming is allowed only into the same fingerprint.

    ``resolved`` holds what ``auto`` turned into and how many processes train:
    ``{"device": "cuda", "dtype": "bfloat16", "nproc": 2}`` (the same params on another
    machine are another run). ``mine``: the learner's parts, by their files' sha256 (another
    version of mine/attention.py computes other weights).
    """
    train = {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in RESUMABLE}
    return {
        "model": dataclasses.asdict(model_cfg),
        "train": train | resolved,
        "tokenizer_sha256": tokenizer_sha256,
        "data": {split: data_meta[split] for split in ("train", "val")},
        "impl": mine.sha256 if mine is not None else {},
    }


def save_checkpoint(path: str | Path, state: dict[str, Any], info: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain data) to ``path`` and ``info`` to ``path``.json, atomically.

    The file carries the sha256 of its own contents (``content_sha256``), so that a file
    damaged on disk is refused when it is loaded instead of resumed as if nothing happened.
    """
    save_torch(path, state)
    write_json(Path(path).with_suffix(".json"), info)


def save_torch(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` of ``state`` and its ``content_sha256``, atomically: every .pt file SML writes."""
    with atomic_open(path, "wb") as f:
        torch.save({**state, "sha256": content_sha256(state)}, f)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu",
                    if_damaged: str = "delete it to start over") -> dict[str, Any]:
    """Read a file written by ``save_checkpoint`` (its sha256 checked); tensors land on ``device``.

    Resuming loads onto the CPU whatever the run's device: ``load_state_dict`` of the
    model and the optimizer moves their tensors to where the parameters are, and RNG
    states must be CPU tensors (a CUDA copy of one is refused by ``set_state``).
    ``if_damaged`` is what the error tells the user to do about a damaged file.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise SMLError(f"{path}: no checkpoint (run the train stage)") from None
    except Exception as e:  # a truncated or foreign file: say which, not a pickle traceback
        raise SMLError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e}): {if_damaged}") from None
    recorded = state.pop("sha256", None) if isinstance(state, dict) else None
    if recorded is not None and recorded != content_sha256(state):
        raise SMLError(f"{path}: damaged (its contents do not match the sha256 recorded when it was"
                       f" written): {if_damaged}")
    return state


def content_sha256(obj: Any) -> str:
    """sha256 of a checkpoint's contents: each tensor's dtype, shape and bytes, and the data around them.

    Computed from the loaded objects, not the file's bytes, so it can travel inside the
    file it checks (one file, one atomic rename).

    >>> content_sha256({"w": torch.zeros(2)}) == content_sha256({"w": torch.zeros(2)})
    True
    >>> content_sha256({"w": torch.zeros(2)}) == content_sha256({"w": torch.ones(2)})
    False
    """
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().view(-1)
        digest.update(f"tensor {t.dtype} {tuple(obj.shape)}:".encode())
        digest.update(t.view(torch.uint8).numpy().data)  # the raw bytes, whatever the dtype
    elif isinstance(obj, dict):
        digest.update(b"{")
        for key in sorted(obj, key=str):
            _feed(digest, str(key))
            _feed(digest, obj[key])
        digest.update(b"}")
    elif isinstance(obj, list | tuple):
        digest.update(b"[")
        for item in obj:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(f"{type(obj).__name__} {obj!r};".encode())


def save_weights(path: str | Path, weights: dict, info: dict) -> None:
    """Write model weights with what they are (``{"step": ..., "val_loss": ...}``), atomically, checked."""
    save_torch(path, {"model": weights, **info})


def load_model(model_dir: str | Path, tokenizer: str | Path, device: torch.device | str = "cpu",
               mine: "Mine | None" = None) -> GPT:
    """The trained GPT in ``model_dir`` (model.pt + model.json), checked against ``tokenizer``.

    A model only makes sense with the tokenizer it was trained with: a different one fails
    here, with both hashes, instead of producing gibberish later. Likewise with the parts it
    was trained with: ``mine`` (the learner's, ``sml/learn/mine.py``) must be the model.json's ``impl``.
    """
    model_dir = Path(model_dir)
    info = model_info(model_dir)
    check_tokenizer(info, model_dir, tokenizer)
    check_model_impl(info["impl"], mine, model_dir)
    model = GPT(info["config"], info["vocab_size"], parts_for(info["config"], mine))
    weights = load_checkpoint(model_dir / "model.pt", device, if_damaged=RETRAIN)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError) as e:  # weights of another shape than model.json says
        raise SMLError(f"{model_dir / 'model.pt'} does not fit {model_dir / 'model.json'}"
                       f" ({' '.join(str(e).split())[:200]}): {RETRAIN}") from None
    return model.to(device)


def check_tokenizer(info: dict, model_dir: str | Path, tokenizer: str | Path) -> None:
    """Refuse a tokenizer other than the one the model was trained with (its sha256 in ``info``)."""
    actual = file_fingerprint(tokenizer)
    if info["tokenizer_sha256"] != actual:
        raise SMLError(
            f"{model_dir} was trained with tokenizer sha256 {info['tokenizer_sha256'][:12]}..., but"
            f" {tokenizer} has sha256 {actual[:12]}...: retrain (dvc repro train) or use its tokenizer"
        )


RETRAIN = "rerun the train stage (dvc repro -f train: it resumes from its checkpoint)"


def model_info(model_dir: str | Path) -> dict:
    """``model.json`` of a trained model: its config, tokenizer hash, metrics, train params, schedule, impl.

    ``info["config"]`` is the ``ModelConfig`` built from it (checked: a damaged file fails here).
    """
    path = Path(model_dir) / "model.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        impl = info.get("impl", {})  # absent: from before impl, every part the reference's
        if not isinstance(impl, dict) or not set(impl.values()) <= {"reference", "mine"}:
            raise ValueError(f"impl {impl!r} is not a mapping of parts to 'reference' or 'mine'")
        return info | {"config": ModelConfig(**info["model"]), "vocab_size": int(info["vocab_size"]),
                       "tokenizer_sha256": str(info["tokenizer_sha256"]), "impl": impl}
    except FileNotFoundError:
        raise SMLError(f"{path}: no trained model (run the train stage)") from None
    except (ValueError, UnicodeError, KeyError, TypeError, SMLError) as e:  # truncated, garbled, edited
        reason = f"no {e}" if isinstance(e, KeyError) else " ".join(str(e).split())[:120]
        raise SMLError(f"{path}: not a readable model description ({reason}): {RETRAIN}") from None


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
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise SMLError(f"{path}: cannot be read ({e.strerror}): run the train_bpe stage"
                       " (dvc repro train_bpe)") from None


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 20 else text[:17] + "..."
