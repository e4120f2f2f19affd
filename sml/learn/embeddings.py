"""Grading part 3: token and position embeddings (mine/embeddings.py).

The learner writes ``embed`` (a token's row plus its position's row), ``sinusoidal_table``
(the fixed sines and cosines) and ``rope`` (rotating (even, odd) channel pairs). Each check
compares with the reference in ``sml.model`` on small seeded inputs, trying the classic
mistakes first so that the message names the mistake: positions not added, sin and cos
swapped, RoPE's halves layout instead of SML's interleaved pairs.
"""

import torch

from sml.learn.core import Mismatch, Part, backward_both, check, close, same_shape
from sml.model import embed as reference_embed
from sml.model import rope as reference_rope
from sml.model import sinusoidal_table as reference_table

B, T, V, C = 2, 6, 5, 8  # batch, positions, vocabulary, channels (V < T: ids can pass for positions)
NH, HS = 3, 8  # RoPE's heads and head size
DIMS = ("batch", "position", "channel")
ROPE_DIMS = ("batch", "head", "position", "channel")
LATER = torch.arange(3, 3 + T)  # positions 3..8: rows after a KV cache's first tokens


def inputs(requires_grad: bool = False):
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, V, (B, T), generator=g)
    token_table = torch.randn(V, C, generator=g)
    position_rows = torch.randn(T, C, generator=g)
    return idx, token_table.requires_grad_(requires_grad), position_rows.requires_grad_(requires_grad)


def rope_input(dtype=torch.float32) -> torch.Tensor:
    return torch.randn(B, NH, T, HS, generator=torch.Generator().manual_seed(4)).to(dtype)


@check("each token's row of the table", "embed")
def token_rows(mine):
    idx, table, _ = inputs()
    try:
        got = mine.embed(idx, table)
    except TypeError as e:
        raise Mismatch(f"embed(idx, token_table) with position_rows=None raised TypeError ({e}): when"
                       " position_rows is None, add nothing") from None
    same_shape(got, (B, T, C), "embed(idx, token_table)", "one C-channel vector per token: (batch, positions, C)")
    close(got, reference_embed(idx, table), "embed(idx, token_table)", DIMS,
          hint="entry [b, t] is row idx[b, t] of token_table")


@check("positions added", "embed")
def positions_added(mine):
    idx, table, rows = inputs()
    got, want = mine.embed(idx, table, rows), reference_embed(idx, table, rows)
    if torch.allclose(got, want, atol=1e-5, rtol=1e-4):
        return
    for mistake, alike in [
        ("positions not added: add position_rows[t] to the vector of the token at position t (yours returned"
         " the token rows alone)", table[idx]),
        ("the position rows are looked up by token id (position_rows[idx]): row t belongs to position t,"
         " whatever token sits there", table[idx] + rows[idx]),
        ("the position rows are multiplied with the token rows: they are added", table[idx] * rows),
    ]:
        if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
            raise Mismatch(mistake)
    close(got, want, "embed(idx, token_table, position_rows)", DIMS)


@check("the sinusoidal table: sin on even channels, cos on odd", "sinusoidal_table")
def sinusoidal(mine):
    got, want = mine.sinusoidal_table(T, C), reference_table(T, C)
    same_shape(got, (T, C), f"sinusoidal_table({T}, {C})", "one row per position, one column per channel")
    got = got.double()
    if torch.allclose(got, want.double(), atol=1e-5, rtol=1e-4):
        return
    for mistake, alike in [
        ("sin and cos swapped: the even channels (0, 2, ...) hold the sines, the odd ones (1, 3, ...) the cosines",
         _table(lambda i: 2 * i, cos_first=True)),
        ("the sines fill the first half of the channels and the cosines the second (tensor2tensor's layout):"
         " SML interleaves them, sin on channel 2i and cos on channel 2i + 1", _table(lambda i: 2 * i, halves=True)),
        ("pair i's frequency should be 1 / 10000^(2i / n_embd), 2i the even channel's index: yours uses"
         " i / n_embd", _table(lambda i: i)),
    ]:
        if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
            raise Mismatch(mistake)
    close(got, want, f"sinusoidal_table({T}, {C})", ("position", "channel"),
          hint="at position p, channel 2i holds sin(p / 10000^(2i / n_embd)) and channel 2i + 1 its cos")


@check("RoPE: a query and a key score by their distance alone", "rope")
def relative(mine):
    g = torch.Generator().manual_seed(5)
    q, k = torch.randn(HS, generator=g), torch.randn(HS, generator=g)

    def score(i: int, j: int) -> float:  # q at position i, k at position j
        qi = mine.rope(q.view(1, 1, 1, HS), torch.tensor([i]))  # (1, 1, 1, hs): a single row at i
        kj = mine.rope(k.view(1, 1, 1, HS), torch.tensor([j]))
        return (qi.flatten() @ kj.flatten()).item()

    a, b, c = score(5, 2), score(9, 6), score(5, 3)
    if abs(a - b) > 1e-4 * max(1.0, abs(a)):
        raise Mismatch(f"a query at position 5 and a key at 2 score {a:.4g}, at 9 and 6 {b:.4g}: both are 3 apart,"
                       " so the scores must be equal; turn each pair (x[2i], x[2i + 1]) by the angle"
                       " position * base^(-2i / hs), a rotation that keeps its length")
    if abs(a - c) < 1e-4:
        raise Mismatch(f"the score is {a:.4g} for a query at 5 and a key at 2 or at 3: it does not change with the"
                       " distance; turn row t by positions[t]'s angle")


