"""Broken on purpose: each gradient is clipped by its own norm, not by the total."""

from tests.solutions.training import *  # noqa: F403

EXPECT = "clips each tensor on its own"


def clip_grad_norm(grads, max_norm):
    total = math.sqrt(sum((g ** 2).sum().item() for g in grads))  # noqa: F405
    for g in grads:
        own = g.norm().item()
        if own > max_norm:
            g *= max_norm / own
    return total
