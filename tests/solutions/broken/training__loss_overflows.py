"""Broken on purpose: softmax written out without subtracting the max, so exp(1000) overflows."""

from tests.solutions.training import *  # noqa: F403

EXPECT = "log-sum-exp"


def cross_entropy(logits, targets):
    probs = torch.exp(logits) / torch.exp(logits).sum(dim=1, keepdim=True)  # noqa: F405
    return -torch.log(probs[torch.arange(len(targets)), targets]).mean()  # noqa: F405
