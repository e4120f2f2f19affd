"""The modern dials (issue 27): each one computes what its definition says, the default of each
keeps today's model bit for bit, and every dial trains, caches and samples."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from sml.generate import generate
from sml.kvcache import KVCache
from sml.model import GPT
from tests.test_model import TINY, loss_after_learning_a_cycle

DIALS = [dict(n_kv_head=2), dict(n_kv_head=1), dict(qk_norm=True), dict(qk_norm=True, n_kv_head=1),
         dict(rope_theta=500_000.0), dict(mlp="relu2"), dict(mlp="swiglu", mlp_hidden=40), dict(mlp_hidden=24),
         dict(norm="rmsnorm", norm_eps=1e-5), dict(norm_eps=1e-6)]
NAMES = ["-".join(f"{k}={v}" for k, v in d.items()) for d in DIALS]


def test_the_defaults_are_todays_model_bit_for_bit():
    """A model built with every new dial at its default holds today's weights and computes today's logits."""
    explicit = dataclasses.replace(TINY, n_kv_head=0, rope_theta=10000.0, mlp_hidden=0, norm_eps=0.0, qk_norm=False)
    x = torch.randint(0, 50, (2, 16))
    for norm in ("layernorm", "rmsnorm"):
        torch.manual_seed(0)
        today = GPT(dataclasses.replace(TINY, norm=norm), 50)
        torch.manual_seed(0)
        dialled = GPT(dataclasses.replace(explicit, n_kv_head=TINY.n_head, norm=norm), 50)
        assert all(torch.equal(a, b) for a, b in zip(today.state_dict().values(), dialled.state_dict().values(),
                                                     strict=True))
        assert torch.equal(today(x)[0], dialled(x)[0])


@pytest.mark.parametrize("dial", DIALS, ids=NAMES)
@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_every_dial_learns_and_the_cache_changes_speed_not_results(dial, attention):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, attention=attention, **dial), 20)
    assert loss_after_learning_a_cycle(model, steps=100) < 0.1
    model.eval()
    x = torch.randint(0, 20, (2, 16))
    cache = KVCache(model, 2, "cpu")
    parts = [model(x[:, :5], cache=cache)[0]] + [model(x[:, i : i + 1], cache=cache)[0] for i in range(5, 16)]
    torch.testing.assert_close(torch.cat(parts, dim=1), model(x)[0], atol=1e-5, rtol=1e-5)
    settings = {"temperature": 1.0, "top_k": 10, "seed": 3}
    assert list(generate(model, [1, 2], 40, use_cache=True, **settings)) == list(
        generate(model, [1, 2], 40, use_cache=False, **settings))


def test_grouped_query_attention_is_each_query_head_reading_its_groups_key_and_value():
    """n_kv_head 2 of 4 heads: query heads 0, 1 read k/v head 0, heads 2, 3 head 1 (as Llama's repeat_kv)."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, n_kv_head=2)
    attn = GPT(cfg, 50).blocks[0].attn
    assert attn.qkv.weight.shape == ((4 + 2 * 2) * 8, 32)  # 4 query heads, 2 key and 2 value heads of 8
    x = torch.randn(1, 16, 32)
    q, k, v = attn.project(x)
    assert q.shape == (1, 4, 16, 8) and k.shape == v.shape == (1, 2, 16, 8)
    heads = [F.scaled_dot_product_attention(q[:, h], k[:, h // 2], v[:, h // 2], is_causal=True) for h in range(4)]
    expected = attn.proj(torch.stack(heads, dim=1).transpose(1, 2).reshape(1, 16, 32))
    torch.testing.assert_close(attn(x), expected)


def test_the_kv_cache_holds_only_the_key_value_heads():
    model = GPT(dataclasses.replace(TINY, n_kv_head=1), 50)
    cache = KVCache(model, 2, "cpu")
    k, v = cache.layer(0).store(torch.zeros(2, 1, 3, 8), torch.zeros(2, 1, 3, 8), torch.arange(3))
    assert k.shape == (2, 1, 16, 8)  # one head, not 4: a quarter of the memory
    assert sum(c.k.numel() + c.v.numel() for c in cache.layers) == 2 * 2 * 2 * 1 * 16 * 8  # layers, k v, B, nkv, T, hs


def test_qk_norm_gives_each_heads_query_and_key_unit_rms_before_rope():
    torch.manual_seed(0)
    attn = GPT(dataclasses.replace(TINY, qk_norm=True, positions="learned"), 50).blocks[0].attn
    q, k, _ = attn.project(torch.randn(1, 16, 32) * 50)  # learned positions: no rotation after the norm
    for t in (q, k):
        torch.testing.assert_close(t.pow(2).mean(-1), torch.ones(t.shape[:-1]), atol=1e-4, rtol=1e-4)


def test_rope_theta_sets_the_angle_of_each_pair():
    from sml.model import Rotary, rope

    x, positions = torch.randn(1, 1, 5, 8), torch.arange(5)
    for theta in (10.0, 10000.0, 1e6):
        turned = rope(x, positions, theta)
        angle = positions[:, None].float() * theta ** (-torch.arange(0, 8, 2).float() / 8)  # (T, hs/2)
        a, b = x[..., 0::2], x[..., 1::2]
        torch.testing.assert_close(turned[..., 0::2], a * angle.cos() - b * angle.sin())
        torch.testing.assert_close(Rotary(8, 5, theta)(x, positions, theta), turned)
    model = GPT(dataclasses.replace(TINY, rope_theta=50.0), 50)
    assert model.parts.rope.base == 50.0  # the tables the model runs are built for its base


def test_relu2_is_the_square_of_relu_between_two_matrices():
    torch.manual_seed(0)
    mlp = GPT(dataclasses.replace(TINY, mlp="relu2", mlp_hidden=24), 50).blocks[0].mlp
    assert mlp.fc.weight.shape == (24, 32) and mlp.proj.weight.shape == (32, 24)
    x = torch.randn(2, 3, 32)
    torch.testing.assert_close(mlp(x), F.relu(x @ mlp.fc.weight.T) ** 2 @ mlp.proj.weight.T)


def test_norm_eps_is_the_eps_of_every_norm():
    model = GPT(dataclasses.replace(TINY, norm="rmsnorm", norm_eps=1e-5, qk_norm=True), 50)
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.RMSNorm)} == {1e-5}
    assert {m.eps for m in GPT(TINY, 50).modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-5}
    assert {m.eps for m in GPT(dataclasses.replace(TINY, norm="rmsnorm"), 50).modules()
            if isinstance(m, torch.nn.RMSNorm)} == {None}  # today's: the dtype's machine epsilon


@pytest.mark.parametrize(("key", "value", "says"), [
    ("n_kv_head", 3, "model.n_kv_head = 3: must be a divisor of model.n_head (4), or 0 for n_head"),
    ("n_kv_head", -1, "model.n_kv_head = -1: must be an integer >= 0"),
    ("rope_theta", 0.5, "model.rope_theta = 0.5: must be a number > 1"),
    ("mlp", "relu3", "model.mlp = 'relu3': must be one of"),
    ("norm_eps", 2.0, "model.norm_eps = 2.0: must be a number >= 0"),
])
def test_a_dial_out_of_range_is_one_line_naming_its_key(tmp_path, key, value, says):
    import yaml

    from sml.config import ParamsError, load_params
    from tests.conftest import params_template

    raw = params_template()
    raw["model"].update(n_head=4, n_embd=32, **{key: value})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=says.replace("(", r"\(").replace(")", r"\)")):
        load_params(tmp_path / "params.yaml")
