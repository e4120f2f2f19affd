"""Grading part 8: the transformer block, two residual branches (mine/block.py).

The learner writes ``block(x, attend, mlp, norm1, norm2)``. The grader hands it a real
attention, MLP and two layer norms from a tiny seeded ``sml.model.Block`` (the norms with
different weights, so that swapping them shows) and compares with ``sml.model.block``,
trying first the classic slips: a residual dropped (naming which), post-norm instead of
pre-norm, the norms swapped, the MLP reading the block's input, x changed in place.
"""

import torch

from sml.config import ModelConfig
from sml.learn.core import Mismatch, Part, backward_both, check, close, same_shape
from sml.model import Block
from sml.model import block as reference

B, T, C = 2, 5, 8  # batch, positions, channels
DIMS = ("batch", "position", "channel")
TINY = ModelConfig(n_layer=1, n_head=2, n_embd=C, block_size=T, dropout=0.0, bias=True, positions="learned",
                   norm="layernorm", mlp="gelu", tie_weights=False, attention="manual")


def parts():
    """x (B, T, C) and a seeded block's attend, mlp, norm1, norm2."""
    g = torch.Generator().manual_seed(14)
    with torch.random.fork_rng():
        torch.manual_seed(14)
        layer = Block(TINY, None).eval()
    with torch.no_grad():
        for norm in (layer.norm1, layer.norm2):  # two different norms: a swap must show
            norm.weight.copy_(torch.rand(C, generator=g) + 0.5)
            norm.bias.copy_(torch.randn(C, generator=g))
    x = torch.randn(B, T, C, generator=g) * 2 + 1  # far from normalised: a missing or misplaced norm shows
    return x, layer.attn, layer.mlp, layer.norm1, layer.norm2


@check("the output's shape", "block")
def shape(mine):
    x, *rest = parts()
    same_shape(mine.block(x.clone(), *rest), (B, T, C), "block(x, ...)", "the residual stream's shape, like x")


@check("the residual stream: x plus each branch", "block")
def residuals(mine):
    x, attend, mlp, norm1, norm2 = parts()
    got = mine.block(x.clone(), attend, mlp, norm1, norm2)
    if torch.allclose(got, reference(x, attend, mlp, norm1, norm2), atol=1e-5, rtol=1e-4):
        return
    after_attention = attend(norm1(x))  # the stream without attention's residual
    for mistake, alike in [
        ("the attention branch's residual is dropped: x = x + attend(norm1(x)), not x = attend(norm1(x));"
         " without the x + the block forgets its input", after_attention + mlp(norm2(after_attention))),
        ("the MLP branch's residual is dropped: return x + mlp(norm2(x)), not mlp(norm2(x))",
         mlp(norm2(x + after_attention))),
        ("both residuals are dropped: each branch adds to the stream, x = x + attend(norm1(x)), then"
         " x + mlp(norm2(x))", mlp(norm2(after_attention))),
    ]:
        if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
            raise Mismatch(mistake)  # other differences: the next checks name them


@check("pre-norm: each branch reads its norm of the stream", "block")
def pre_norm(mine):
    x, attend, mlp, norm1, norm2 = parts()
    got, want = mine.block(x.clone(), attend, mlp, norm1, norm2), reference(x, attend, mlp, norm1, norm2)
    if torch.allclose(got, want, atol=1e-5, rtol=1e-4):
        return
    post = norm1(x + attend(x))
    for mistake, alike in [
        ("post-norm (the original Transformer's norm(x + branch(x))): SML is pre-norm, x + branch(norm(x)):"
         " normalise each branch's input, never the residual stream itself", norm2(post + mlp(post))),
        ("norm1 and norm2 swapped: attention reads norm1(x), the MLP norm2(x)",
         reference(x, attend, mlp, norm2, norm1)),
        ("norm1 used for both branches: the MLP reads norm2(x)", reference(x, attend, mlp, norm1, norm1)),
        ("the MLP reads the block's input x, not x after attention's output was added (that is GPT-J's parallel"
         " block): x = x + attend(norm1(x)) first, then x + mlp(norm2(x))",
         x + attend(norm1(x)) + mlp(norm2(x))),
        ("the branches read x un-normalised: pass norm1(x) to attend and norm2(x) to mlp",
         reference(x, attend, mlp, _same, _same)),
    ]:
        if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
            raise Mismatch(mistake)
    close(got, want, "block(x, attend, mlp, norm1, norm2)", DIMS)


@check("branches that output zeros leave x as it was", "block")
def identity(mine):
    x, _, _, norm1, norm2 = parts()
    got = mine.block(x.clone(), torch.zeros_like, torch.zeros_like, norm1, norm2)
    close(got, x, "block(x, ...) with attend and mlp returning zeros", DIMS,
          hint="the residual stream carries x through and each branch only adds to it, so a block starts close to"
               " the identity when its branches' outputs are small")


@check("x is not changed in place", "block")
def not_in_place(mine):
    x, *rest = parts()
    before = x.clone()
    mine.block(x, *rest)
    if not torch.equal(x, before):
        raise Mismatch("block changed its input x in place (x += ...): write x = x + ..., a new tensor; autograd"
                       " needs the old x for the backward pass, and the caller still holds it")


@check("gradients flow back through both branches and the stream", "block")
def gradients(mine):
    x, attend, mlp, norm1, norm2 = parts()
    x_mine, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    backward_both(mine.block(x_mine, attend, mlp, norm1, norm2), reference(x_ref, attend, mlp, norm1, norm2),
                  "the block's output", "x and the branches' outputs")
    close(x_mine.grad, x_ref.grad, "the gradient of x", DIMS)


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


PART = Part("block", "the transformer block: two residual branches", ("block",), "LEARN.md, 8. The transformer block",
            (shape, residuals, pre_norm, identity, not_in_place, gradients))
