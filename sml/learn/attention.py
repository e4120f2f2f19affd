"""Grading part 4: scaled dot-product attention with the causal mask (mine/attention.py).

Each check feeds the learner's ``attention(q, k, v, mask=None)`` small seeded tensors and
compares with the reference (``sml.model.attention``), looking first for the classic
mistakes, so that the message names the mistake rather than only a number.
"""

import math

import torch

from sml.learn.core import Mismatch, Part, backward_both, check, close, same_shape
from sml.model import attention as reference

B, NH, T, HS = 2, 3, 6, 4  # batch, heads, positions, head size
DIMS = ("batch", "head", "position", "channel")


def inputs(T: int = T, Tk: int | None = None, requires_grad: bool = False):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(B, NH, T, HS, generator=g) * 2  # scaled up: a missing 1/sqrt(hs) shows
    k = torch.randn(B, NH, Tk or T, HS, generator=g) * 2
    v = torch.randn(B, NH, Tk or T, HS, generator=g)
    return [t.requires_grad_(requires_grad) for t in (q, k, v)]


@check("the output's shape", "attention")
def shape(mine):
    q, k, v = inputs()
    same_shape(mine.attention(q, k, v), (B, NH, T, HS), "attention(q, k, v)",
               "one mixed value vector per query: (batch, heads, positions, head size)")


@check("the causal mask", "attention")
def causal(mine):
    q, k, v = inputs()
    out = mine.attention(q, k, v)
    for j in range(T - 1, 0, -1):  # change only what position j holds, latest first
        k2, v2 = k.clone(), v.clone()
        k2[:, :, j] += 1.0
        v2[:, :, j] += 1.0
        moved = (mine.attention(q, k2, v2) - out).abs().amax(dim=(0, 1, 3))  # (T,): how much each query moved
        earlier = torch.nonzero(moved[:j] > 1e-6)
        if len(earlier):
            i = int(earlier[0])
            raise Mismatch(f"position {i} attends to position {j}, which comes after it: the causal mask is"
                           f" missing (query i may only look at keys 0..i; changing key {j} moved query {i}'s"
                           f" output by {moved[i].item():.3g})")


@check("each position sees itself", "attention")
def diagonal(mine):
    q, k, v = inputs()
    out = mine.attention(q, k, v)
    for i in range(T):
        v2 = v.clone()
        v2[:, :, i] += 1.0
        if (mine.attention(q, k, v2)[:, :, i] - out[:, :, i]).abs().max() < 1e-6:
            hint = (" (position 0 then sees nothing at all: its row of weights is all masked)" if i == 0 else "")
            raise Mismatch(f"position {i} does not attend to itself: the mask hides the diagonal too; query i"
                           f" may look at keys 0..i, i included{hint}")


@check("the scores, scaling and softmax", "attention")
def values(mine):
    q, k, v = inputs()
    got, want = mine.attention(q, k, v), reference(q, k, v)
    if torch.allclose(got, want, atol=1e-5, rtol=1e-4):
        return
    for mistake, alike in [
        ("the scores are not divided by sqrt(head size): divide q @ k^T by sqrt(hs) before the softmax",
         reference(q * math.sqrt(HS), k, v)),
        ("the scores are divided by the head size, not by its square root", reference(q / math.sqrt(HS), k, v)),
        ("the softmax runs over the queries (dim -2): it must run over the keys (dim -1), so that each"
         " query's weights sum to 1", _softmax_over_queries(q, k, v)),
    ]:
        if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
            raise Mismatch(mistake)
    close(got, want, "attention(q, k, v)", DIMS)


@check("a given mask (the KV-cache case: 2 new queries, 6 keys)", "attention")
def given_mask(mine):
    q, k, v = inputs(T=2, Tk=T)
    mask = torch.arange(T)[None, :] <= torch.tensor([3, 4])[:, None]  # queries at positions 3 and 4
    close(mine.attention(q, k, v, mask), reference(q, k, v, mask), "attention(q, k, v, mask)", DIMS,
          hint="use the mask you are given when it is not None: True where a query may see a key")


@check("gradients flow back to q, k and v", "attention")
def gradients(mine):
    mine_in, ref_in = inputs(requires_grad=True), inputs(requires_grad=True)
    backward_both(mine.attention(*mine_in), reference(*ref_in), "attention's output", "q, k and v")
    for name, a, b in zip("qkv", mine_in, ref_in, strict=True):
        close(a.grad, b.grad, f"the gradient of {name}", DIMS)


def _softmax_over_queries(q, k, v):
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    mask = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-2).nan_to_num(0.0) @ v


PART = Part("attention", "scaled dot-product attention with the causal mask", ("attention",),
            "LEARN.md, 4. Attention", (shape, causal, diagonal, values, given_mask, gradients))
