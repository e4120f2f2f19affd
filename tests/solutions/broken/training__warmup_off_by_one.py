"""Broken on purpose: the warmup starts at 0 (lr * step / warmup_iters), one step late."""

from tests.solutions.training import *  # noqa: F403
from tests.solutions.training import lr_at as right_lr

EXPECT = "the warmup is off by one"


def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * step / warmup_iters
    return right_lr(step, lr, min_lr, warmup_iters, max_iters)
