"""micrograd: values and gradients equal PyTorch's (float64); deep graphs; the toy task learns."""

import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sml.micrograd import MLP, Value
from sml.micrograd.moons import make_moons, train
from sml.run.draw import decision_boundary, graph_picture, graph_text
from tests.conftest import TEST_PARAMS


def both(values):
    """The same leaves as micrograd Values and as float64 torch tensors."""
    ours = [Value(v) for v in values]
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    return ours, theirs


def assert_same(ours_out, theirs_out, ours, theirs, value_tol=(1e-9, 1e-12), grad_tol=(1e-9, 1e-12)):
    """Backpropagate both; the outputs and every leaf's gradient must agree (rel, abs tolerances)."""
    ours_out.backward()
    theirs_out.backward()
    assert ours_out.data == pytest.approx(theirs_out.item(), rel=value_tol[0], abs=value_tol[1])
    for o, t in zip(ours, theirs, strict=True):
        expected = 0.0 if t.grad is None else t.grad.item()
        assert o.grad == pytest.approx(expected, rel=grad_tol[0], abs=grad_tol[1])


EXPRESSIONS = {
    "arithmetic": lambda a, b, c, exp, log, tanh, relu: (a * b + c) / (a - b) ** 2 - 3.0 / c + 2 - a,
    "a used many times": lambda a, b, c, exp, log, tanh, relu: a * a + a * b + a + tanh(a * a),
    "functions": lambda a, b, c, exp, log, tanh, relu: exp(tanh(a) * b) + log(c * c + 1) + relu(a - b) * relu(b),
    "micrograd's own test": lambda a, b, c, exp, log, tanh, relu: (
        relu(a * 2 + 2 + a) + relu(a * 2 + 2 + a) * (a * 2 + 2 + a) + (a * 2 + 2 + a) * (a * 2 + 2 + a)
    ),
}


@pytest.mark.parametrize("name", EXPRESSIONS)
def test_fixed_expressions_match_pytorch(name):
    ours, theirs = both([-1.5, 2.25, 0.75])
    f = EXPRESSIONS[name]
    ours_out = f(*ours, Value.exp, Value.log, Value.tanh, Value.relu)
    theirs_out = f(*theirs, torch.exp, torch.log, torch.tanh, torch.relu)
    assert_same(ours_out, theirs_out, ours, theirs)


# A random expression graph: each step combines two earlier nodes (any of them, so nodes get
# reused) with a binary op, or applies a function to one; leaves are reused too.
ops = st.sampled_from(["+", "-", "*", "/", "tanh", "exp", "relu", "pow2", "log_sq"])


@settings(max_examples=300, deadline=None)
@given(leaves=st.lists(st.floats(-2, 2), min_size=1, max_size=4),
       steps=st.lists(st.tuples(ops, st.integers(0, 1000), st.integers(0, 1000)), min_size=1, max_size=25))
def test_random_graphs_match_pytorch(leaves, steps):
    ours, theirs = both(leaves)
    nodes_o, nodes_t = list(ours), list(theirs)
    for op, i, j in steps:
        a_o, a_t = nodes_o[i % len(nodes_o)], nodes_t[i % len(nodes_t)]
        b_o, b_t = nodes_o[j % len(nodes_o)], nodes_t[j % len(nodes_t)]
        if op == "/" and abs(b_o.data) < 0.1 or op == "exp" and a_o.data > 5:
            continue  # keep the numbers finite and well-conditioned
        o, t = apply(op, a_o, b_o), apply(op, a_t, b_t)
        if abs(o.data) > 1e6:
            continue
        nodes_o.append(o)
        nodes_t.append(t)
    out_o, out_t = nodes_o[-1], nodes_t[-1]
    if not out_t.requires_grad:
        return
    assert_same(out_o, out_t, ours, theirs, value_tol=(1e-9, 1e-9), grad_tol=(1e-7, 1e-9))


def apply(op: str, a, b):
    """One step of a random graph; works on micrograd Values and torch tensors alike."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b
    if op == "pow2":
        return a**2
    if op == "log_sq":
        return (a * a + 1).log()
    return getattr(a, op)()  # tanh, exp, relu


def test_a_chain_of_10000_nodes_backpropagates():
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0001 + 0.0001  # two nodes per step
    y.backward()
    assert x.grad == pytest.approx(1.0001**5000, rel=1e-9)
    assert sys.getrecursionlimit() < 10000  # so a recursive sort would have failed


def test_gradients_accumulate_until_zero_grad():
    model = MLP(2, [3, 1], seed=1)
    for _ in range(2):
        model([Value(1.0), Value(-1.0)]).backward()
    twice = [p.grad for p in model.parameters()]
    model.zero_grad()
    model([Value(1.0), Value(-1.0)]).backward()
    once = [p.grad for p in model.parameters()]
    assert twice == pytest.approx([2 * g for g in once]) and any(once)
    assert len(model.parameters()) == (2 * 3 + 3) + (3 + 1)


def test_the_mlp_learns_two_moons():
    points, labels = make_moons(50, noise=0.1, seed=0)
    model = MLP(2, [8, 8, 1], seed=0)
    assert train(model, points, labels, steps=150, lr=1.0) >= 0.95


def test_pictures_and_text(tmp_path):
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = (a * b + a).tanh()
    c.backward()
    path = graph_picture(c, tmp_path / "graph.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "graph.txt").read_text()
    assert text.splitlines()[0] == "a = input   data 2   grad " + f"{a.grad:.4g}"
    assert "digraph" in (tmp_path / "graph.dot").read_text()
    assert graph_text(c).splitlines()[-1] == f"v4 = tanh(v3)   data {math.tanh(-4.0):.4g}   grad 1"
    points, labels = make_moons(20, seed=1)
    boundary = decision_boundary(MLP(2, [4, 1]), points, labels, tmp_path / "b.png", steps=10)
    assert boundary.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.e2e
def test_the_command_trains_and_draws(tmp_path):
    """The lesson's command trains what ``train`` trains (learning itself: the two-moons test above)."""
    result = subprocess.run(
        [sys.executable, "-m", "stages.micrograd", "--points", "20", "--hidden", "4", "--steps", "5",
         "--out", str(tmp_path), "--params", str(TEST_PARAMS)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    points, labels = make_moons(20, noise=0.1, seed=0)
    accuracy = train(MLP(2, [4, 4, 1], seed=0), points, labels, steps=5, lr=1.0)
    assert f"training accuracy {accuracy:.1%}" in result.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"decision_boundary_h4.png", "graph.png", "graph.txt", "graph.dot"}
