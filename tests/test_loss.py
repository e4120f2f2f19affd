"""Cross-entropy written out (sml/loss.py) gives what the model's F.cross_entropy gives."""

import math

import pytest
import torch
import torch.nn.functional as F

from sml.loss import cross_entropy


def test_the_written_out_loss_and_its_gradient_equal_pytorchs():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(12, 9, generator=g) * 3).requires_grad_()
    targets = torch.randint(0, 9, (12,), generator=g)
    ours = cross_entropy(logits, targets)
    (grad,) = torch.autograd.grad(ours, logits)
    theirs = F.cross_entropy(logits, targets)
    (want,) = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(grad, want)


def test_logits_near_1000_stay_finite():
    logits = torch.tensor([[1000.0, 999.0, 0.0], [-1000.0, 1000.0, 1000.0]])
    targets = torch.tensor([0, 2])
    loss = cross_entropy(logits, targets)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets))


def test_even_bets_over_v_entries_score_ln_v_nats():
    assert cross_entropy(torch.zeros(3, 50), torch.tensor([0, 7, 49])).item() == pytest.approx(math.log(50), rel=1e-6)



def test_targets_of_minus_100_are_not_scored_as_in_pytorch():
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(10, 7, generator=g) * 2).requires_grad_()
    targets = torch.randint(0, 7, (10,), generator=g)
    targets[[0, 3, 4, 9]] = -100  # fine-tuning's unlearned targets (sml/chat.py)
    ours = cross_entropy(logits, targets)
    theirs = F.cross_entropy(logits, targets)
    torch.testing.assert_close(ours, theirs)
    (grad,) = torch.autograd.grad(ours, logits)
    torch.testing.assert_close(grad, torch.autograd.grad(theirs, logits)[0])
    assert grad[[0, 3, 4, 9]].abs().max() == 0
    torch.testing.assert_close(ours, F.cross_entropy(logits[targets != -100], targets[targets != -100]))
