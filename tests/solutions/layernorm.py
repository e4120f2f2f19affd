"""A learner's correct layer norm, written from the stub's contract alone (for the grader's tests)."""

import torch


def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    out = (x - mean) / torch.sqrt(var + eps) * weight
    if bias is not None:
        out = out + bias
    return out
