"""The optimizer and the learning-rate schedule.

AdamW with weight decay on the matrices only: decay pulls weights toward zero, which
regularizes matmul weights and embeddings, but would only distort biases and norm gains.

Muon (``train.optimizer: muon``, PyTorch's ``torch.optim.Muon``, as in modded-nanogpt and
nanochat) for the transformer blocks' weight matrices: it replaces each update by the
nearest orthogonal matrix (a few Newton-Schulz iterations), so every direction of the
matrix learns at the same rate. It is meant for hidden matrices only: the embeddings, the
output head, norms and biases keep AdamW. Its learning rate is ``train.muon_lr``, on
AdamW's scale (``adjust_lr_fn="match_rms_adamw"``), and follows the same schedule.

The learning rate rises linearly for ``warmup_iters`` steps (Adam's early moment estimates
are noisy), then follows a cosine from ``lr`` down to ``min_lr`` at ``max_iters``. It is a
pure function of the step, so resuming needs only the step number.

``clip_grad_norm`` and ``adamw_step`` at the bottom write out, for reading, what PyTorch
computes in fused kernels (``fused_clip_grad_norm``, ``torch.optim.AdamW``), which a default
run uses; ``tests/test_optim_written_out.py`` shows the two agree. The trainer calls them
through ``sml/parts.py``: a learner's ``adamw_step`` (``impl.training: mine``) steps each
parameter in ``WrittenAdamW``, SML's own runs as ``torch.optim.AdamW``.
"""

import inspect
import math
from collections.abc import Callable

import torch

from sml.config import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                   update: Callable | None = None) -> "Optimizers":
    """AdamW over ``model``'s parameters (matrices decayed, vectors not; fused on CUDA), or,
    with ``cfg.optimizer == "muon"``, Muon for the blocks' matrices and AdamW for the rest.
    ``update``: the ``adamw_step`` AdamW's parameters take; SML's own (the default) runs as
    ``torch.optim.AdamW``, one fused step per group that computes the same.

    Each parameter group carries ``lr_scale``: its learning rate is ``lr_at(step) * lr_scale``.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    hidden = [p for n, p in named if cfg.optimizer == "muon" and n.startswith("blocks.") and p.dim() == 2]
    rest = [p for _, p in named if not any(p is h for h in hidden)]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0, "lr_scale": 1.0},
    ]
    fused = device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
    if update is None or update is adamw_step:
        parts = [torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused or None)]
    else:  # someone else's update, parameter by parameter
        parts = [WrittenAdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), update=update)]
    if hidden:
        parts.append(torch.optim.Muon([{"params": hidden, "lr_scale": cfg.muon_lr / cfg.lr}], lr=cfg.muon_lr,
                                      weight_decay=cfg.weight_decay, adjust_lr_fn="match_rms_adamw"))
    return Optimizers(parts)


class Optimizers:
    """Several optimizers used as one: each over its own parameters, stepped together.

    What the training loop and ``torch.amp.GradScaler`` use of an optimizer: ``param_groups``,
    ``step``, ``zero_grad``, ``state_dict`` and ``load_state_dict``.
    """

    def __init__(self, parts: list[torch.optim.Optimizer]):
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        return [group for part in self.parts for group in part.param_groups]

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {type(part).__name__: part.state_dict() for part in self.parts}

    def load_state_dict(self, state: dict) -> None:
        for part in self.parts:
            part.load_state_dict(state[type(part).__name__])


def lr_at(step: int, cfg: TrainConfig, schedule: Callable | None = None) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then cosine decay
    (``train.schedule: cosine``; ``schedule``: a ``warmup_cosine``, the learner's ``lr_at``, in
    place of ours), or stable then a linear decay at the end (``wsd``: ``warmup_stable_decay``).

    >>> from types import SimpleNamespace as C
    >>> cfg = C(lr=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    >>> [round(lr_at(s, cfg), 3) for s in (0, 9, 10, 60, 110)]
    [0.1, 1.0, 1.0, 0.55, 0.1]
    """
    if getattr(cfg, "schedule", "cosine") == "wsd":  # (a model.json from before wsd has no schedule key)
        return warmup_stable_decay(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters, cfg.decay_fraction)
    return (schedule or warmup_cosine)(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)


