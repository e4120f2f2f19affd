"""Broken on purpose: merge_heads calls .view() on a transposed (non-contiguous) tensor."""

from tests.solutions.heads import *  # noqa: F403

EXPECT = "cannot .view() a transposed tensor"


def merge_heads(y):
    B, nh, T, hs = y.shape
    return y.transpose(1, 2).view(B, T, nh * hs)
