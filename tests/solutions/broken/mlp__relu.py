"""Broken on purpose: ReLU where the MLP has GELU."""

import torch

from tests.solutions.mlp import *  # noqa: F403

EXPECT = "uses ReLU"


def mlp(x, fc_weight, fc_bias, proj_weight, proj_bias):
    h = torch.relu(x @ fc_weight.T + fc_bias)
    return h @ proj_weight.T + proj_bias
