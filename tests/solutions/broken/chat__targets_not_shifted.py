"""Broken on purpose: the targets are the inputs themselves, not the next ids."""

import torch

from tests.solutions.chat import render  # noqa: F401

EXPECT = "the shift by one is missed"


def inputs_and_targets(ids, learn):
    x = torch.tensor(ids[:-1])
    return x, x.masked_fill(~torch.tensor(learn[:-1]), -100)
