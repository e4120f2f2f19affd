"""The GPT: shapes, causality, the two attention paths agree, every variant trains."""

import dataclasses
import itertools
import math

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
    from sml.model import rope

    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)

    def score(i: int, j: int) -> float:  # q at position i, k at position j
        qs = torch.zeros(1, 1, 32, 8)
        ks = torch.zeros(1, 1, 32, 8)
        qs[0, 0, i], ks[0, 0, j] = q, k
        return (rope(qs, torch.arange(32))[0, 0, i] @ rope(ks, torch.arange(32))[0, 0, j]).item()

    assert score(5, 2) == pytest.approx(score(20, 17), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)


def test_rope_rotates_each_pair_by_its_angle_in_float32():
    from sml.model import rope

    torch.manual_seed(0)
    x = torch.randn(1, 1, 8, 4, dtype=torch.float32)  # (B, nh, T, hs)
    got = rope(x, torch.arange(8))
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


def test_dropout_drops_only_in_training_and_zero_calls_no_module():
    torch.manual_seed(0)
    x = torch.randint(0, 50, (2, 16))
    dropping = GPT(dataclasses.replace(TINY, dropout=0.5), 50)
    assert sum(isinstance(m, torch.nn.Dropout) for m in dropping.modules()) == 1 + 2 * TINY.n_layer
    assert not torch.equal(dropping.train()(x)[0], dropping(x)[0])  # two draws of the dropped units
    assert torch.equal(dropping.eval()(x)[0], dropping(x)[0])
    plain = GPT(TINY, 50)  # dropout 0: the identity, no nn.Dropout call (decoding makes ~9 a token)
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    assert plain.state_dict().keys() == GPT(TINY, 50).state_dict().keys()
    assert torch.equal(plain.train()(x)[0], plain.eval()(x)[0])


def test_swiglu_keeps_the_mlp_about_the_same_size():
    gelu = GPT(TINY, 50).param_counts()["mlp"]
    swiglu = GPT(dataclasses.replace(TINY, mlp="swiglu"), 50).param_counts()["mlp"]
    assert 0.9 < swiglu / gelu < 1.1


def test_gelu_tanh_is_gpt2s_approximation_and_differs_from_the_exact_form():
    torch.manual_seed(0)
    exact = GPT(TINY, 50)
    tanh = GPT(dataclasses.replace(TINY, mlp="gelu_tanh"), 50)
    tanh.load_state_dict(exact.state_dict())  # the same weights: only the nonlinearity differs
    mlp, x = tanh.blocks[0].mlp, 20 * torch.randn(2, 5, 32)  # h of order 1, where the two forms differ most
    h = x @ mlp.fc.weight.T  # bias false in TINY
    written = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    torch.testing.assert_close(mlp(x), written @ mlp.proj.weight.T)
    assert not torch.allclose(mlp(x), exact.blocks[0].mlp(x), atol=1e-7, rtol=0)


def test_flops_per_token_follows_the_6n_rule():
    model = GPT(TINY, 50)
    n = model.param_counts()["total"] - model.param_counts().get("position embedding", 0)
    assert model.flops_per_token() == 6 * n + 12 * 2 * 32 * 16


@pytest.mark.parametrize("positions, norm, mlp", VARIANTS)
def test_every_variant_learns_a_repeating_sequence(positions, norm, mlp):
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, positions=positions, norm=norm, mlp=mlp, bias=True)
    assert loss_after_learning_a_cycle(GPT(cfg, 20), steps=60) < 0.1


