"""Broken on purpose: eps added to the standard deviation, not to the variance."""

EXPECT = "eps outside the square root"


def layer_norm(x, weight, bias, eps=1e-5):
    out = (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True, unbiased=False) + eps) * weight
    return out if bias is None else out + bias
