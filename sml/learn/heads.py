"""Grading part 5: splitting channels into heads and merging them back (mine/heads.py).

The learner writes ``split_heads`` ((B, T, C) -> (B, nh, T, hs)) and ``merge_heads`` (its
inverse). Both are one reshape and one transpose; the classic mistake is the reshape alone,
which gives the right shape and the wrong numbers: heads and positions mixed. Each check
compares with ``sml.model.split_heads`` / ``merge_heads`` on a small seeded tensor.
"""

import torch

from sml.learn.core import Mismatch, Part, check, close, same_shape
from sml.model import merge_heads as reference_merge
from sml.model import split_heads as reference_split

B, T, NH, HS = 2, 5, 3, 4  # batch, positions, heads, head size
C = NH * HS
SPLIT_DIMS = ("batch", "head", "position", "channel")
MERGED_DIMS = ("batch", "position", "channel")


def channels() -> torch.Tensor:
    return torch.randn(B, T, C, generator=torch.Generator().manual_seed(8))  # (B, T, C)


def per_head() -> torch.Tensor:
    return torch.randn(B, NH, T, HS, generator=torch.Generator().manual_seed(9))  # (B, nh, T, hs), contiguous


@check("the shapes", "split_heads", "merge_heads")
def shapes(mine):
    got = mine.split_heads(channels(), NH)
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (B, T, NH, HS):
        raise Mismatch(f"split_heads returns (B, T, nh, hs) = {(B, T, NH, HS)}: transpose(1, 2) so that the heads"
                       " come before the positions, (B, nh, T, hs)")
    same_shape(got, (B, NH, T, HS), f"split_heads(x, n_head={NH}) of x {(B, T, C)}",
               "(batch, heads, positions, head size), head size = C / n_head")
    same_shape(_merge(mine, per_head()), (B, T, C), f"merge_heads(y) of y {(B, NH, T, HS)}",
               "(batch, positions, channels), channels = heads x head size")


@check("split_heads: head h holds a slice of each position's channels", "split_heads")
def split(mine):
    x = channels()
    got, want = mine.split_heads(x, NH), reference_split(x, NH)
    if torch.equal(got, want):
        return
    for mistake, alike in [
        ("views (B, T, C) straight as (B, nh, T, hs), without the transpose: that mixes positions and heads"
         " (head 0 gets position 0's channels, then position 1's, ...); view as (B, T, nh, hs), then"
         " transpose(1, 2)", x.reshape(B, NH, T, HS)),
        ("head h takes every nh-th channel: it should take the slice h*hs .. (h+1)*hs - 1 (view as"
         " (B, T, nh, hs), not (B, T, hs, nh))", x.view(B, T, HS, NH).permute(0, 3, 1, 2)),
    ]:
        if torch.equal(got, alike):
            raise Mismatch(mistake)
    close(got, want, f"split_heads(x, n_head={NH})", SPLIT_DIMS,
          hint="entry [b, h, t] is x[b, t, h*hs : (h+1)*hs]")


@check("merge_heads: the heads side by side again", "merge_heads")
def merged(mine):
    y = per_head()
    got, want = _merge(mine, y), reference_merge(y)
    if torch.equal(got, want):
        return
    for mistake, alike in [
        ("reshapes (B, nh, T, hs) straight to (B, T, C), without the transpose: that mixes positions and heads;"
         " transpose(1, 2) back to (B, T, nh, hs) first, then reshape", y.reshape(B, T, C)),
        ("interleaves the heads' channels (channel c from head c % nh): head h's channels go side by side, at"
         " h*hs .. (h+1)*hs - 1", y.permute(0, 2, 3, 1).reshape(B, T, C)),
    ]:
        if torch.equal(got, alike):
            raise Mismatch(mistake)
    close(got, want, "merge_heads(y)", MERGED_DIMS, hint="entry [b, t, h*hs : (h+1)*hs] is y[b, h, t]")


@check("merge_heads undoes split_heads", "split_heads", "merge_heads")
def round_trip(mine):
    x = channels()
    close(_merge(mine, mine.split_heads(x, NH)), x, f"merge_heads(split_heads(x, n_head={NH}))", MERGED_DIMS,
          hint="merging must put every channel back where splitting took it from")


def _merge(mine, y: torch.Tensor) -> torch.Tensor:
    """The learner's merge_heads(y), with .view()'s error on a transposed tensor said in words."""
    try:
        return mine.merge_heads(y)
    except RuntimeError as e:
        if "view size is not compatible" not in str(e):
            raise
        raise Mismatch("merge_heads cannot .view() a transposed tensor (after transpose(1, 2) it is no longer"
                       " contiguous in memory): use .reshape(), or .contiguous().view()") from None


PART = Part("heads", "splitting channels into heads and merging them back", ("split_heads", "merge_heads"),
            "LEARN.md, 5. Multi-head attention", (shapes, split, merged, round_trip))

