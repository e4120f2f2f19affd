"""The written-out optimizer pieces in sml/optim.py equal what the trainer takes from PyTorch."""

from types import SimpleNamespace

import pytest
import torch

from sml.optim import adamw_step, clip_grad_norm, lr_at, warmup_cosine


def grads(seed: int, scale: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) * scale for shape in ((3, 4), (4,), (2, 2, 3))]


@pytest.mark.parametrize("scale", [0.01, 3.0])  # below max_norm: untouched; above: scaled down
def test_clip_grad_norm_equals_pytorchs(scale):
    ours = grads(0, scale)
    params = [torch.zeros_like(g, requires_grad=True) for g in ours]
    for p, g in zip(params, grads(0, scale), strict=True):
        p.grad = g
    want = torch.nn.utils.clip_grad_norm_(params, 1.0)
    got = clip_grad_norm(ours, 1.0)
    assert got == pytest.approx(want.item(), rel=1e-6)
    for g, p in zip(ours, params, strict=True):
        torch.testing.assert_close(g, p.grad)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_step_equals_torch_optim_adamw_over_several_steps(weight_decay):
    settings = {"lr": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": weight_decay}
    start = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    theirs = start.clone().requires_grad_()
    adam = torch.optim.AdamW([theirs], lr=settings["lr"], betas=(settings["beta1"], settings["beta2"]),
                             eps=settings["eps"], weight_decay=weight_decay)
    ours, exp_avg, exp_avg_sq = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for step, grad in enumerate(grads(2, 1.0)[:1] * 2 + grads(3, 0.5)[:1] * 3, start=1):
        theirs.grad = grad.clone()
        adam.step()
        adamw_step(ours, grad, exp_avg, exp_avg_sq, step, **settings)
    state = adam.state[theirs]
    torch.testing.assert_close(ours, theirs.detach())
    torch.testing.assert_close(exp_avg, state["exp_avg"])
    torch.testing.assert_close(exp_avg_sq, state["exp_avg_sq"])


def test_lr_at_is_warmup_cosine_of_the_configs_numbers():
    cfg = SimpleNamespace(lr=3e-3, min_lr=3e-4, warmup_iters=7, max_iters=40)
    for step in range(50):
        assert lr_at(step, cfg) == warmup_cosine(step, 3e-3, 3e-4, 7, 40)
