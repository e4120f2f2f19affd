"""A learner's correct embeddings, written from the stub's contract alone (for the grader's tests)."""

import torch


def embed(idx, token_table, position_rows=None):
    x = token_table[idx]  # (B, T, C)
    if position_rows is not None:
        x = x + position_rows
    return x


def sinusoidal_table(block_size, n_embd):
    p = torch.arange(block_size).float().unsqueeze(1)  # (T, 1)
    i = torch.arange(0, n_embd, 2).float()  # the even channels 0, 2, 4, ...
    w = 1.0 / 10000 ** (i / n_embd)
    table = torch.zeros(block_size, n_embd)
    table[:, 0::2] = torch.sin(p * w)
    table[:, 1::2] = torch.cos(p * w)
    return table


def rope(x, positions, base=10000.0):
    hs = x.shape[-1]
    w = base ** (-torch.arange(0, hs, 2).float() / hs)  # (hs/2,)
    t = positions.float().unsqueeze(1) * w  # (T, hs/2)
    cos, sin = torch.cos(t).to(x.dtype), torch.sin(t).to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = odd * cos + even * sin
    return out
