"""The optimizer and the learning-rate schedule.

AdamW with weight decay on the matrices only: decay pulls weights toward zero, which
regularizes matmul weights and embeddings, but would only distort biases and norm gains.

The learning rate rises linearly for ``warmup_iters`` steps (Adam's early moment estimates
are noisy), then follows a cosine from ``lr`` down to ``min_lr`` at ``max_iters``. It is a
pure function of the step, so resuming needs only the step number.
"""

import inspect
import math

import torch

from sml.config import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over ``model``'s parameters: matrices decayed, vectors not; fused on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused or None)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then cosine decay.

    >>> from types import SimpleNamespace as C
    >>> cfg = C(lr=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    >>> [round(lr_at(s, cfg), 3) for s in (0, 9, 10, 60, 110)]
    [0.1, 1.0, 1.0, 0.55, 0.1]
    """
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    progress = (step - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    progress = min(progress, 1.0)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def lr_curve(train: dict, schedule: list[dict]) -> list[float]:
    """The learning rate of steps 1..max_iters of a run, as model.json records it.

    ``train`` holds lr, min_lr, warmup_iters and max_iters; ``schedule`` says from which
    step on the cosine ran to which max_iters (more than one entry after "train longer").

    >>> train = {"lr": 1.0, "min_lr": 0.0, "warmup_iters": 2, "max_iters": 4}
    >>> lr_curve(train, [{"from_step": 0, "max_iters": 4}])
    [0.5, 1.0, 1.0, 0.5]
    """
    from types import SimpleNamespace

    lrs = []
    for step in range(train["max_iters"]):
        segment = [s for s in schedule if s["from_step"] <= step][-1]
        cfg = SimpleNamespace(**{**train, "max_iters": segment["max_iters"]})
        lrs.append(lr_at(step, cfg))
    return lrs
