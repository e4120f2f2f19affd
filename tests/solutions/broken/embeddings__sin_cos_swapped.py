"""Broken on purpose: cosines on the even channels, sines on the odd ones."""

import torch

from tests.solutions.embeddings import *  # noqa: F403

EXPECT = "sin and cos swapped"


def sinusoidal_table(block_size, n_embd):
    p = torch.arange(block_size).float().unsqueeze(1)
    w = 1.0 / 10000 ** (torch.arange(0, n_embd, 2).float() / n_embd)
    table = torch.zeros(block_size, n_embd)
    table[:, 0::2] = torch.cos(p * w)
    table[:, 1::2] = torch.sin(p * w)
    return table
