"""Broken on purpose: x += ..., which changes the caller's tensor."""

EXPECT = "changed its input x in place"


def block(x, attend, mlp, norm1, norm2):
    x += attend(norm1(x))
    x += mlp(norm2(x))
    return x
