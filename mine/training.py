"""Part 9: training: batches, cross-entropy, clipping, the AdamW step, the lr schedule.
LEARN.md, 9. Training.

Grade it: ``make grade PART=training``. Train with it: ``dvc exp run -S impl.training=mine``.
The references to compare with once yours pass: ``RandomWindows.next`` in sml/batches.py,
``cross_entropy`` in sml/loss.py, ``clip_grad_norm``, ``adamw_step`` and ``warmup_cosine``
(what ``lr_at`` computes) in sml/optim.py.
"""

import torch


def get_batch(tokens: torch.Tensor, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and targets of one batch: a window of the token stream at each start.

    tokens: (N,) int64, the token stream. starts: (B,) int64, where each window begins
        (each start + block_size + 1 <= N: the window and its next token fit).
    Returns: (x, y), each (B, block_size), in the dtype of ``tokens``: int64 here. (The
        trainer hands in the token file itself, uint16, without a copy, and turns your x and y
        into int64: slicing and stacking keep the dtype, so the same code serves both.)

    What must hold: x[b] is tokens[starts[b] : starts[b] + block_size]; y[b] is the same window
    shifted by one, tokens[starts[b] + 1 : starts[b] + block_size + 1], so that at every
    position t the target y[b, t] is the token that follows the input x[b, t].
    """
    raise NotImplementedError("get_batch: write it (LEARN.md, 9. Training)")


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loss: mean negative log-likelihood of the right tokens, in nats.

    logits: (N, V) float, one row of scores per position. targets: (N,) int64, the right
        token at each position (0 <= target < V).
    Returns: a 0-dim float tensor, -log softmax(logits[i])[targets[i]] averaged over i.

    What must hold: natural log (nats, not bits); the mean over positions, not the sum;
    numerically stable: with logits near 1000 the result stays finite (subtract each row's
    largest logit before exp: log-sum-exp); gradients flow back to the logits (torch
    operations only, no .item() or F.cross_entropy).
    """
    raise NotImplementedError("cross_entropy: write it (LEARN.md, 9. Training)")


def clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> float:
    """Rescale the gradients in place so that their total L2 norm is at most ``max_norm``.

    grads: float tensors of any shapes (one per parameter). max_norm: > 0.
    Returns: the total norm before clipping, a Python float.

    What must hold: the total is sqrt(sum of every squared entry of every tensor), all
    tensors together; when total > max_norm every tensor is multiplied in place by the same
    factor max_norm / total (so the update keeps its direction); otherwise nothing changes.
    """
    raise NotImplementedError("clip_grad_norm: write it (LEARN.md, 9. Training)")


def adamw_step(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
               step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """One AdamW update, in place, as torch.optim.AdamW makes it.

    param, grad, exp_avg, exp_avg_sq: float tensors of one shape. exp_avg and exp_avg_sq are
        the running means of the gradient and of its square: zeros before the first step,
        updated here in place and handed back at the next step.
    step: the number of this update, counting from 1.
    Returns: nothing; param, exp_avg and exp_avg_sq are changed in place.

    What must hold: exp_avg = beta1 * exp_avg + (1 - beta1) * grad, and exp_avg_sq likewise
    with beta2 and grad ** 2; both bias-corrected (divided by 1 - beta ** step) before use;
    param moves by -lr * corrected mean / (sqrt(corrected mean square) + eps); weight decay is
    decoupled: first param shrinks by the factor (1 - lr * weight_decay), then it makes that
    move; the decay is never added to the gradient.
    """
    raise NotImplementedError("adamw_step: write it (LEARN.md, 9. Training)")


def lr_at(step: int, lr: float, min_lr: float, warmup_iters: int, max_iters: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine decay.

    Returns: a Python float.

    What must hold: during warmup (step < warmup_iters) the rate rises linearly from
    lr / warmup_iters at step 0 to lr at step warmup_iters - 1 (never 0); then a cosine from
    lr at step warmup_iters down to min_lr at step max_iters; min_lr after max_iters.
    warmup_iters 0 means no warmup.
    """
    raise NotImplementedError("lr_at: write it (LEARN.md, 9. Training)")
