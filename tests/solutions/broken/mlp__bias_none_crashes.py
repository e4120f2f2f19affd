"""Broken on purpose: adds the biases even when they are None."""

import torch.nn.functional as F

EXPECT = "when a bias is None, add nothing"


def mlp(x, fc_weight, fc_bias, proj_weight, proj_bias):
    return F.gelu(x @ fc_weight.T + fc_bias) @ proj_weight.T + proj_bias
