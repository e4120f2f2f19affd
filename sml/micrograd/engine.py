"""A scalar autograd engine: every number remembers how it was made, so gradients flow back.

A ``Value`` holds a number (``data``), its gradient (``grad``: d output / d this value), the
values it was computed from (``_prev``), and a ``_backward`` closure that applies the
chain rule for the one operation that made it. Each operation below writes its forward
value and its local derivative side by side:

    c = a * b            forward:  c.data = a.data * b.data
                         backward: a.grad += b.data * c.grad   (dc/da = b)
                                   b.grad += a.data * c.grad   (dc/db = a)

``backward()`` orders the graph so every node comes after all the nodes it depends on
(a topological sort), sets the output's gradient to 1, and calls each ``_backward`` from the
output toward the inputs. A closure is handed its output (``node._backward(node)``) rather
than capturing it: capturing would make every node a reference cycle (node -> closure ->
node), which Python frees only in slow, repeated cycle collections.

Gradients are *added* (``+=``): a value used twice gets the sum of both paths, as the
multivariate chain rule says.

The sort is iterative (an explicit stack), so a chain of 10,000 operations does not hit
Python's recursion limit.

Left out on purpose: tensors, batching, and any speed: this is for reading, and PyTorch
(which the tests compare against) does the same thing for whole arrays at once.
"""

import contextlib
import gc
import math


class Value:
    """A scalar that records the operations applied to it, for reverse-mode differentiation."""

    __slots__ = ("data", "grad", "_backward", "_prev", "_op", "label")

    def __init__(self, data: float, _prev: tuple["Value", ...] = (), _op: str = "", label: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self._backward = _no_backward
        self._prev = _prev
        self._op = _op  # the operation that made this value, for drawing the graph
        self.label = label

    # ---- operations: forward value and local gradient, side by side -------------------------

    def __add__(self, other) -> "Value":
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward(out: Value):  # d(a+b)/da = 1, d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other) -> "Value":
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward(out: Value):  # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> "Value":
        if isinstance(exponent, Value):
            raise TypeError("only constant exponents: write exp(b * log(a)) for a ** b")
        out = Value(self.data**exponent, (self,), f"**{exponent:g}")

        def _backward(out: Value):  # d(a^n)/da = n a^(n-1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> "Value":
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward(out: Value):  # d(e^a)/da = e^a
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> "Value":
        out = Value(math.log(self.data), (self,), "log")

        def _backward(out: Value):  # d(ln a)/da = 1/a
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> "Value":
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward(out: Value):  # d(tanh a)/da = 1 - tanh(a)^2
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> "Value":
        out = Value(max(0.0, self.data), (self,), "relu")

        def _backward(out: Value):  # d(relu a)/da = 1 if a > 0 else 0
            self.grad += (out.data > 0) * out.grad

        out._backward = _backward
        return out

    # ---- the rest is built from the operations above -----------------------------------------

    def __neg__(self) -> "Value":
        return self * -1.0

    def __sub__(self, other) -> "Value":
        return self + (-_as_value(other))

    def __truediv__(self, other) -> "Value":
        return self * _as_value(other) ** -1.0

    def __radd__(self, other) -> "Value":  # 2 + a
        return self + other

    def __rsub__(self, other) -> "Value":  # 2 - a
        return _as_value(other) - self

    def __rmul__(self, other) -> "Value":  # 2 * a
        return self * other

    def __rtruediv__(self, other) -> "Value":  # 2 / a
        return _as_value(other) / self

    # ---- backpropagation ---------------------------------------------------------------------

    def backward(self) -> None:
        """Add d self / d v to ``v.grad`` for every value v this one depends on.

        Like PyTorch, gradients accumulate: call ``zero_grad()`` on the model between steps.
        """
        order = topological_order(self)
        self.grad = 1.0  # d self / d self
        for node in reversed(order):  # from the output back to the inputs
            node._backward(node)

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"


def topological_order(root: Value) -> list[Value]:
    """Every value ``root`` depends on, each after all of its inputs; ``root`` last.

    Depth-first search with an explicit stack: each node is pushed once to expand its
    inputs and once more to be emitted after them, so there is no recursion at all.

    >>> a = Value(2.0, label="a"); b = a * a; c = b + a
    >>> [n.label or n._op for n in topological_order(c)]
    ['a', '*', '+']
    """
    order: list[Value] = []
    visited: set[Value] = set()  # by identity: a Value defines no __eq__
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        elif node not in visited:
            visited.add(node)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node._prev) if child not in visited)
    return order


@contextlib.contextmanager
def paused_gc():
    """Pause Python's cycle collector while building and backpropagating big graphs.

    A forward pass over 100 points makes ~70,000 live ``Value`` s; the collector rescans
    them again and again as they are created (6x the time of the maths itself, measured).
    This engine's graphs hold no reference cycles, so reference counting frees each one as
    soon as it is dropped. A learner's Value may build cycles (a ``_backward`` closure that
    holds its output): the loops inside call ``gc.collect(0)`` once per graph, which scans
    only the objects made since, so those are freed too, at almost no cost to this engine.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _as_value(x) -> Value:
    return x if isinstance(x, Value) else Value(x)


def _no_backward(out: Value) -> None:
    """Leaves (inputs and parameters) have nothing to pass their gradient on to."""
