"""Broken on purpose: the targets are the inputs themselves, not the next tokens."""

from tests.solutions.training import *  # noqa: F403

EXPECT = "shifted by one"


def get_batch(tokens, starts, block_size):
    x = torch.stack([tokens[s : s + block_size] for s in starts.tolist()])  # noqa: F405
    return x, x.clone()
