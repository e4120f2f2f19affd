"""Pictures of micrograd: a trained MLP's decision boundary, and an expression's graph.

The graph is drawn with Graphviz's ``dot`` when it is installed, else with matplotlib; a
plain-text listing is always written too, so nothing depends on either.
"""

import gc
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sml.micrograd.engine import Value, paused_gc, topological_order  # noqa: E402
from sml.micrograd.nn import MLP  # noqa: E402
from sml.run.atomic import write_text  # noqa: E402


def decision_boundary(model: MLP, points: np.ndarray, labels: np.ndarray, path: Path, steps: int = 50,
                      title: str = "a micrograd MLP") -> Path:
    """Colour the plane by the model's class and draw the training points over it; ``title``
    names the model (two runs side by side must say which is which)."""
    pad = 0.5
    xs = np.linspace(points[:, 0].min() - pad, points[:, 0].max() + pad, steps)
    ys = np.linspace(points[:, 1].min() - pad, points[:, 1].max() + pad, steps)
    grid = np.empty((steps, steps))
    with paused_gc():
        for row, y in enumerate(ys):
            grid[row] = [model([model.value(x), model.value(y)]).data for x in xs]
            gc.collect(0)  # a learner's graphs with cycles (see paused_gc)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.contourf(xs, ys, grid > 0, levels=[-0.5, 0.5, 1.5], colors=["#f4c7a9", "#a9cbe8"], alpha=0.8)
    ax.contour(xs, ys, grid, levels=[0.0], colors="k", linewidths=1)
    for label, colour, name in ((-1, "tab:red", "class -1"), (1, "tab:blue", "class +1")):
        chosen = labels == label
        ax.scatter(points[chosen, 0], points[chosen, 1], c=colour, s=18, edgecolors="k", linewidths=0.4, label=name)
    ax.set(title=f"Decision boundary of {title} (score = 0)", xlabel="x1", ylabel="x2")
    ax.legend(loc="upper right")
    return _save(fig, path)


def walkthrough_neuron(value: type = Value) -> Value:
    """o = tanh(x1*w1 + x2*w2 + b) with the numbers of the chain-rule walkthrough in
    ``sml/micrograd/__init__.py``, backpropagated: the expression ``stages.micrograd`` draws.
    ``value``: the number type (the learner's Value with impl.micrograd: mine)."""
    x1, w1, x2, w2, b = (value(v, label=n) for v, n in ((2.0, "x1"), (-1.5, "w1"), (1.0, "x2"),
                                                         (0.5, "w2"), (1.0, "b")))
    o = (x1 * w1 + x2 * w2 + b).tanh()
    o.label = "o"
    o.backward()
    return o


def graph_text(root: Value) -> str:
    """The graph as lines 'name = op(inputs)   data ...   grad ...', inputs first.

    >>> a = Value(2.0, label="a"); b = Value(3.0, label="b"); c = a * b; c.backward()
    >>> print(graph_text(c))
    a = input   data 2   grad 3
    b = input   data 3   grad 2
    v2 = a * b   data 6   grad 1
    """
    names: dict[int, str] = {}
    lines = []
    for i, node in enumerate(topological_order(root)):
        name = names[id(node)] = node.label or f"v{i}"
        inputs = [names[id(p)] for p in node._prev]
        if not inputs:
            how = "input"
        elif len(inputs) == 2:
            how = f"{inputs[0]} {node._op} {inputs[1]}"
        else:
            how = f"{node._op}({inputs[0]})" if not node._op.startswith("**") else f"{inputs[0]} {node._op}"
        lines.append(f"{name} = {how}   data {node.data:.4g}   grad {node.grad:.4g}")
    return "\n".join(lines)


def graph_picture(root: Value, path: Path) -> Path:
    """Draw the graph (PNG at ``path``): with ``dot`` if installed, else with matplotlib.

    Also writes ``path`` with .txt (``graph_text``) and .dot (Graphviz source) next to it.
    """
    write_text(path.with_suffix(".txt"), graph_text(root) + "\n")
    dot_source = _dot(root)
    write_text(path.with_suffix(".dot"), dot_source)
    if shutil.which("dot"):
        png = subprocess.run(["dot", "-Tpng"], input=dot_source.encode(), capture_output=True, check=True).stdout
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return path
    return _save(_matplotlib_graph(root), path)


def _dot(root: Value) -> str:
    lines = ["digraph micrograd {", "  rankdir=LR;", "  node [shape=record, fontname=Helvetica];"]
    for node in topological_order(root):
        label = f"{node.label + ' | ' if node.label else ''}data {node.data:.4g} | grad {node.grad:.4g}"
        lines.append(f'  n{id(node)} [label="{{ {label} }}"];')
        if node._op:
            lines.append(f'  op{id(node)} [label="{node._op}", shape=circle];')
            lines.append(f"  op{id(node)} -> n{id(node)};")
            lines += [f"  n{id(p)} -> op{id(node)};" for p in node._prev]
    return "\n".join(lines + ["}"]) + "\n"


def _matplotlib_graph(root: Value):
    """A layered drawing: each value one column right of its deepest input."""
    order = topological_order(root)
    depth: dict[int, int] = {}
    for node in order:
        depth[id(node)] = 1 + max((depth[id(p)] for p in node._prev), default=-1)
    rows: dict[int, int] = {}
    position = {}
    for node in order:
        d = depth[id(node)]
        position[id(node)] = (d, rows.get(d, 0))
        rows[d] = rows.get(d, 0) + 1
    fig, ax = plt.subplots(figsize=(2.6 * (max(rows) + 1), 1.3 * max(rows.values()) + 1))
    for node in order:
        x, y = position[id(node)]
        for p in node._prev:
            px, py = position[id(p)]
            ax.annotate("", (x - 0.22, -y), (px + 0.22, -py), arrowprops={"arrowstyle": "->", "color": "0.4"})
        title = (node.label + "  " if node.label else "") + (node._op or "input")
        ax.text(x, -y, f"{title}\ndata {node.data:.4g}\ngrad {node.grad:.4g}", ha="center", va="center",
                fontsize=8, bbox={"boxstyle": "round", "fc": "#eef3fb" if node._op else "#fdf1e3", "ec": "0.5"})
    ax.set_xlim(-0.6, max(rows) + 0.6)
    ax.set_ylim(-max(rows.values()) + 0.4, 0.6)
    ax.axis("off")
    ax.set_title("Computation graph: forward values (data) and d output / d value (grad)")
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
