"""micrograd's toy task: train an MLP of scalar Values on two half-moons, and draw it.

    python -m stages.micrograd                        # 100 points, MLP 2-16-16-1
    python -m stages.micrograd --points 50 --hidden 8 --steps 150

Writes, under ``artifacts/micrograd/``: ``decision_boundary_h<hidden>.png``, and a small expression's
computation graph as ``graph.png`` (Graphviz ``dot`` if installed, else matplotlib),
``graph.txt`` and ``graph.dot``. Not a DVC stage: a lesson to run. With ``impl.micrograd:
mine`` in params.yaml the MLP is built from the learner's ``Value`` (mine/micrograd.py,
graded first), and so is the expression it draws.
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params
from sml.learn.mine import load_mine
from sml.micrograd import MLP, Value
from sml.micrograd.moons import make_moons, train
from sml.run.draw import decision_boundary, graph_picture, walkthrough_neuron
from stages.common import ParamsFile, run, stage


@stage
def main(
    points: Annotated[int, typer.Option(help="Training points.")] = 100,
    hidden: Annotated[int, typer.Option(help="Neurons in each of the two hidden layers.")] = 16,
    steps: Annotated[int, typer.Option(help="Gradient-descent steps.")] = 150,
    lr: Annotated[float, typer.Option(help="Starting learning rate.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the data and the weights.")] = 0,
    out: Annotated[Path, typer.Option(help="Directory for the pictures.")] = Path("artifacts/micrograd"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Train, report accuracy, and draw."""
    mine = load_mine(load_params(params).impl, params.parent, ("micrograd",))  # impl.micrograd: mine
    value = mine.Value if mine is not None else Value
    X, y = make_moons(points, noise=0.1, seed=seed)
    model = MLP(2, [hidden, hidden, 1], seed=seed, value=value)
    whose = " (mine/micrograd.py's Value)" if mine is not None else ""
    print(f"micrograd: MLP 2-{hidden}-{hidden}-1{whose}, {len(model.parameters())} parameters, {points} points")
    accuracy = train(model, X, y, steps=steps, lr=lr, log=lambda line: print(f"micrograd: {line}"))
    print(f"micrograd: training accuracy {accuracy:.1%}")
    shape = f"MLP 2-{hidden}-{hidden}-1"  # in the file's name too: --hidden 4 and 16 keep both pictures
    drawn = decision_boundary(model, X, y, out / f"decision_boundary_h{hidden}.png",
                              title=f"{shape}, {steps} steps: {accuracy:.0%} right")
    print(f"micrograd: wrote {drawn}")
    print(f"micrograd: wrote {graph_picture(walkthrough_neuron(value), out / 'graph.png')} (and .txt, .dot)")


if __name__ == "__main__":
    run(main)
