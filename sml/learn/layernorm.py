"""Grading part 6: layer normalization, written out (mine/layernorm.py).

The learner writes ``layer_norm(x, weight, bias, eps)``. The checks compare with
``sml.model.layer_norm`` (itself tested equal to ``nn.LayerNorm``), trying first the
classic slips, each of which still "normalises" something: the wrong dimension, the
unbiased variance (torch.var's default), eps outside the square root or missing, weight
and bias swapped.
"""

from unittest import mock

import torch

from sml.learn.core import Mismatch, Part, backward_both, check, close
from sml.model import layer_norm as reference

B, T, C = 2, 4, 6  # batch, positions, channels (C small: C - 1 instead of C shows)
DIMS = ("batch", "position", "channel")


def inputs(scale: float = 3.0, requires_grad: bool = False):
    g = torch.Generator().manual_seed(10)
    x = torch.randn(B, T, C, generator=g) * scale + 1.0  # mean and spread far from 0 and 1
    weight = torch.randn(C, generator=g) + 1.0
    bias = torch.randn(C, generator=g)
    return [t.requires_grad_(requires_grad) for t in (x, weight, bias)]


@check("mean 0 and variance 1 over each position's channels", "layer_norm")
def normalised(mine):
    x, _, _ = inputs()
    ones, zeros = torch.ones(C), torch.zeros(C)
    got, want = mine.layer_norm(x, ones, zeros), reference(x, ones, zeros)
    if torch.allclose(got, want, atol=1e-5, rtol=1e-4):
        return
    slip = _slip(got, x)
    if slip:
        raise Mismatch(slip)
    if torch.allclose(got, torch.ones_like(got)):  # normed * bias + weight with weight 1, bias 0
        raise Mismatch("every output is 1 with weight = 1 and bias = 0: weight and bias swapped? multiply by weight,"
                       " then add bias")
    close(got, want, "layer_norm(x, ones, zeros)", DIMS, hint=_moments(got))


@check("eps inside the square root", "layer_norm")
def eps(mine):
    x, _, _ = inputs(scale=0.01)  # a variance of 1e-4: an eps of 1e-3 matters
    x[0, 0] = 0.5  # a position whose channels are all equal: variance 0
    ones, zeros = torch.ones(C), torch.zeros(C)
    got = mine.layer_norm(x, ones, zeros, eps=1e-3)
    if not torch.isfinite(got[0, 0]).all():
        raise Mismatch("a position whose channels are all equal (variance 0) came out inf or nan: add eps to the"
                       " variance inside the square root, sqrt(var + eps)")
    want = reference(x, ones, zeros, eps=1e-3)
    if torch.allclose(got, want, atol=1e-5, rtol=1e-4):
        return
    for mistake, alike in [
        ("eps outside the square root, sqrt(var) + eps: it goes inside, sqrt(var + eps), as in nn.LayerNorm",
         _layer_norm(x, eps=1e-3, eps_outside=True)),
        ("ignores the eps it is given (here 1e-3): use the argument, not a fixed 1e-5",
         reference(x, ones, zeros, eps=1e-5)),
    ]:
        if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
            raise Mismatch(mistake)
    close(got, want, "layer_norm(x, ones, zeros, eps=1e-3)", DIMS, hint=_slip(got, x, eps=1e-3) or _moments(got))


@check("the scale and shift (weight and bias)", "layer_norm")
def scale_and_shift(mine):
    x, weight, bias = inputs()
    got, want = mine.layer_norm(x, weight, bias), reference(x, weight, bias)
    if torch.allclose(got, want, atol=1e-5, rtol=1e-4):
        return
    normed = reference(x, torch.ones(C), None)
    for mistake, alike in [
        ("weight and bias swapped: multiply by weight, then add bias", normed * bias + weight),
        ("bias not added: x_hat * weight + bias", normed * weight),
        ("weight not applied: x_hat * weight + bias", normed + bias),
        ("weight and bias applied before normalising: they come after, on the normalised x",
         _layer_norm(x * weight + bias)),
    ]:
        if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
            raise Mismatch(mistake)
    close(got, want, "layer_norm(x, weight, bias)", DIMS)


