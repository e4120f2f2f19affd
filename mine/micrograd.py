"""Part 1: a scalar autograd engine, the Value and its backward pass. LEARN.md, 1. Autograd.

Grade it: ``make grade PART=micrograd``. Run it: ``impl.micrograd: mine`` in params.yaml, then
``python -m stages.micrograd``. The reference to compare with once yours passes:
``Value`` and ``topological_order`` in sml/micrograd/engine.py.

You write the seven core operations (``+``, ``*``, ``**``, ``exp``, ``log``, ``tanh``,
``relu``) and ``backward``. Each operation computes its forward value and attaches a
``_backward`` function that applies its local derivative (the chain rule for that one
step). The rest (``-a``, ``a - b``, ``a / b``, ``2 + a``, ``2 - a``, ``2 * a``, ``2 / a``) is
already written below, in terms of the core operations: it works as soon as they do.
Python's ``math`` module has the exp, log and tanh of a float.
"""


class Value:
    """A number that remembers how it was made, so that gradients can flow back through it.

    data: the number (a Python float). grad: d output / d this value, filled in by the output's
    ``backward()``; 0.0 until then. _prev: the Values this one was computed from (a tuple; empty
    for an input). _op: the operation that made it ("+", "*", "tanh", ...), for drawing the
    graph. _backward: a function that adds this value's share of the gradient to its inputs'
    ``grad``; the reference calls it as ``node._backward(node)`` (the output handed in, so the
    closure need not hold on to it), but any convention works as long as your ``backward()``
    uses it. An input's _backward does nothing.
    """

    def __init__(self, data: float, _prev: tuple["Value", ...] = (), _op: str = "", label: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self._backward = _no_backward
        self._prev = _prev
        self._op = _op
        self.label = label

    # ---- the core operations: you write these ------------------------------------------------

    def __add__(self, other) -> "Value":
        """self + other. ``other`` may be a Value or a plain number (wrap a number in a Value).

        Returns a new Value with _prev = (self, other). Local derivatives: d(a + b)/da = 1,
        d(a + b)/db = 1. Every _backward multiplies its local derivative by the output's grad
        (the chain rule) and ADDS the result to the input's grad (+=, never =): a value used
        twice, as in ``a + a`` or ``a * a``, must receive the sum of both paths.
        """
        raise NotImplementedError("__add__: write it (LEARN.md, 1. Autograd)")

    def __mul__(self, other) -> "Value":
        """self * other (``other`` a Value or a number). d(a b)/da = b, d(a b)/db = a."""
        raise NotImplementedError("__mul__: write it (LEARN.md, 1. Autograd)")

    def __pow__(self, exponent: float) -> "Value":
        """self ** exponent, for a plain-number exponent only. d(a^n)/da = n a^(n-1)."""
        raise NotImplementedError("__pow__: write it (LEARN.md, 1. Autograd)")

    def exp(self) -> "Value":
        """e ** self. d(e^a)/da = e^a: the output's own value."""
        raise NotImplementedError("exp: write it (LEARN.md, 1. Autograd)")

    def log(self) -> "Value":
        """The natural logarithm of self (self > 0). d(ln a)/da = 1/a."""
        raise NotImplementedError("log: write it (LEARN.md, 1. Autograd)")

    def tanh(self) -> "Value":
        """tanh(self). d(tanh a)/da = 1 - tanh(a)^2: one minus the output squared."""
        raise NotImplementedError("tanh: write it (LEARN.md, 1. Autograd)")

    def relu(self) -> "Value":
        """max(0, self). d(relu a)/da = 1 where a > 0, else 0."""
        raise NotImplementedError("relu: write it (LEARN.md, 1. Autograd)")

    # ---- backpropagation: you write this -------------------------------------------------------

    def backward(self) -> None:
        """Add d self / d v to ``v.grad`` for every Value v that self was computed from.

        What must hold: self's own gradient starts at 1 (d self / d self); every value's
        _backward runs exactly once, and only after every value that used it has run its own
        (so its grad is complete before it is passed on). Do that with a topological order:
        list the graph so that each value comes after all of its _prev, then run the
        _backward functions in reverse, from self back to the inputs. Gradients accumulate:
        nothing here sets an input's grad back to 0.
        """
        raise NotImplementedError("backward: write it (LEARN.md, 1. Autograd)")

    # ---- given: built from the core operations -----------------------------------------------

    def __neg__(self) -> "Value":  # -a
        return self * -1.0

    def __sub__(self, other) -> "Value":  # a - b
        return self + (-other)

    def __truediv__(self, other) -> "Value":  # a / b
        return self * other**-1.0

    def __radd__(self, other) -> "Value":  # 2 + a
        return self + other

    def __rsub__(self, other) -> "Value":  # 2 - a
        return (-self) + other

    def __rmul__(self, other) -> "Value":  # 2 * a
        return self * other

    def __rtruediv__(self, other) -> "Value":  # 2 / a
        return self**-1.0 * other

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"


def _no_backward(out: Value) -> None:
    """An input has nothing to pass its gradient on to."""
