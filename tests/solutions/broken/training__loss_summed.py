"""Broken on purpose: the loss is summed over positions, not averaged."""

from tests.solutions.training import *  # noqa: F403
from tests.solutions.training import cross_entropy as mean_loss

EXPECT = "sums over positions instead of averaging"


def cross_entropy(logits, targets):
    return mean_loss(logits, targets) * len(targets)
