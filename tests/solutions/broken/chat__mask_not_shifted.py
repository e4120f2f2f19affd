"""Broken on purpose: the targets are shifted, their flags are not."""

import torch

from tests.solutions.chat import render  # noqa: F401

EXPECT = "the mask is not shifted with the targets"


def inputs_and_targets(ids, learn):
    return torch.tensor(ids[:-1]), torch.tensor(ids[1:]).masked_fill(~torch.tensor(learn[:-1]), -100)