def loss_after_learning_a_cycle(model: GPT, steps: int) -> float:
    """The loss after ``steps`` AdamW steps on 0 1 2 3 4 0 1 ... (any working model learns it)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    seq = torch.arange(17).remainder(5)[None].repeat(4, 1)
    for _ in range(steps):
        _, loss = model(seq[:, :-1], seq[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def test_too_long_input_is_refused():
    with pytest.raises(ValueError, match="longer than block_size 16"):
        GPT(TINY, 50)(torch.zeros(1, 17, dtype=torch.long))


# ---- the written-out functions (what mine/ rebuilds, LEARN.md) equal what the model computes ----

@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope"])
def test_embed_is_what_the_model_adds_up(positions):
    from sml.model import embed

    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, positions=positions), 50)
    table = {"learned": model.wpe.weight if model.wpe is not None else None,
             "sinusoidal": getattr(model, "sinusoid", None), "rope": None}[positions]  # (block_size, C) or None
    idx = torch.randint(0, 50, (2, 10))
    for at in (torch.arange(10), torch.arange(4, 14)):  # from the start, and a KV cache's later positions
        rows = None if table is None else table[at]  # (T, C)
        want = model.wte.weight[idx] + (0 if rows is None else rows)  # (B, T, C)
        torch.testing.assert_close(embed(idx, model.wte.weight, rows), want)
        torch.testing.assert_close(model.embed(idx, at), want)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_a_tokens_vector_changes_with_its_position(positions):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, positions=positions), 50)
    x = model.embed(torch.full((1, 16), 7))[0]  # (T, C): token 7 at every position
    assert all(not torch.allclose(x[0], x[t]) for t in range(1, 16))


def test_the_sinusoidal_table_is_sin_on_even_channels_cos_on_odd():
    from sml.model import sinusoidal_table

    table = sinusoidal_table(5, 6).double()  # (T, C)
    for p, i in itertools.product(range(5), range(3)):  # position p, channel pair i
        angle = p / 10000.0 ** (2 * i / 6)
        assert table[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
        assert table[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_rope_at_later_positions_is_those_rows_of_the_whole_rotation_and_keeps_the_dtype():
    """What the KV cache relies on: rows at positions 20..24 turn as they would in a whole sequence."""
    from sml.model import rope

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 8)  # (B, nh, T, hs)
    later = torch.arange(20, 25)
    assert torch.equal(rope(x[:, :, 20:25], later), rope(x, torch.arange(32))[:, :, 20:25])
    assert rope(x.bfloat16(), torch.arange(32)).dtype == torch.bfloat16


def test_split_heads_is_what_attention_projects_and_merge_heads_undoes_it():
    from sml.model import merge_heads, split_heads

    torch.manual_seed(0)
    attn = GPT(dataclasses.replace(TINY, positions="learned"), 50).blocks[0].attn
    x = torch.randn(2, 6, TINY.n_embd)  # (B, T, C)
    q, k, v = attn.project(x)  # 3 x (B, nh, T, hs)
    for i, got in enumerate((q, k, v)):
        W = attn.qkv.weight[i * TINY.n_embd:(i + 1) * TINY.n_embd]  # (C, C): this one's rows of qkv
        torch.testing.assert_close(split_heads(x @ W.T, TINY.n_head), got)
    assert split_heads(x, 4).shape == (2, 4, 6, 8)
    assert torch.equal(split_heads(x, 4)[:, 1, 3], x[:, 3, 8:16])  # head 1 at position 3: channels 8..15
    assert torch.equal(merge_heads(split_heads(x, 4)), x)
    y = torch.randn(2, 4, 6, 8)  # (B, nh, T, hs)
    assert torch.equal(split_heads(merge_heads(y), 4), y)


@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_written_out_equals_pytorchs(bias):
    from sml.model import layer_norm

    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(8, bias=bias)
    with torch.no_grad():
        norm.weight.normal_()
        if bias:
            norm.bias.normal_()
    x = (torch.randn(2, 5, 8) * 3 + 1).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    got = layer_norm(x, norm.weight, norm.bias, norm.eps)
    torch.testing.assert_close(got, norm(x2), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, torch.nn.functional.layer_norm(x, (8,), norm.weight, norm.bias), atol=1e-5,
                               rtol=1e-5)
    got.sum().backward()
    norm(x2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-5, rtol=1e-5)
    plain = layer_norm(x, torch.ones(8), None)  # before the scale and shift
    torch.testing.assert_close(plain.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-4, rtol=0)


@pytest.mark.parametrize("bias", [True, False])
def test_mlp_written_out_equals_the_module(bias):
    from sml.model import MLP, mlp

    torch.manual_seed(0)
    module = MLP(dataclasses.replace(TINY, bias=bias))
    x = torch.randn(2, 5, TINY.n_embd)
    assert module.fc.weight.shape == (4 * TINY.n_embd, TINY.n_embd)  # 4x wider inside
    torch.testing.assert_close(mlp(x, module.fc.weight, module.fc.bias, module.proj.weight, module.proj.bias),
                               module(x))


def test_mlp_is_gelu_between_two_matrices_on_known_numbers():
    from sml.model import mlp

    x = torch.tensor([[[1.0, -1.0]]])  # (B, T, C) = (1, 1, 2)
    fc_weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])  # (H, C): h = (1, -1, 0, 1)
    fc_bias = torch.tensor([0.0, 0.0, 0.0, -1.0])
    proj_weight = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, -1.0]])  # (C, H)

    def gelu(h: float) -> float:  # the exact form: h * Phi(h)
        return 0.5 * h * (1 + math.erf(h / math.sqrt(2)))

    want = [gelu(1) + gelu(-1) + gelu(0) + gelu(1), gelu(1) - gelu(1)]
    got = mlp(x, fc_weight, fc_bias, proj_weight, None)[0, 0]
    assert got.tolist() == pytest.approx(want, abs=1e-6)
    assert got[0].item() == pytest.approx(1.5240, abs=1e-4)  # not ReLU's 2.0


def test_the_mlp_works_on_each_position_alone():
    from sml.model import MLP

    torch.manual_seed(0)
    module = MLP(TINY)
    x = torch.randn(2, 6, TINY.n_embd)
    changed = x.clone()
    changed[:, 3] += 1.0
    moved = (module(changed) - module(x)).abs().amax(dim=(0, 2))  # (T,): how much each position moved
    assert moved[3] > 1e-3
    assert torch.equal(moved[torch.arange(6) != 3], torch.zeros(5))


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_block_written_out_is_block_forward(norm):
    from sml.model import Block, block

    torch.manual_seed(0)
    layer = Block(dataclasses.replace(TINY, norm=norm), None)
    x = torch.randn(2, 6, TINY.n_embd)
    h = x + layer.attn(layer.norm1(x))  # pre-norm: the branch reads norm(x), the sum is not normed
    want = h + layer.mlp(layer.norm2(h))
    torch.testing.assert_close(layer(x), want)
    torch.testing.assert_close(block(x, layer.attn, layer.mlp, layer.norm1, layer.norm2), want)


def test_zeroed_residual_branches_make_a_block_the_identity():
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, bias=True), 50)
    layer = model.blocks[0]
    with torch.no_grad():
        for proj in (layer.attn.proj, layer.mlp.proj):  # each branch's last matrix: its output is 0
            proj.weight.zero_()
            proj.bias.zero_()
    x = torch.randn(2, 6, TINY.n_embd)
    assert torch.equal(layer(x), x)
