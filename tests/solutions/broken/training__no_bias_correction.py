"""Broken on purpose: Adam's moments are used without bias correction."""

from tests.solutions.training import *  # noqa: F403

EXPECT = "no bias correction"


def adamw_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    with torch.no_grad():  # noqa: F405
        param *= 1 - lr * weight_decay
        exp_avg.mul_(beta1).add_((1 - beta1) * grad)
        exp_avg_sq.mul_(beta2).add_((1 - beta2) * grad * grad)
        param -= lr * exp_avg / (exp_avg_sq.sqrt() + eps)
