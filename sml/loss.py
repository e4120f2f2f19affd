"""Cross-entropy written out: the loss the model trains on, step by step.

The model scores every vocabulary entry at every position (the logits). The loss at a
position is minus the log of the probability the softmax gives the right next token,
in nats (natural log; divide by ln 2 for bits); the batch's loss is the mean over
positions. A model that spreads its bets evenly over V entries scores ln V.

Written out, the softmax would overflow: exp(1000) is inf in float32. So the log of the
softmax is taken as one expression, with each row's largest logit subtracted first
(log-sum-exp), which changes nothing mathematically and keeps every exp at most 1.

A target of -100 is not scored (fine-tuning's loss mask, ``sml/chat.py``): the mean is over
the other positions, as PyTorch's ``ignore_index`` does.

The model calls ``torch.nn.functional.cross_entropy`` (one fused kernel);
``tests/test_loss.py`` shows that this function gives the same value and gradient.
Left out on purpose: label smoothing, class weights.
"""

import torch


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (nats) of ``targets`` (N,) int64 under ``logits`` (N, V).

    >>> round(cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3])).item(), 4)  # ln 4
    1.3863
    """
    scored = targets != -100  # (N,): fine-tuning marks the targets it does not learn with -100
    logits, targets = logits[scored], targets[scored]  # (n, V), (n,)
    biggest = logits.max(dim=-1, keepdim=True).values.detach()  # (n, 1): a constant, so no gradient
    shifted = logits - biggest  # (n, V), every entry <= 0: exp cannot overflow
    log_norm = shifted.exp().sum(dim=-1).log()  # (n,): log of the softmax's denominator
    right = shifted.gather(-1, targets[:, None])[:, 0]  # (n,): the right token's shifted logit
    return (log_norm - right).mean()  # -log softmax(logits)[target], averaged
