"""Broken on purpose: no causal mask."""

import math

import torch

EXPECT = "the causal mask is missing"


def attention(q, k, v, mask=None, dropout_p=0.0):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v
