"""Broken on purpose: x @ weight, as if the weights were (in, out)."""

import torch.nn.functional as F

EXPECT = "nn.Linear's (out, in) layout"


def mlp(x, fc_weight, fc_bias, proj_weight, proj_bias):
    return F.gelu(x @ fc_weight + fc_bias) @ proj_weight + proj_bias
