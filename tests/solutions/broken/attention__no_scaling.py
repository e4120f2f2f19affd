"""Broken on purpose: scores not divided by sqrt(head size)."""

import torch

EXPECT = "not divided by sqrt(head size)"


def attention(q, k, v, mask=None, dropout_p=0.0):
    T = q.shape[-2]
    if mask is None:
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    return torch.softmax((q @ k.transpose(-2, -1)).masked_fill(~mask, float("-inf")), dim=-1) @ v