@check("bias None (model.bias: false)", "layer_norm")
def no_bias(mine):
    x, weight, _ = inputs()
    try:
        got = mine.layer_norm(x, weight, None)
    except TypeError as e:
        raise Mismatch(f"bias=None raised TypeError ({e}): when bias is None, add nothing") from None
    close(got, reference(x, weight, None), "layer_norm(x, weight, None)", DIMS)


@check("gradients flow back to x, weight and bias", "layer_norm")
def gradients(mine):
    mine_in, ref_in = inputs(requires_grad=True), inputs(requires_grad=True)
    backward_both(mine.layer_norm(*mine_in), reference(*ref_in), "layer_norm's output", "x, weight and bias")
    for name, a, b, dims in zip(("x", "weight", "bias"), mine_in, ref_in, (DIMS, ("channel",), ("channel",)),
                                strict=True):
        close(a.grad, b.grad, f"the gradient of {name}", dims,
              hint="the mean and variance depend on x too: keep them in the graph" if name == "x" else "")


@check("written out (no F.layer_norm)", "layer_norm")
def written_out(mine):
    x, weight, bias = inputs()

    def library(*args, **kwargs):
        raise Mismatch("calls PyTorch's layer norm (F.layer_norm, torch.layer_norm or nn.LayerNorm): write it out,"
                       " with the mean, the variance and the square root (sml/model.py's layer_norm is the"
                       " reference to compare with)")
    with mock.patch("torch.nn.functional.layer_norm", library), mock.patch("torch.layer_norm", library):
        mine.layer_norm(x, weight, bias)


def _slip(got: torch.Tensor, x: torch.Tensor, eps: float = 1e-5) -> str | None:
    """The classic slip that turns layer norm (weight 1, bias 0) of ``x`` into ``got``, in words, if any."""
    for mistake, alike in [
        ("normalised over the positions (dim 1), not over each position's channels (the last dim)",
         _layer_norm(x, eps, dim=1)),
        ("normalised over the batch (dim 0), not over each position's channels (the last dim)",
         _layer_norm(x, eps, dim=0)),
        ("normalised over the whole sequence (positions and channels): each position is normalised on its own,"
         " over its channels (the last dim)", _layer_norm(x, eps, dim=(1, 2))),
        ("normalised over the whole tensor (one mean and variance for all of it): each position is normalised"
         " on its own, over its channels (the last dim)", _layer_norm(x, eps, dim=(0, 1, 2))),
        ("the variance is the unbiased one (divided by C - 1, torch.var's default): layer norm divides by C,"
         " x.var(dim=-1, unbiased=False)", _layer_norm(x, eps, unbiased=True)),
        ("not centred: subtract each position's mean before dividing", x / torch.sqrt((x * x).mean(-1, True) + eps)),
    ]:
        if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
            return mistake
    return None


def _moments(got: torch.Tensor) -> str:
    """Where the output's channels are furthest from mean 0 and variance 1, in words."""
    mean, var = got.mean(-1), got.var(-1, unbiased=False)  # (B, T) each
    worst = torch.argmax((mean.abs() + (var - 1).abs()).flatten())
    b, t = divmod(int(worst), T)
    return (f"at batch {b}, position {t} your output's channels have mean {mean[b, t].item():.3g} and variance"
            f" {var[b, t].item():.3g}: (x - mean) / sqrt(var + eps) over the last dim gives mean 0 and variance 1")


def _layer_norm(x: torch.Tensor, eps: float = 1e-5, dim=-1, unbiased: bool = False,
                eps_outside: bool = False) -> torch.Tensor:
    """Layer norm (weight 1, bias 0) with one slip: another dim, C - 1, or eps outside the sqrt."""
    mean = x.mean(dim=dim, keepdim=True)
    var = x.var(dim=dim, keepdim=True, unbiased=unbiased)
    return (x - mean) / (var.sqrt() + eps if eps_outside else torch.sqrt(var + eps))


PART = Part("layernorm", "layer normalization, written out", ("layer_norm",), "LEARN.md, 6. Layer norm",
            (normalised, eps, scale_and_shift, no_bias, gradients, written_out))
