"""Broken on purpose: weight decay added to the gradient (Adam with L2), not decoupled (AdamW)."""

from tests.solutions.training import *  # noqa: F403
from tests.solutions.training import adamw_step as right_step

EXPECT = "Adam with L2 in the gradient, not AdamW's decoupled decay"


def adamw_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    right_step(param, grad + weight_decay * param, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, 0.0)
