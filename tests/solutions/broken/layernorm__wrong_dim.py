"""Broken on purpose: normalised over the positions (dim 1) instead of the channels."""

import torch

EXPECT = "normalised over the positions (dim 1)"


def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, keepdim=True, unbiased=False)
    out = (x - mean) / torch.sqrt(var + eps) * weight
    return out if bias is None else out + bias
