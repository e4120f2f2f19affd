"""Grading part 1: the scalar autograd engine, Value and backward (mine/micrograd.py).

Each check builds the same small expression from the learner's ``Value`` and from the
reference's (``sml.micrograd.engine.Value``), calls ``backward()`` on both, and compares the
forward values and the inputs' gradients. The checks go in the order a learner writes the
engine: each operation's forward value, then its local derivative, then the properties of
the whole backward pass, looking for the classic mistakes first so that the message names
them: a local derivative written wrong, the chain rule's ``* out.grad`` left out, gradients
assigned instead of added, and a backward pass that does not follow a topological order.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from sml.learn.core import Mismatch, Part, check
from sml.micrograd.engine import Value as Reference

REL, ABS = 1e-9, 1e-12  # both engines compute in float64: only rounding may differ


@dataclass(frozen=True)
class Op:
    """One core operation: how it is written, the learner's method behind it, its derivative."""

    expr: str  # "a * b"
    method: str  # "__mul__": the learner's method that computes it
    apply: Callable  # (a, b) -> Value, for the learner's Values and the reference's alike
    rule: str  # its local derivatives, in words
    points: tuple[tuple[float, float], ...] = ((1.5, -2.0), (-0.8, 0.5), (0.4, 3.0))  # (a, b) to try
    # (what went wrong, the a.grad that mistake gives at (a, b)), tried when a.grad is off
    mistakes: tuple[tuple[str, Callable[[float, float], float]], ...] = ()

    @property
    def binary(self) -> bool:
        return "b" in self.expr


OPS = (
    Op("a + b", "__add__", lambda a, b: a + b, "d(a + b)/da = 1 and d(a + b)/db = 1"),
    Op("a * b", "__mul__", lambda a, b: a * b, "d(a b)/da = b and d(a b)/db = a", mistakes=(
        ("each factor's gradient is the *other* factor: a.grad += b.data * out.grad, not a.data * out.grad",
         lambda a, b: a),)),
    Op("a ** 3", "__pow__", lambda a, b: a**3, "d(a^n)/da = n a^(n-1), here 3 a^2", mistakes=(
        ("the exponent is missing in front: d(a^n)/da = n a^(n-1), not a^(n-1)", lambda a, b: a**2),
        ("the power must drop by one: d(a^n)/da = n a^(n-1), not n a^n", lambda a, b: 3 * a**3))),
    Op("a.exp()", "exp", lambda a, b: a.exp(), "d(e^a)/da = e^a, the output's own value"),
    Op("a.log()", "log", lambda a, b: a.log(), "d(ln a)/da = 1/a", points=((1.5, 0.0), (0.4, 0.0), (3.0, 0.0)),
       mistakes=(("log's derivative is 1/a, not 1/out.data (1/ln a)", lambda a, b: 1 / math.log(a)),)),
    Op("a.tanh()", "tanh", lambda a, b: a.tanh(), "d(tanh a)/da = 1 - tanh(a)^2", mistakes=(
        ("tanh's derivative is 1 - tanh(a)^2, one minus the *output* squared (1 - out.data**2),"
         " not 1 - a^2", lambda a, b: 1 - a * a),
        ("tanh's derivative is 1 - tanh(a)^2: the tanh is squared", lambda a, b: 1 - math.tanh(a)))),
    Op("a.relu()", "relu", lambda a, b: a.relu(), "d(relu a)/da = 1 where a > 0, else 0", mistakes=(
        ("relu passes the gradient on only where a > 0: where a <= 0 its derivative is 0", lambda a, b: 1.0),
        ("relu's derivative is 1 where a > 0 and 0 elsewhere, not the output's value",
         lambda a, b: max(a, 0.0)))),
)


def _forward(op: Op):
    @check(f"the value of {op.expr}", op.method)
    def run(mine):
        for x, y in op.points:
            a, b = mine.Value(x), mine.Value(y)
            out = op.apply(a, b)
            at = _at(op, x, y)
            if not all(hasattr(out, name) for name in ("data", "grad", "_prev")):  # a Value, or like one
                raise Mismatch(f"{op.expr} should return a new Value, got {type(out).__name__}")
            want = op.apply(Reference(x), Reference(y)).data
            if not _same(out.data, want):
                raise Mismatch(f"{op.expr} at {at} is {_num(out.data)}, the reference {_num(want)}")
            inputs = (a, b) if op.binary else (a,)
            if not all(any(p is v for p in out._prev) for v in inputs):
                raise Mismatch(f"{op.expr}'s _prev should hold the Values it was made from"
                               f" ({', '.join('ab'[:len(inputs)])}): backward() walks the graph through _prev")
    return run


