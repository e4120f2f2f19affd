"""Part 10: sampling: greedy, temperature, top-k and top-p. LEARN.md, 10. Sampling.

Grade it: ``make grade PART=sampling``. Sample with it: ``dvc exp run -S impl.sampling=mine``.
The reference to compare with once yours passes: ``pick`` in sml/generate.py.
"""

import torch


def pick(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
         generator: torch.Generator) -> int:
    """Choose the next token id from one position's logits.

    logits: (V,) float, a score per vocabulary entry.
    temperature: 0 means greedy (the most likely id, no draw); otherwise the logits are
        divided by it before the softmax (below 1 sharper, above 1 flatter).
    top_k: keep only the k most likely ids as candidates; 0 (or k >= V) means all.
    top_p: keep only the smallest set of most likely ids whose probabilities (after the
        temperature and top-k) add up to at least top_p, at least one; 1.0 means all.
    generator: a CPU torch.Generator; draw with it (torch.multinomial(..., generator=generator))
        so that a seed fixes the text.
    Returns: a Python int, the chosen id (an index into logits).

    What must hold: greedy is argmax; a draw is always one of the candidates, and every
    candidate can be drawn, with probability proportional to exp(logit / temperature).
    """
    raise NotImplementedError("pick: write it (LEARN.md, 10. Sampling)")
