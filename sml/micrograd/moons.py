"""The toy task: teach an MLP of ``Value`` s to separate two interleaved half-moons.

Training is the whole loop, written out: forward every point, a max-margin loss plus a
little L2 on the weights, ``zero_grad``, ``backward``, and a plain gradient step
``p.data -= lr * p.grad`` with a learning rate that decays linearly.

Left out on purpose: mini-batches (100 points fit in one step) and any optimizer but SGD.
"""

import gc

import numpy as np

from sml.micrograd.engine import Value, paused_gc
from sml.micrograd.nn import MLP


def make_moons(n_points: int = 100, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles: points (n, 2) and labels (n,) in {-1, +1}."""
    rng = np.random.default_rng(seed)
    n_top = n_points // 2
    t_top = np.pi * rng.random(n_top)
    t_bottom = np.pi * rng.random(n_points - n_top)
    top = np.stack([np.cos(t_top), np.sin(t_top)], axis=1)
    bottom = np.stack([1 - np.cos(t_bottom), 0.5 - np.sin(t_bottom)], axis=1)
    points = np.concatenate([top, bottom]) + noise * rng.standard_normal((n_points, 2))
    labels = np.concatenate([-np.ones(n_top), np.ones(n_points - n_top)])
    return points, labels


def loss_and_accuracy(model: MLP, points: np.ndarray, labels: np.ndarray, l2: float = 1e-4) -> tuple[Value, float]:
    """Mean hinge loss max(0, 1 - y * score) plus ``l2`` * sum of squared weights; and accuracy."""
    value = model.value  # Value, or the learner's
    scores = [model([value(float(a)), value(float(b))]) for a, b in points]
    hinge = [(1 - float(y) * s).relu() for y, s in zip(labels, scores, strict=True)]
    data_loss = sum(hinge, value(0.0)) * (1.0 / len(hinge))
    reg = l2 * sum((p * p for p in model.parameters()), value(0.0))
    correct = sum((s.data > 0) == (y > 0) for y, s in zip(labels, scores, strict=True))
    return data_loss + reg, correct / len(labels)


def train(model: MLP, points: np.ndarray, labels: np.ndarray, steps: int = 100, lr: float = 1.0,
          log=None) -> float:
    """Full-batch gradient descent; returns the final training accuracy (0 to 1)."""
    with paused_gc():
        for step in range(steps):
            loss, accuracy = loss_and_accuracy(model, points, labels)
            model.zero_grad()
            loss.backward()
            step_lr = lr * (1.0 - 0.9 * step / steps)  # decay to a tenth, to settle at the end
            for p in model.parameters():
                p.data -= step_lr * p.grad
            if log is not None and (step % 10 == 0 or step == steps - 1):
                log(f"step {step:3d}  loss {loss.data:.4f}  accuracy {accuracy:.0%}")
            del loss
            gc.collect(0)  # a learner's graph with cycles (see paused_gc)
        _, accuracy = loss_and_accuracy(model, points, labels)
    return accuracy