def _local_derivative(op: Op):
    @check(f"the gradient of {op.expr}", op.method, "backward")
    def run(mine):
        for x, y in op.points:
            for name, got, want in _gradients(mine, op, x, y):
                if _same(got, want):
                    continue
                for mistake, alike in op.mistakes:
                    if name == "a" and _same(got, alike(x, y)):
                        raise Mismatch(f"after ({op.expr}).backward() at {_at(op, x, y)}, a.grad is {_num(got)},"
                                       f" the reference {_num(want)}: {mistake}")
                raise Mismatch(f"after ({op.expr}).backward() at {_at(op, x, y)}, {name}.grad is {_num(got)},"
                               f" the reference {_num(want)}: {op.rule}, times out.grad")
    return run


@check("a plain number on either side (a + 2, 3 * a, a - 1, 2 / a)", "__add__", "__mul__", "__pow__")
def plain_numbers(mine):
    for expr, f in (("a + 2", lambda a: a + 2), ("3 * a", lambda a: 3 * a), ("a - 1", lambda a: a - 1),
                    ("2 / a", lambda a: 2 / a)):
        try:
            got = f(mine.Value(1.5)).data
        except (AttributeError, TypeError) as e:
            raise Mismatch(f"{expr} raised {type(e).__name__} ({e}): __add__ and __mul__ must accept a plain"
                           " number too; wrap it first (other if isinstance(other, Value) else Value(other))"
                           ) from None
        want = f(Reference(1.5)).data
        if not _same(got, want):
            raise Mismatch(f"{expr} at a = 1.5 is {_num(got)}, the reference {_num(want)}")


@check("backward() starts with the output's own gradient, 1", "backward")
def seed(mine):
    v = mine.Value(3.0)
    v.backward()
    if v.grad != 1.0:
        raise Mismatch(f"after Value(3.0).backward() its grad is {_num(v.grad)}: backward() must first set the"
                       " output's own gradient to 1 (d out / d out = 1), or nothing flows back")


@check("the chain rule: each local derivative times out.grad", *(op.method for op in OPS), "backward")
def chain_rule(mine):
    for op in OPS:
        x, y = op.points[0]
        for name, got, want in _gradients(mine, op, x, y, scale=3.0):
            if _same(got, want):
                continue
            if got == 0.0:
                raise Mismatch(f"after ({_times_3(op)}).backward() at {_at(op, x, y)}, {name}.grad is 0, the"
                               f" reference {_num(want)}: backward() must run the _backward functions from the output"
                               " back to the inputs (the topological order, reversed), so that each value's grad is"
                               " complete before it is passed on")
            if _same(3 * got, want):
                raise Mismatch(f"after ({_times_3(op)}).backward(), {name}.grad is {_num(got)}, 3 times smaller than"
                               f" the reference's {_num(want)}: the _backward of {op.expr} forgets to multiply by"
                               " out.grad (the chain rule: local derivative times the gradient from the output)")
            raise Mismatch(f"after ({_times_3(op)}).backward() at {_at(op, x, y)}, {name}.grad is {_num(got)},"
                           f" the reference {_num(want)}: each _backward adds local derivative * out.grad")


@check("a value used twice gets the sum of both paths", "__add__", "__mul__", "backward")
def used_twice(mine):
    for expr, f in (("a * a", lambda a, b: a * a), ("a + a", lambda a, b: a + a),
                    ("a * b + a", lambda a, b: a * b + a), ("a * b + b * 2", lambda a, b: a * b + b * 2)):
        a, b, ra, rb = mine.Value(1.5), mine.Value(-2.0), Reference(1.5), Reference(-2.0)
        f(a, b).backward()
        f(ra, rb).backward()
        for name, got, want in (("a", a.grad, ra.grad), ("b", b.grad, rb.grad)):
            if not _same(got, want):
                at = "a = 1.5, b = -2" if "b" in expr else "a = 1.5"
                raise Mismatch(f"after ({expr}).backward() at {at}, {name}.grad is {_num(got)}, the"
                               f" reference {_num(want)}: {name} is used twice, so it must receive the sum of both"
                               " paths; gradients must be added (+=), not assigned (=)")


