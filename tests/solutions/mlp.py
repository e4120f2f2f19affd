"""A learner's correct MLP, written from the stub's contract alone (for the grader's tests)."""

import math

import torch


def gelu(h):
    return 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))


def mlp(x, fc_weight, fc_bias, proj_weight, proj_bias):
    h = x @ fc_weight.T
    if fc_bias is not None:
        h = h + fc_bias
    out = gelu(h) @ proj_weight.T
    if proj_bias is not None:
        out = out + proj_bias
    return out