@check("RoPE rotates interleaved pairs", "rope")
def rope_values(mine):
    x = rope_input()
    got, want = mine.rope(x, LATER), reference_rope(x, LATER)
    same_shape(got, tuple(x.shape), "rope(x, positions)", "the same shape as x")
    if not torch.allclose(got, want, atol=1e-5, rtol=1e-4):
        for mistake, alike in [
            ("rope returned x unrotated: turn each pair by its position's angle", x),
            ("rotates halves (the GPT-NeoX / Hugging Face layout), SML rotates interleaved pairs: channel 2i turns"
             " with 2i + 1, not channel i with i + hs/2", _rope_halves(x, LATER)),
            ("rotates the wrong way (by minus the angle): (a, b) becomes (a cos t - b sin t, b cos t + a sin t)",
             reference_rope(x, -LATER)),
            ("ignores positions: row t must turn by positions[t]'s angle, not t's (here the rows sit at 3..8, as"
             " after a KV cache's first tokens)", reference_rope(x, torch.arange(T))),
        ]:
            if torch.allclose(got, alike, atol=1e-5, rtol=1e-4):
                raise Mismatch(mistake)
        close(got, want, "rope(x, positions)", ROPE_DIMS,
              hint="pair i (channels 2i, 2i + 1) at position p turns by p * base^(-2i / hs) radians")
    close(mine.rope(x, LATER, base=100.0), reference_rope(x, LATER, base=100.0), "rope(x, positions, base=100.0)",
          ROPE_DIMS, hint="use the base you are given")


@check("RoPE keeps x's dtype (bfloat16 stays bfloat16)", "rope")
def rope_dtype(mine):
    got = mine.rope(rope_input(torch.bfloat16), LATER)
    if got.dtype != torch.bfloat16:
        raise Mismatch(f"rope turned bfloat16 x into {got.dtype}: cast cos and sin to x.dtype before multiplying,"
                       " or attention under autocast runs at float32's speed and memory")


@check("gradients flow back to the tables and to x", "embed", "rope")
def gradients(mine):
    idx, table, rows = inputs(requires_grad=True)
    _, want_table, want_rows = inputs(requires_grad=True)
    backward_both(mine.embed(idx, table, rows), reference_embed(idx, want_table, want_rows), "embed's output",
                  "the tables (indexing or F.embedding)")
    for name, t in (("token_table", table), ("position_rows", rows)):
        if t.grad is None:
            raise Mismatch(f"no gradient reaches {name}: build the output from it with torch operations (indexing"
                           " or F.embedding; no .detach(), .tolist() or torch.tensor(...) copies)")
    close(table.grad, want_table.grad, "the gradient of token_table", ("id", "channel"),
          hint="a token that appears twice gets both gradients, summed")
    close(rows.grad, want_rows.grad, "the gradient of position_rows", ("position", "channel"))
    x, x_ref = rope_input().requires_grad_(), rope_input().requires_grad_()
    backward_both(mine.rope(x, LATER), reference_rope(x_ref, LATER), "rope's output", "x")
    close(x.grad, x_ref.grad, "the gradient of rope's x", ROPE_DIMS)


def _table(exponent, cos_first: bool = False, halves: bool = False) -> torch.Tensor:
    """A sinusoidal table with one mistake: pair i's frequency 10000^(-exponent(i) / C), or sin/cos misplaced."""
    p = torch.arange(T, dtype=torch.float64)[:, None]  # (T, 1)
    w = 10000.0 ** (-torch.tensor([exponent(i) for i in range(C // 2)], dtype=torch.float64) / C)  # (C/2,)
    sin, cos = torch.sin(p * w), torch.cos(p * w)  # (T, C/2) each
    if halves:
        return torch.cat((sin, cos), dim=-1)
    return torch.stack((cos, sin) if cos_first else (sin, cos), dim=-1).flatten(-2)


def _rope_halves(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """GPT-NeoX's RoPE: channel i turns with channel i + hs/2 (rotate_half)."""
    hs = x.size(-1)
    angles = positions.float()[:, None] * 10000.0 ** (-torch.arange(0, hs, 2).float() / hs)  # (T, hs/2)
    cos, sin = angles.cos(), angles.sin()
    a, b = x[..., : hs // 2], x[..., hs // 2:]
    return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)


PART = Part("embeddings", "token and position embeddings: learned, sinusoidal, RoPE",
            ("embed", "sinusoidal_table", "rope"), "LEARN.md, 3. Embeddings",
            (token_rows, positions_added, sinusoidal, relative, rope_values, rope_dtype, gradients))
