"""Broken on purpose: attention's output replaces the stream instead of adding to it."""

EXPECT = "the attention branch's residual is dropped"


def block(x, attend, mlp, norm1, norm2):
    x = attend(norm1(x))
    return x + mlp(norm2(x))