@check("backward() follows a topological order", "__add__", "__mul__", "tanh", "backward")
def topological(mine):
    def f(x):  # t = tanh(x) feeds both t * 2 and the sum: its grad is complete only after both
        t = x.tanh()
        return t + t * 2.0
    x, rx = mine.Value(0.5), Reference(0.5)
    f(x).backward()
    f(rx).backward()
    if _same(x.grad, rx.grad):
        return
    if x.grad == 0.0:
        raise Mismatch("after (t + t * 2).backward() with t = tanh(x), x.grad is 0: backward() must run the"
                       " _backward functions from the output back to the inputs, the topological order reversed")
    raise Mismatch(f"after (t + t * 2).backward() with t = tanh(x) at x = 0.5, x.grad is {_num(x.grad)}, the reference"
                   f" {_num(rx.grad)}: t's _backward ran before both of t's users had added their gradient to t,"
                   " or ran twice. Sort the graph into a topological order (each value after the values in its"
                   " _prev, each value once) and run every _backward once, in reverse")


@check("a small network and its loss, end to end", *(op.method for op in OPS), "backward")
def network(mine):
    (loss, leaves), (want, ref_leaves) = _network(mine.Value), _network(Reference)
    if not _same(loss.data, want.data):
        raise Mismatch(f"the loss is {_num(loss.data)}, the reference {_num(want.data)}")
    loss.backward()
    want.backward()
    for name in leaves:
        if not _same(leaves[name].grad, ref_leaves[name].grad):
            raise Mismatch(f"the gradient of {name} is {_num(leaves[name].grad)}, the reference"
                           f" {_num(ref_leaves[name].grad)} (a 3-input layer of 2 tanh neurons, a relu, and a"
                           " logistic loss that uses -, / and numbers on either side)")


def _network(V) -> tuple:
    """A loss built from a tiny two-layer network of ``V`` s: (loss, {name: leaf})."""
    rng = random.Random(3)
    x = [V(v) for v in (0.5, -1.2, 2.0)]
    w = [[V(rng.uniform(-1, 1)) for _ in x] for _ in range(2)]
    b = [V(0.1), V(-0.2)]
    h = [sum((wi * xi for wi, xi in zip(wn, x)), bn).tanh() for wn, bn in zip(w, b)]
    v = [V(rng.uniform(-1, 1)) for _ in h]
    score = v[0] * h[0] - v[1] * h[1].relu() + (h[0] - h[1]).relu() / 2
    loss = (1 + (-score).exp()).log() + (score - 0.5) ** 2 + 1 / (2 + h[0] * h[0]) - 3 * h[1] + (2 - score) / 4
    leaves = {f"x[{i}]": xi for i, xi in enumerate(x)}
    leaves |= {f"w[{n}][{i}]": wi for n, wn in enumerate(w) for i, wi in enumerate(wn)}
    leaves |= {f"b[{n}]": bn for n, bn in enumerate(b)} | {f"v[{n}]": vn for n, vn in enumerate(v)}
    return loss, leaves


def _gradients(mine, op: Op, x: float, y: float, scale: float = 1.0) -> list[tuple[str, float, float]]:
    """Backpropagate ``op`` (times ``scale``) in both engines: [(input, its grad, the reference's)]."""
    a, b, ra, rb = mine.Value(x), mine.Value(y), Reference(x), Reference(y)
    for out in (op.apply(a, b), op.apply(ra, rb)):
        (out * scale if scale != 1.0 else out).backward()
    pairs = [("a", a.grad, ra.grad)]
    return pairs + [("b", b.grad, rb.grad)] if op.binary else pairs


def _same(got, want: float) -> bool:
    return isinstance(got, int | float) and math.isclose(got, want, rel_tol=REL, abs_tol=ABS)


def _num(x) -> str:
    return f"{x:.6g}" if isinstance(x, int | float) else repr(x)


def _times_3(op: Op) -> str:
    return f"({op.expr}) * 3" if op.binary else f"{op.expr} * 3"


def _at(op: Op, x: float, y: float) -> str:
    return f"a = {x:g}, b = {y:g}" if op.binary else f"a = {x:g}"


PART = Part("micrograd", "the scalar autograd engine: Value and backward", ("Value",), "LEARN.md, 1. Autograd", (
    *(_forward(op) for op in OPS),
    plain_numbers,
    seed,
    *(_local_derivative(op) for op in OPS),
    chain_rule,
    used_twice,
    topological,
    network,
))
