"""The GPT: shapes, causality, the two attention paths agree, every variant trains."""

import dataclasses
import itertools

import pytest
import torch

from sml.config import ModelConfig
from sml.model import GPT

# The planned model, params.yaml's `model` section as shipped (the GPU run). Written out
# here because the working copy's params.yaml may hold a preset's values (make quick).
PLANNED = ModelConfig(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, bias=False,
                      positions="rope", norm="layernorm", mlp="gelu", tie_weights=True, attention="sdpa")
TINY = dataclasses.replace(PLANNED, n_layer=2, n_head=4, n_embd=32, block_size=16, dropout=0.0)
VARIANTS = list(itertools.product(["learned", "sinusoidal", "rope"], ["layernorm", "rmsnorm"],
                                  ["gelu", "swiglu"]))


def test_the_planned_model_runs_forward_and_backward_on_cpu():
    torch.manual_seed(0)
    model = GPT(PLANNED, vocab_size=4096)
    n = model.param_counts()["total"]
    assert 10e6 <= n <= 25e6  # the planned size: 6 x 6 x 384, context 256
    x = torch.randint(0, 4096, (2, PLANNED.block_size))
    logits, loss = model(x, x)
    assert logits.shape == (2, PLANNED.block_size, 4096)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert abs(loss.item() - torch.log(torch.tensor(4096.0)).item()) < 1.5  # near uniform at init


@pytest.mark.parametrize("positions, norm, mlp", VARIANTS)
def test_manual_attention_equals_sdpa(positions, norm, mlp):
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, positions=positions, norm=norm, mlp=mlp)
    manual = GPT(dataclasses.replace(cfg, attention="manual"), 50)
    fused = GPT(dataclasses.replace(cfg, attention="sdpa"), 50)
    fused.load_state_dict(manual.state_dict())
    x = torch.randint(0, 50, (3, 16))
    torch.testing.assert_close(manual(x)[0], fused(x)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["manual", "sdpa"])
@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope"])
def test_no_token_sees_the_future(attention, positions):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, attention=attention, positions=positions), 50)
    x = torch.randint(0, 50, (1, 16))
    changed = x.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 50
    a, b = model(x)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_rope_makes_attention_scores_depend_on_relative_position_only():
    from sml.model import Rotary

    torch.manual_seed(0)
    rope = Rotary(head_size=8, block_size=32)
    q, k = torch.randn(8), torch.randn(8)

    def score(i: int, j: int) -> float:  # q at position i, k at position j
        qs = torch.zeros(1, 1, 32, 8)
        ks = torch.zeros(1, 1, 32, 8)
        qs[0, 0, i], ks[0, 0, j] = q, k
        return (rope(qs)[0, 0, i] @ rope(ks)[0, 0, j]).item()

    assert score(5, 2) == pytest.approx(score(20, 17), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)


def test_rope_rotates_each_pair_by_its_angle_in_float32():
    from sml.model import Rotary

    torch.manual_seed(0)
    rope = Rotary(head_size=4, block_size=8)
    x = torch.randn(1, 1, 8, 4, dtype=torch.float32)  # (B, nh, T, hs)
    got = rope(x)
    assert got.dtype == torch.float32
    pos = torch.arange(8, dtype=torch.float64)[:, None]  # (T, 1)
    angles = pos * 10000.0 ** (-torch.arange(0, 4, 2, dtype=torch.float64) / 4)  # (T, hs/2)
    a, b = x[0, 0, :, 0::2].double(), x[0, 0, :, 1::2].double()  # (T, hs/2) each
    want = torch.stack((a * angles.cos() - b * angles.sin(), b * angles.cos() + a * angles.sin()), dim=-1)
    torch.testing.assert_close(got[0, 0], want.flatten(-2).float(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("attention", ["manual", "sdpa"])
def test_rope_keeps_the_autocast_dtype_of_queries_and_keys(attention):
    # RoPE's tables are float32: multiplying bfloat16 q and k by them used to turn them back
    # into float32, so attention under autocast ran at float32 speed and memory.
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, positions="rope", attention=attention), 50)
    attn = model.blocks[0].attn
    x = torch.randn(2, 16, TINY.n_embd)  # (B, T, C)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, k, v = attn.project(x)
        logits, _ = model(torch.randint(0, 50, (2, 16)))
    assert q.dtype == k.dtype == v.dtype == torch.bfloat16
    assert torch.isfinite(logits).all()
    q, k, v = attn.project(x)
    assert q.dtype == k.dtype == v.dtype == torch.float32


def test_weight_tying_shares_one_matrix():
    tied = GPT(TINY, 50)
    untied = GPT(dataclasses.replace(TINY, tie_weights=False), 50)
    assert tied.lm_head.weight is tied.wte.weight
    assert untied.param_counts()["total"] - tied.param_counts()["total"] == 50 * 32
    assert untied.param_counts()["lm head"] == 50 * 32


def test_swiglu_keeps_the_mlp_about_the_same_size():
    gelu = GPT(TINY, 50).param_counts()["mlp"]
    swiglu = GPT(dataclasses.replace(TINY, mlp="swiglu"), 50).param_counts()["mlp"]
    assert 0.9 < swiglu / gelu < 1.1


def test_flops_per_token_follows_the_6n_rule():
    model = GPT(TINY, 50)
    n = model.param_counts()["total"] - model.param_counts().get("position embedding", 0)
    assert model.flops_per_token() == 6 * n + 12 * 2 * 32 * 16


@pytest.mark.parametrize("positions, norm, mlp", VARIANTS)
def test_every_variant_learns_a_repeating_sequence(positions, norm, mlp):
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, positions=positions, norm=norm, mlp=mlp, bias=True)
    model = GPT(cfg, 20)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    seq = torch.arange(17).remainder(5)[None].repeat(4, 1)  # 0 1 2 3 4 0 1 ...
    for _ in range(60):
        _, loss = model(seq[:, :-1], seq[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


def test_too_long_input_is_refused():
    with pytest.raises(ValueError, match="longer than block_size 16"):
        GPT(TINY, 50)(torch.zeros(1, 17, dtype=torch.long))
