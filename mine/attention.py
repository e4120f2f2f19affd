"""Part 4: scaled dot-product attention with the causal mask. LEARN.md, 4. Attention.

Grade it: ``make grade PART=attention``. Train with it: ``dvc exp run -S impl.attention=mine``.
The reference to compare with once yours passes: ``attention`` in sml/model.py.
"""

import torch


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              dropout_p: float = 0.0) -> torch.Tensor:
    """Each query's weighted mix of the values.

    q: (B, nh, Tq, hs) queries; k, v: (B, nh, Tk, hs) keys and values (float tensors).
    mask: (Tq, Tk) booleans, True where a query may see a key; None means causal (Tq == Tk,
        query i sees keys 0..i, itself included).
    dropout_p: while training, drop each attention weight with this probability (and scale
        the rest by 1 / (1 - p)); 0.0 (the default, and always when grading) means none.
    Returns: (B, nh, Tq, hs).

    What must hold: scores are q @ k^T divided by sqrt(hs); a query never sees a key the mask
    hides (its score becomes -inf before the softmax); the softmax runs over the keys, so each
    query's weights sum to 1; gradients flow back to q, k and v.
    """
    raise NotImplementedError("attention: write it (LEARN.md, 4. Attention)")
