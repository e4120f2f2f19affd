"""Broken on purpose: RoPE in the GPT-NeoX layout, channel i paired with channel i + hs/2."""

import torch

from tests.solutions.embeddings import *  # noqa: F403

EXPECT = "rotates halves (the GPT-NeoX / Hugging Face layout), SML rotates interleaved pairs"


def rope(x, positions, base=10000.0):
    hs = x.shape[-1]
    t = positions.float().unsqueeze(1) * base ** (-torch.arange(0, hs, 2).float() / hs)
    cos, sin = torch.cos(t).to(x.dtype), torch.sin(t).to(x.dtype)
    first, second = x[..., : hs // 2], x[..., hs // 2:]
    return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)
