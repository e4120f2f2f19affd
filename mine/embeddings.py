"""Part 3: token and position embeddings: learned, sinusoidal, RoPE. LEARN.md, 3. Embeddings.

Grade it: ``make grade PART=embeddings``. Train with it: ``dvc exp run -S impl.embeddings=mine``.
The reference to compare with once yours passes: ``embed``, ``sinusoidal_table`` and ``rope``
in sml/model.py (and ``GPT.embed``, ``Rotary``, which use them or agree with them).
"""

import torch


def embed(idx: torch.Tensor, token_table: torch.Tensor, position_rows: torch.Tensor | None = None) -> torch.Tensor:
    """The vector of each token: its row of the token table, plus its position's row.

    idx: (B, T) token ids (int64), each in 0 .. V-1.
    token_table: (V, C) floats, one learned row per vocabulary id.
    position_rows: (T, C) floats, the row to add at each position t (a learned table's rows,
        or the sinusoidal table's); None when positions enter elsewhere (RoPE).
    Returns: (B, T, C), entry [b, t] = token_table[idx[b, t]] + position_rows[t].

    What must hold: the same token at two positions gets two different vectors (when
    position_rows is given); gradients flow back to token_table and position_rows.
    """
    raise NotImplementedError("embed: write it (LEARN.md, 3. Embeddings)")


def sinusoidal_table(block_size: int, n_embd: int) -> torch.Tensor:
    """The fixed position code of "Attention Is All You Need": one row per position.

    Returns: (block_size, n_embd) float32. Channel pair i (channels 2i and 2i + 1, n_embd
    even) has the frequency w_i = 1 / 10000^(2i / n_embd) radians per position; at position p,
    the even channel holds sin(p * w_i) and the odd channel cos(p * w_i).

    >>> sinusoidal_table(2, 4)[1]  # position 1: sin(1), cos(1), sin(0.01), cos(0.01)
    tensor([0.8415, 0.5403, 0.0100, 0.9999])
    """
    raise NotImplementedError("sinusoidal_table: write it (LEARN.md, 3. Embeddings)")


def rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE: rotate each (even, odd) channel pair of the queries or keys by its position's angle.

    x: (..., T, hs) floats (queries or keys, e.g. (B, nh, T, hs)); hs even.
    positions: (T,) int64, where each of the T rows sits (0..T-1, or later with a KV cache).
    base: sets the frequencies: pair i (channels 2i, 2i + 1) turns by
        positions[t] * base^(-2i / hs) radians.
    Returns: x's shape and dtype; the pair (a, b) at angle t becomes
        (a cos t - b sin t, b cos t + a sin t).

    What must hold: pairs are interleaved channels (0, 1), (2, 3), ... (not the first half
    with the second); a query at position i and a key at position j score the same for any
    i, j the same distance apart; bfloat16 in gives bfloat16 out; gradients flow back to x.
    """
    raise NotImplementedError("rope: write it (LEARN.md, 3. Embeddings)")
