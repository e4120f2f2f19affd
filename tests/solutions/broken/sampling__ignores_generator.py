"""Broken on purpose: draws from torch's global generator, not the one given."""

import torch

from tests.solutions.sampling import pick as right_pick

EXPECT = "ignore the generator you are given"


def pick(logits, temperature, top_k, top_p, generator):
    return right_pick(logits, temperature, top_k, top_p, torch.default_generator)
