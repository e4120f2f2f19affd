"""Grading part 7: the feed-forward network of a block (mine/mlp.py).

The learner writes ``mlp(x, fc_weight, fc_bias, proj_weight, proj_bias)``: widen, GELU,
project back. The checks compare with ``sml.model.mlp`` (which the model's ``MLP`` calls),
trying first the classic slips: weights used in the wrong layout, ReLU or GELU's tanh
approximation instead of the exact GELU, a width assumed rather than read off the weights,
a None bias that crashes.
"""

import torch
import torch.nn.functional as F

from sml.learn.core import Mismatch, Part, backward_both, check, close, same_shape
from sml.model import mlp as reference

B, T, C = 2, 3, 4  # batch, positions, channels
H = 4 * C  # the hidden width, as in SML
DIMS = ("batch", "position", "channel")


def inputs(hidden: int = H, requires_grad: bool = False):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(B, T, C, generator=g)
    fc_weight = torch.randn(hidden, C, generator=g)  # hidden values of a few units: GELU's curve shows
    fc_bias = torch.randn(hidden, generator=g) * 0.5
    proj_weight = torch.randn(C, hidden, generator=g) / hidden ** 0.5
    proj_bias = torch.randn(C, generator=g) * 0.5
    return [t.requires_grad_(requires_grad) for t in (x, fc_weight, fc_bias, proj_weight, proj_bias)]


@check("the output's shape", "mlp")
def shape(mine):
    got = _call(mine, *inputs())
    same_shape(got, (B, T, C), f"mlp(x) with x {(B, T, C)}", "one C-channel vector per position, like x")


@check("GELU between the two layers", "mlp")
def gelu(mine):
    x, w1, b1, w2, b2 = inputs()
    got, want = _call(mine, x, w1, b1, w2, b2), reference(x, w1, b1, w2, b2)
    if torch.allclose(got, want, atol=1e-5, rtol=1e-4):
        return
    h = F.linear(x, w1, b1)  # (B, T, H): the hidden vector before the nonlinearity
    for mistake, alike in [
        ("uses ReLU: SML's MLP uses GELU, h * Phi(h) (F.gelu(h)), smooth and slightly negative for h < 0",
         F.linear(F.relu(h), w2, b2)),
        ("uses GELU's tanh approximation (GPT-2's, F.gelu(h, approximate='tanh')): SML uses the exact form,"
         " 0.5 h (1 + erf(h / sqrt 2))", F.linear(F.gelu(h, approximate="tanh"), w2, b2)),
        ("uses SiLU, h * sigmoid(h) (SwiGLU's gate): the gelu MLP uses GELU, h * Phi(h)", F.linear(F.silu(h), w2, b2)),
        ("no nonlinearity between the two layers: without one they collapse into one linear map; apply GELU to"
         " the hidden vector", F.linear(h, w2, b2)),
        ("GELU applied after the projection: it goes between the layers, on the (B, T, H) hidden vector",
         F.gelu(F.linear(h, w2, b2))),
        ("fc_bias not added: the first layer is x @ fc_weight.T + fc_bias", reference(x, w1, None, w2, b2)),
        ("proj_bias not added: the second layer is h @ proj_weight.T + proj_bias", reference(x, w1, b1, w2, None)),
    ]:
        if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
            raise Mismatch(mistake)
    close(got, want, "mlp(x, fc_weight, fc_bias, proj_weight, proj_bias)", DIMS)


@check("biases None (model.bias: false)", "mlp")
def no_biases(mine):
    x, w1, _, w2, _ = inputs()
    try:
        got = _call(mine, x, w1, None, w2, None)
    except TypeError as e:
        raise Mismatch(f"fc_bias=None and proj_bias=None raised TypeError ({e}): when a bias is None, add"
                       " nothing") from None
    close(got, reference(x, w1, None, w2, None), "mlp(x, fc_weight, None, proj_weight, None)", DIMS)


@check("the hidden width comes from the weights", "mlp")
def width(mine):
    hidden = 6  # not 4 x C: a width the code assumes instead of reading fc_weight's shape fails here
    x, w1, b1, w2, b2 = inputs(hidden)
    try:
        got = _call(mine, x, w1, b1, w2, b2)
    except RuntimeError as e:
        raise Mismatch(f"with fc_weight of shape {(hidden, C)} (a hidden width of {hidden}, not 4 x C) it raised"
                       f" RuntimeError ({str(e).splitlines()[0]}): read the width off the weights") from None
    close(got, reference(x, w1, b1, w2, b2), f"mlp(x, ...) with a hidden width of {hidden}", DIMS)


@check("gradients flow back to x and the weights", "mlp")
def gradients(mine):
    mine_in, ref_in = inputs(requires_grad=True), inputs(requires_grad=True)
    backward_both(_call(mine, *mine_in), reference(*ref_in), "mlp's output", "x and the weights")
    names = ("x", "fc_weight", "fc_bias", "proj_weight", "proj_bias")
    for name, a, b in zip(names, mine_in, ref_in, strict=True):
        close(a.grad, b.grad, f"the gradient of {name}", DIMS if name == "x" else ())


def _call(mine, x, fc_weight, fc_bias, proj_weight, proj_bias) -> torch.Tensor:
    """The learner's mlp, with a matmul in the wrong weight layout said in words."""
    try:
        return mine.mlp(x, fc_weight, fc_bias, proj_weight, proj_bias)
    except RuntimeError as e:
        if "cannot be multiplied" not in str(e) and "size mismatch" not in str(e):
            raise
        raise Mismatch(f"a matrix product failed ({str(e).splitlines()[0]}): the weights are in nn.Linear's"
                       f" (out, in) layout, fc_weight {tuple(fc_weight.shape)} and proj_weight"
                       f" {tuple(proj_weight.shape)}, so a layer is x @ weight.T + bias (F.linear(x, weight, bias))"
                       ) from None


PART = Part("mlp", "the feed-forward network of a block", ("mlp",), "LEARN.md, 7. The MLP",
            (shape, gelu, no_biases, width, gradients))
