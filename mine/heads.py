"""Part 5: splitting channels into heads and merging them back. LEARN.md, 5. Multi-head attention.

Grade it: ``make grade PART=heads``. Train with it: ``dvc exp run -S impl.heads=mine``.
The reference to compare with once yours passes: ``split_heads`` and ``merge_heads`` in
sml/model.py (and ``CausalSelfAttention.project``, which does the same to q, k and v at once).
"""

import torch


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """Cut each position's C channels into n_head heads of hs = C / n_head channels.

    x: (B, T, C) floats; C a multiple of n_head.
    Returns: (B, nh, T, hs); entry [b, h, t] = x[b, t, h*hs : (h+1)*hs], head h's slice
        of position t.

    What must hold: heads come before positions, so attention runs per head over the
    positions; a head's channels are a contiguous slice of C.
    """
    raise NotImplementedError("split_heads: write it (LEARN.md, 5. Multi-head attention)")


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    """Put the heads side by side again: the inverse of split_heads.

    y: (B, nh, T, hs) floats (attention's output; it may be a non-contiguous view).
    Returns: (B, T, C) with C = nh * hs; entry [b, t, h*hs : (h+1)*hs] = y[b, h, t].

    What must hold: merge_heads(split_heads(x, n_head)) equals x.
    """
    raise NotImplementedError("merge_heads: write it (LEARN.md, 5. Multi-head attention)")
