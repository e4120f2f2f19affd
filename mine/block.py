"""Part 8: the transformer block: two residual branches. LEARN.md, 8. The transformer block.

Grade it: ``make grade PART=block``. Train with it: ``dvc exp run -S impl.block=mine``.
The reference to compare with once yours passes: ``block`` in sml/model.py (which
``Block.forward`` calls).
"""

import torch


def block(x: torch.Tensor, attend, mlp, norm1, norm2) -> torch.Tensor:
    """One pre-norm transformer block on the residual stream x.

    x: (B, T, C) floats, the residual stream.
    attend, mlp, norm1, norm2: callables, each (B, T, C) -> (B, T, C): the block's attention,
        its MLP, and the norms in front of each (norm1 for attention, norm2 for the MLP).
    Returns: (B, T, C): first x + attend(norm1(x)), then that plus mlp(norm2(that)).

    What must hold: each branch reads a normalised copy of the stream and adds its output to
    the stream (pre-norm: the sum itself is never normalised); the MLP reads the stream after
    attention's output was added; a branch returning zeros leaves x unchanged; x itself is not
    modified in place (autograd needs it for the backward pass).
    """
    raise NotImplementedError("block: write it (LEARN.md, 8. The transformer block)")
