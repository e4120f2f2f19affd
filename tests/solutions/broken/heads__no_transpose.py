"""Broken on purpose: one view to the right shape, no transpose (heads and positions mixed)."""

EXPECT = "without the transpose: that mixes positions and heads"


def split_heads(x, n_head):
    B, T, C = x.shape
    return x.view(B, n_head, T, C // n_head)


def merge_heads(y):
    B, nh, T, hs = y.shape
    return y.reshape(B, T, nh * hs)
