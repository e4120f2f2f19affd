"""Broken on purpose: attention reads norm2, the MLP norm1."""

EXPECT = "norm1 and norm2 swapped"


def block(x, attend, mlp, norm1, norm2):
    x = x + attend(norm2(x))
    return x + mlp(norm1(x))
