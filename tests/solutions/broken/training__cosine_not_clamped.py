"""Broken on purpose: the cosine runs on past max_iters, so the rate rises again."""

from tests.solutions.training import *  # noqa: F403

EXPECT = "rises again"


def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    progress = (step - warmup_iters) / max(1, max_iters - warmup_iters)
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2  # noqa: F405