def warmup_stable_decay(step: float, lr: float, min_lr: float, warmup_iters: int, max_iters: int,
                        decay_fraction: float) -> float:
    """Warmup as ``warmup_cosine``, then lr held, then a straight line down to min_lr over the last
    ``decay_fraction`` of max_iters (WSD: MiniCPM, 2024). Trained longer, a run goes on from its
    stable phase: only the short decay is done again.

    >>> [warmup_stable_decay(s, 1.0, 0.0, 2, 10, 0.5) for s in (0, 1, 2, 5, 6, 8, 10, 12)]
    [0.5, 1.0, 1.0, 1.0, 0.8, 0.4, 0.0, 0.0]
    """
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    decay_from = max(warmup_iters, max_iters * (1.0 - decay_fraction))
    progress = min(max(step - decay_from, 0.0) / max(1.0, max_iters - decay_from), 1.0)
    return lr + (min_lr - lr) * progress


def warmup_cosine(step: int, lr: float, min_lr: float, warmup_iters: int, max_iters: int) -> float:
    """``lr_at`` with the four numbers spelled out (what mine/training.py's ``lr_at`` writes).

    Warmup: step 0 gets lr / warmup_iters, step warmup_iters - 1 the full lr (never 0: a
    step at rate 0 would be wasted). Then a cosine from lr at step warmup_iters down to
    min_lr at max_iters, and min_lr after.

    >>> [round(warmup_cosine(s, 1.0, 0.0, 2, 4), 3) for s in (0, 1, 2, 3, 4, 5)]
    [0.5, 1.0, 1.0, 0.5, 0.0, 0.0]
    """
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    progress = (step - warmup_iters) / max(1, max_iters - warmup_iters)
    progress = min(progress, 1.0)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


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


class WrittenAdamW(torch.optim.Optimizer):
    """AdamW with the update written out: ``update`` (an ``adamw_step``) moves each parameter.

    What the trainer runs with ``impl.training: mine``, the learner's ``adamw_step`` as
    ``update``. It keeps the state ``torch.optim.AdamW`` keeps (a step count and the two
    moments per parameter), so checkpoints save and resume it the same way.
    """

    def __init__(self, groups: list[dict], lr: float, betas: tuple[float, float], eps: float = 1e-8,
                 update: Callable | None = None):
        super().__init__(groups, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": 0.0})
        self.update = update or adamw_step

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # before its first step: moments of zero
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                self.update(p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"], group["lr"],
                            beta1, beta2, group["eps"], group["weight_decay"])


# ---- the trainer's two library calls, written out (mine/training.py writes these) ------------

def fused_clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm`` as PyTorch computes it (``torch.nn.utils.clip_grad_norm_``'s two halves):
    the total norm in one fused call, then every gradient times min(1, max_norm / norm)."""
    total = torch.nn.utils.get_total_norm(grads)
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # no `if`: no sync with a GPU
    for g in grads:
        g.mul_(scale)
    return total


def clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> float:
    """Scale ``grads`` in place so that their total L2 norm is at most ``max_norm``; return the
    total before clipping. What ``torch.nn.utils.clip_grad_norm_`` does in ``train_step``.

    The norm is over every entry of every tensor together, and all tensors are scaled by the
    same factor: the update keeps its direction, only its length shrinks.

    >>> g = [torch.tensor([3.0]), torch.tensor([4.0])]
    >>> clip_grad_norm(g, 1.0), [round(t.item(), 3) for t in g]
    (5.0, [0.6, 0.8])
    """
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
    scale = max_norm / (total + 1e-6)  # as PyTorch does: + 1e-6 so that zero gradients divide safely
    if scale < 1.0:
        for g in grads:
            g.mul_(scale)
    return total


@torch.no_grad()
def adamw_step(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
               step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """One AdamW update of ``param`` in place (``step`` counts from 1), as ``torch.optim.AdamW``.

    ``exp_avg`` and ``exp_avg_sq`` (zeros before step 1) are the running means of the gradient
    and of its square, updated in place. Both start at zero, so early on they are too small:
    dividing by 1 - beta ** step corrects that (bias correction). Weight decay shrinks the
    weight directly (decoupled, the "W"), instead of adding weight_decay * param to the
    gradient, where Adam's normalization would undo most of it.
    """
    param.mul_(1.0 - lr * weight_decay)  # decoupled decay
    exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    mean = exp_avg / (1.0 - beta1 ** step)  # bias-corrected first moment
    rms = (exp_avg_sq / (1.0 - beta2 ** step)).sqrt()  # bias-corrected root mean square
    param.add_(-lr * mean / (rms + eps))
