"""A tiny neural-network library on top of ``Value``, shaped like ``torch.nn``.

A ``Neuron`` computes act(w . x + b); a ``Layer`` is several neurons side by side; an
``MLP`` stacks layers. Every weight is a ``Value``, so a loss built from the outputs can
``backward()`` into all of them, and ``parameters()`` / ``zero_grad()`` work as in PyTorch.

Every class takes ``value``, the number type to build from: ``Value`` here, the learner's
own ``Value`` with ``impl.micrograd: mine`` (mine/micrograd.py).

Left out on purpose: optimizers (training writes plain gradient descent in full).
"""

import random

from sml.micrograd.engine import Value


class Module:
    """Something with parameters, like ``torch.nn.Module``."""

    def parameters(self) -> list[Value]:
        return []

    def zero_grad(self) -> None:
        """Forget the gradients of the last backward pass (they accumulate otherwise)."""
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    """act(sum_i w_i x_i + b), with act = tanh, relu, or none (a linear output)."""

    def __init__(self, n_inputs: int, activation: str = "tanh", rng: random.Random | None = None,
                 value: type = Value):
        rng = rng or random.Random(0)
        scale = n_inputs**-0.5  # keeps w . x about unit size at the start
        self.w = [value(rng.uniform(-1, 1) * scale) for _ in range(n_inputs)]
        self.b = value(0.0)
        self.activation = activation

    def __call__(self, x: list) -> Value:
        out = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        if self.activation == "tanh":
            return out.tanh()
        if self.activation == "relu":
            return out.relu()
        return out

    def parameters(self) -> list[Value]:
        return self.w + [self.b]


class Layer(Module):
    """``n_outputs`` neurons, each seeing every input."""

    def __init__(self, n_inputs: int, n_outputs: int, activation: str = "tanh", rng: random.Random | None = None,
                 value: type = Value):
        self.neurons = [Neuron(n_inputs, activation, rng, value) for _ in range(n_outputs)]

    def __call__(self, x: list) -> list[Value]:
        return [n(x) for n in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]


class MLP(Module):
    """A multi-layer perceptron: hidden layers with ``activation``, a linear output layer."""

    def __init__(self, n_inputs: int, sizes: list[int], activation: str = "tanh", seed: int = 0,
                 value: type = Value):
        rng = random.Random(seed)
        widths = [n_inputs, *sizes]
        self.value = value  # what inputs are made of, too
        self.layers = [
            Layer(widths[i], widths[i + 1], activation if i < len(sizes) - 1 else "linear", rng, value)
            for i in range(len(sizes))
        ]

    def __call__(self, x: list) -> Value | list[Value]:
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]
