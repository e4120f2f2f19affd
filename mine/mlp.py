"""Part 7: the feed-forward network of a block. LEARN.md, 7. The MLP.

Grade it: ``make grade PART=mlp``. Train with it: ``dvc exp run -S impl.mlp=mine``.
The reference to compare with once yours passes: ``mlp`` in sml/model.py (which the ``MLP``
module calls for model.mlp: gelu).
"""

import torch


def mlp(x: torch.Tensor, fc_weight: torch.Tensor, fc_bias: torch.Tensor | None, proj_weight: torch.Tensor,
        proj_bias: torch.Tensor | None) -> torch.Tensor:
    """Widen each position's vector, apply GELU, project it back.

    x: (B, T, C) floats.
    fc_weight: (H, C), fc_bias: (H,) or None: the widening layer (H = 4C in SML).
    proj_weight: (C, H), proj_bias: (C,) or None: the projection back.
    The weights are in nn.Linear's (out_features, in_features) layout, so a layer is
    x @ weight.T + bias.
    Returns: (B, T, C) = gelu(x @ fc_weight.T + fc_bias) @ proj_weight.T + proj_bias.

    What must hold: GELU is the exact form, gelu(h) = h * Phi(h) = 0.5 h (1 + erf(h / sqrt 2)),
    not ReLU nor the tanh approximation; H comes from the weights' shape; a None bias adds
    nothing; each position is computed on its own; gradients flow back to x and the weights.
    """
    raise NotImplementedError("mlp: write it (LEARN.md, 7. The MLP)")
