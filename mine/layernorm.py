"""Part 6: layer normalization, written out. LEARN.md, 6. Layer norm.

Grade it: ``make grade PART=layernorm``. Train with it: ``dvc exp run -S impl.layernorm=mine``.
The reference to compare with once yours passes: ``layer_norm`` in sml/model.py (equal to
PyTorch's ``nn.LayerNorm``, which the model uses).
"""

import torch


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float = 1e-5) -> torch.Tensor:
    """Normalise each position's channels to mean 0 and variance 1, then scale and shift them.

    x: (..., C) floats, e.g. (B, T, C).
    weight: (C,) the learned scale; bias: (C,) the learned shift, or None (model.bias: false).
    eps: added to the variance so that a position whose channels are all equal does not
        divide by zero.
    Returns: x's shape: (x - mean) / sqrt(var + eps) * weight + bias, mean and var taken
        over the last dim (the C channels of one position).

    What must hold: before weight and bias, each position has mean 0 and variance 1 over
    its channels; the variance is the biased one (divide by C, not C - 1); eps sits inside
    the square root; gradients flow back to x, weight and bias. Write it out: no
    F.layer_norm or nn.LayerNorm.
    """
    raise NotImplementedError("layer_norm: write it (LEARN.md, 6. Layer norm)")
