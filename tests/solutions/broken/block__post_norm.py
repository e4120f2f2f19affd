"""Broken on purpose: the original Transformer's post-norm, norm(x + branch(x))."""

EXPECT = "post-norm"


def block(x, attend, mlp, norm1, norm2):
    x = norm1(x + attend(x))
    return norm2(x + mlp(x))
