"""Broken on purpose: torch.var's default, the unbiased variance (divided by C - 1)."""

import torch

EXPECT = "the variance is the unbiased one"


def layer_norm(x, weight, bias, eps=1e-5):
    out = (x - x.mean(dim=-1, keepdim=True)) / torch.sqrt(x.var(dim=-1, keepdim=True) + eps) * weight
    return out if bias is None else out + bias
