"""The GPT: a decoder-only transformer language model, readable in one sitting.

Reading order, bottom-up like the data flows:
1. token ids -> vectors (``wte``), plus where each token is (``positions``);
2. ``n_layer`` Blocks, each: x + attention(norm(x)), then x + mlp(norm(x)) (pre-norm residuals);
3. a final norm and the language-model head: one score (logit) per vocabulary id.
The loss is cross-entropy between those scores and the next token, in nats/token.

Variants (``model:`` in params.yaml, compared with ``dvc exp``): positions, norm, MLP, their
dials (RoPE's base, eps, width), weight tying, dropout, biases, attention written out or fused,
grouped-query attention, q and k normalised per head. Shapes: B batch, T time (tokens), C channels
(n_embd), nh heads, nkv key/value heads (nh, or fewer), hs head size (C / nh), V vocabulary.

The modules hold the weights; what they compute are the plain functions on tensors below them
(``embed``, ``rope``, ``split_heads``, ``attention``, ``layer_norm``, ``mlp``, ``block``, ...),
called through ``parts`` (``sml/parts.py``): one record of these functions, so that a learner's
own (``impl`` in params.yaml) can take any one's place. Generation passes a ``KVCache``
(``kvcache.py``): a new token then costs one position, not the whole context. Left out on
purpose: sampling strategies (``generate.py``), and any training code.
"""

import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from sml.config import ModelConfig

if TYPE_CHECKING:  # only for the annotations: the cache is built by generate.py
    from sml.kvcache import KVCache, LayerCache
    from sml.parts import Parts

INIT_STD = 0.02  # GPT-2's initial weight scale
ROPE_BASE = 10000.0  # RoPE's default base (model.rope_theta): pair i turns by base^(-2i / hs) radians per position


class GPT(nn.Module):
    """Token embedding -> n_layer Blocks -> norm -> logits over the vocabulary."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, parts: "Parts | None" = None):
        super().__init__()
        parts = parts or reference_parts(cfg)
        self.cfg, self.vocab_size, self.parts = cfg, vocab_size, parts
        # A part that holds tensors (RoPE's tables) is a module: registered, it moves with the model.
        self.part_modules = nn.ModuleList(p for p in vars(parts).values() if isinstance(p, nn.Module))
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.positions == "learned" else None
        if cfg.positions == "sinusoidal":
            # Scaled to the 0.02 that token and learned position embeddings start at: a table
            # of unit sines would drown the tokens (the original paper scaled tokens up instead).
            table = INIT_STD * parts.sinusoidal_table(cfg.block_size, cfg.n_embd)
            self.register_buffer("sinusoid", table, persistent=False)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout else identity
        self.blocks = nn.ModuleList(Block(cfg, parts) for _ in range(cfg.n_layer))
        self.norm_f = make_norm(cfg, parts)
        self.lm_head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        if cfg.tie_weights:  # one matrix both reads tokens in and scores them out
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual-stream projections so the sum over layers stays ~unit size.
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=INIT_STD / math.sqrt(2 * cfg.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: "KVCache | None" = None):
        """Logits (B, T, V) for token ids ``idx`` (B, T); with ``targets`` also the mean loss.

        With a ``cache``, ``idx`` continues the tokens already in it (at positions
        ``cache.length`` on), and their keys and values are added to it.
        """
        B, T = idx.shape
        if cache is None:  # positions 0 .. T-1 (None: the first T rows of each table), causal attention
            positions, mask = None, None
        else:  # the T positions after the cached ones, each seeing the filled slots up to it
            positions, mask = cache.next_positions(T)  # (T,), (T, block_size)
        x = self.drop(self.embed(idx, positions))  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, positions, mask, cache.layer(i) if cache is not None else None)
        if cache is not None:
            cache.advance(T)
        logits = self.lm_head(self.norm_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = self.parts.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(B * T))  # (B*T, V) vs (B*T,)
        return logits, loss

    def embed(self, idx: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Token vectors (B, T, C) for ids (B, T), plus absolute ``positions`` (T,) (default 0..T-1)."""
        T = idx.size(1)
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.cfg.block_size}")
        if self.wpe is not None:  # one learned row per position
            position_rows = rows(self.wpe.weight, positions, T)  # (T, C)
        elif self.cfg.positions == "sinusoidal":
            position_rows = rows(self.sinusoid, positions, T)
        else:  # rope: positions rotate the queries and keys inside attention instead
            position_rows = None
        return self.parts.embed(idx, self.wte.weight, position_rows)  # (B, T, C)

    def param_counts(self) -> dict[str, int]:
        """Parameters by component (a tied head counts once, under embeddings)."""
        counts: dict[str, int] = {}
        for name, p in self.named_parameters():  # a shared tensor once, under its first name
            part = ("token embedding" if name.startswith("wte") else
                    "position embedding" if name.startswith("wpe") else
                    "attention" if ".attn." in name else
                    "mlp" if ".mlp." in name else
                    "norms" if "norm" in name else
                    "lm head" if name.startswith("lm_head") else name)
            counts[part] = counts.get(part, 0) + p.numel()
        counts["total"] = sum(counts.values())
        return counts

    def flops_per_token(self) -> int:
        """Training FLOPs per token, PaLM appendix B's estimate: 6 per weight a token passes through (2
        forward, 4 backward; not a position lookup), plus attention's 12 * n_layer * n_embd * block_size."""
        counts = self.param_counts()
        n_matmul = counts["total"] - counts.get("position embedding", 0)
        return 6 * n_matmul + 12 * self.cfg.n_layer * self.cfg.n_embd * self.cfg.block_size


class Block(nn.Module):
    """One transformer layer: communicate (attention), then compute (MLP), each a residual."""

    def __init__(self, cfg: ModelConfig, parts: "Parts | None" = None):
        super().__init__()
        parts = parts or reference_parts(cfg)
        self.norm1, self.norm2 = make_norm(cfg, parts), make_norm(cfg, parts)
        self.attn = CausalSelfAttention(cfg, parts)
        self.mlp = MLP(cfg, parts)
        self.block = parts.block  # the two residual branches

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache: "LayerCache | None" = None) -> torch.Tensor:
        return self.block(x, lambda h: self.attn(h, positions, mask, cache), self.mlp, self.norm1, self.norm2)


def block(x: torch.Tensor, attend, mlp, norm1, norm2) -> torch.Tensor:
    """A pre-norm block on the residual stream x (B, T, C): x + attend(norm1(x)), then x + mlp(norm2(x)).

    Each branch reads a normalised copy of x and adds its output to x, so a branch that
    outputs zeros leaves x as it was. ``attend``, ``mlp``, ``norm1``, ``norm2``: callables
    (B, T, C) -> (B, T, C).
    """
    x = x + attend(norm1(x))  # (B, T, C): communicate between positions
    return x + mlp(norm2(x))  # compute on each position


class CausalSelfAttention(nn.Module):
    """Each token mixes the values of the tokens before it, weighted by query-key similarity."""

    def __init__(self, cfg: ModelConfig, parts: "Parts | None" = None):
        super().__init__()
        self.n_head, self.dropout, self.parts = cfg.n_head, cfg.dropout, parts or reference_parts(cfg)
        self.n_kv_head = cfg.n_kv_head or cfg.n_head  # fewer: each k, v head serves a group of q heads
        self.rope, self.rope_theta = cfg.positions == "rope", cfg.rope_theta
        self.hs = hs = cfg.n_embd // cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, (self.n_head + 2 * self.n_kv_head) * hs, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout) if cfg.dropout else identity
        self.q_norm = nn.RMSNorm(hs, eps=cfg.norm_eps or None) if cfg.qk_norm else None  # qk_norm: each
        self.k_norm = nn.RMSNorm(hs, eps=cfg.norm_eps or None) if cfg.qk_norm else None  # head's q, k to unit RMS

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache: "LayerCache | None" = None) -> torch.Tensor:
        """Attend over x (B, T, C) at ``positions`` (T,); ``mask`` (T, Tk) says which keys each
        query sees (None: causal). With a ``cache``, the keys are every cache slot."""
        q, k, v = self.project(x, positions)  # (B, nh, T, hs), 2 x (B, nkv, T, hs)
        if cache is not None:  # the keys and values of earlier tokens come from the cache
            k, v = cache.store(k, v, positions)  # (B, nkv, block_size, hs): every slot, filled or not
        if self.n_kv_head != self.n_head:  # q head h reads k, v head h // group: repeat each group's
            k, v = (t.repeat_interleave(self.n_head // self.n_kv_head, dim=1) for t in (k, v))  # (B, nh, Tk, hs)
        y = self.parts.attention(q, k, v, mask, self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        return self.resid_drop(self.proj(self.parts.merge_heads(y)))  # (B, T, C)

    def project(self, x: torch.Tensor, positions: torch.Tensor | None = None):
        """Queries (nh heads), keys and values (nkv heads each) of ``x`` (B, T, C), RoPE applied at
        ``positions`` (T,) (default 0..T-1)."""
        heads, qk_width = (self.n_head, self.n_kv_head), (self.n_head + self.n_kv_head) * self.hs
        qkv = self.qkv(x)  # (B, T, (nh + 2 nkv) hs): q, k, v side by side
        qk = self.parts.split_heads(qkv[..., :qk_width], sum(heads))  # (B, nh + nkv, T, hs): q's heads, then k's
        v = self.parts.split_heads(qkv[..., qk_width:], self.n_kv_head)  # (B, nkv, T, hs)
        if self.q_norm is not None:  # in float32, the norms' dtype (under autocast q and k are bfloat16)
            q, k = qk.split(heads, dim=1)
            qk = torch.cat((self.q_norm(q.float()), self.k_norm(k.float())), dim=1).to(qk.dtype)
        if self.rope:  # every head turns by the same angles: q's and k's in one call
            positions = torch.arange(x.size(1), device=x.device) if positions is None else positions
            qk = self.parts.rope(qk, positions, self.rope_theta)
        q, k = qk.split(heads, dim=1)  # (B, nh, T, hs), (B, nkv, T, hs)
        return q, k, v


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, nh, T, hs): head h holds channels h*hs .. (h+1)*hs - 1 of every position."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, T, nh, hs) -> (B, nh, T, hs)


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    """(B, nh, T, hs) -> (B, T, C): the heads side by side again, head 0's channels first."""
    B, nh, T, hs = y.shape
    return y.transpose(1, 2).reshape(B, T, nh * hs)  # a copy: transposed, y is no longer contiguous


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              dropout_p: float = 0.0) -> torch.Tensor:
    """Attention written out: each query's weighted mix of the values (B, nh, Tq, hs).

    q (B, nh, Tq, hs), k and v (B, nh, Tk, hs); ``mask`` (Tq, Tk) booleans, True where a
    query may see a key (None: causal, query i sees keys 0 .. i). ``dropout_p`` drops
    attention weights while training. ``F.scaled_dot_product_attention`` computes the same
    in one fused kernel (``sdpa_attention``); tests/test_model.py shows the two agree.
    """
    weights = attention_weights(q, k, mask)  # (B, nh, Tq, Tk)
    return F.dropout(weights, dropout_p, training=dropout_p > 0) @ v


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                   dropout_p: float = 0.0) -> torch.Tensor:
    """``attention`` as PyTorch's fused kernel (``model.attention: sdpa``): one call, no (Tq, Tk) matrix kept."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=mask is None)


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scores, mask, softmax: (B, nh, Tq, Tk), each row sums to 1 (how much each query looks at each key)."""
    hs = q.size(-1)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, Tq, Tk): how well each q matches each k
    if mask is None:
        mask = causal_mask(q.size(-2), q.device)  # (Tq, Tk)
    scores = scores.masked_fill(~mask, float("-inf"))  # no peeking at the future
    return F.softmax(scores, dim=-1)


class MLP(nn.Module):
    """Per-token computation: widen, apply a nonlinearity, project back."""

    def __init__(self, cfg: ModelConfig, parts: "Parts | None" = None):
        super().__init__()
        self.kind, self.swiglu = cfg.mlp, cfg.mlp == "swiglu"
        self.gelu_mlp = (parts or reference_parts(cfg)).mlp  # the GELU branch
        # SwiGLU has three matrices instead of two: 2/3 the width keeps the parameter count.
        hidden = cfg.mlp_hidden or (swiglu_hidden(cfg.n_embd) if self.swiglu else 4 * cfg.n_embd)
        self.fc = nn.Linear(cfg.n_embd, 2 * hidden if self.swiglu else hidden, bias=cfg.bias)
        self.proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout else identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "gelu_tanh":  # GPT-2's GELU: 0.5 h (1 + tanh(sqrt(2/pi) (h + 0.044715 h^3))), ~erf's
            return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))
        if self.kind == "relu2":  # squared ReLU (Primer, 2021; modded-nanogpt): 0 below 0, h^2 above
            return self.drop(self.proj(F.relu(self.fc(x)).square()))
        if not self.swiglu:
            return self.drop(self.gelu_mlp(x, self.fc.weight, self.fc.bias, self.proj.weight, self.proj.bias))
        gate, up = self.fc(x).chunk(2, dim=-1)  # 2 x (B, T, hidden)
        return self.drop(self.proj(F.silu(gate) * up))  # (B, T, C)


def mlp(x: torch.Tensor, fc_weight: torch.Tensor, fc_bias: torch.Tensor | None, proj_weight: torch.Tensor,
        proj_bias: torch.Tensor | None) -> torch.Tensor:
    """The GELU MLP on x (B, T, C), each position on its own: widen, GELU, project back (B, T, C).

    Weights in nn.Linear's (out, in) layout: fc_weight (H, C), proj_weight (C, H), H the hidden
    width (4C by default); biases (H,), (C,) or None. GELU: h * Phi(h), Phi the normal CDF.
    """
    h = F.gelu(F.linear(x, fc_weight, fc_bias))  # (B, T, H): x @ fc_weight.T + fc_bias
    return F.linear(h, proj_weight, proj_bias)  # (B, T, C)


class Rotary(nn.Module):
    """``rope`` from tables made once: the same numbers in half the small operations per call (what
    decoding pays for). (a, b) turned by t is x * cos + swap_pairs(x) * sin, the sign in the sin table."""

    def __init__(self, head_size: int, block_size: int, base: float = ROPE_BASE):
        super().__init__()
        self.base = base
        inv_freq = base ** (-torch.arange(0, head_size, 2).float() / head_size)  # (hs/2,)
        angles = torch.outer(torch.arange(block_size).float(), inv_freq)  # (block_size, hs/2)
        cos = angles.cos().repeat_interleave(2, dim=-1)  # (block_size, hs): each pair shares an angle
        sin = torch.stack((-angles.sin(), angles.sin()), dim=-1).flatten(-2)  # (block_size, hs): -s, +s, ...
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
        """Rotate x (..., T, hs) whose T rows sit at ``positions`` (T,), as ``rope`` does."""
        if base != self.base:
            raise ValueError(f"these tables turn by base {self.base}, not {base}")
        cos = self.cos.index_select(0, positions).to(x.dtype)  # (T, hs) in x's dtype: under autocast a
        sin = self.sin.index_select(0, positions).to(x.dtype)  # float32 table would promote a bfloat16 x
        swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (..., T, hs): (b, a) for each (a, b)
        return x * cos + swapped * sin


def rope(x: torch.Tensor, positions: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """RoPE written out: rotate each (even, odd) channel pair of x (..., T, hs) by its angle.

    Row t sits at ``positions[t]`` (T,); pair i (channels 2i, 2i + 1) turns by
    positions[t] * base^(-2i / hs) radians. The dot product of two rotated vectors depends
    only on the *difference* of their positions: attention sees relative distance, and no
    position vector is added to x.
    """
    hs = x.size(-1)
    inv_freq = base ** (-torch.arange(0, hs, 2, device=x.device).float() / hs)  # (hs/2,): radians per position
    angles = positions.float()[:, None] * inv_freq  # (T, hs/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # keep x's dtype under autocast
    a, b = x[..., 0::2], x[..., 1::2]  # (..., T, hs/2) each: the pairs' two channels
    out = torch.empty_like(x)  # (..., T, hs) in x's memory layout, which attention's kernel then keeps
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = b * cos + a * sin
    return out


def causal_mask(T: int, device) -> torch.Tensor:
    """(T, T) booleans: query i may see keys 0 .. i (the lower triangle)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def embed(idx: torch.Tensor, token_table: torch.Tensor, position_rows: torch.Tensor | None = None) -> torch.Tensor:
    """Token vectors (B, T, C): row idx[b, t] of ``token_table`` (V, C), plus ``position_rows[t]``
    ((T, C), learned or sinusoidal; None when RoPE rotates q and k instead)."""
    x = F.embedding(idx, token_table)  # (B, T, C): what nn.Embedding does
    return x if position_rows is None else x + position_rows  # (T, C) broadcast over B


def sinusoidal_table(block_size: int, n_embd: int) -> torch.Tensor:
    """The fixed position code of "Attention Is All You Need": sines and cosines of many periods, (T, C)."""
    position = torch.arange(block_size).float()[:, None]  # (T, 1)
    inv_freq = 10000.0 ** (-torch.arange(0, n_embd, 2).float() / n_embd)  # (C/2,)
    table = torch.zeros(block_size, n_embd)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)[:, : n_embd // 2]
    return table


def rows(table: torch.Tensor, positions: torch.Tensor | None, T: int) -> torch.Tensor:
    """The rows of a per-position table for ``positions`` (T,); None means 0..T-1, a view."""
    return table[:T] if positions is None else table.index_select(0, positions)


def identity(x: torch.Tensor) -> torch.Tensor:
    """Dropout 0: x itself, not an nn.Dropout (a module call costs microseconds; decoding makes 9 a token)."""
    return x


def reference_parts(cfg: ModelConfig) -> "Parts":
    """SML's own functions for a model with these settings (imported here: sml/parts.py imports this module)."""
    from sml.parts import for_model

    return for_model(cfg)


def make_norm(cfg: ModelConfig, parts: "Parts") -> nn.Module:
    """LayerNorm (centre and scale) or RMSNorm (scale only: cheaper, as in Llama)."""
    if cfg.norm == "rmsnorm":  # eps None: the dtype's machine epsilon (PyTorch's default)
        return nn.RMSNorm(cfg.n_embd, eps=cfg.norm_eps or None)
    return LayerNorm(cfg.n_embd, parts.layer_norm, bias=cfg.bias, eps=cfg.norm_eps or 1e-5)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm's weight, bias and eps (the same state_dict keys), computed by ``layer_norm``."""

    def __init__(self, n_embd: int, layer_norm, bias: bool, eps: float = 1e-5):
        super().__init__(n_embd, eps=eps, bias=bias)
        self.layer_norm = layer_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x, self.weight, self.bias, self.eps)  # (B, T, C) -> (B, T, C)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float = 1e-5) -> torch.Tensor:
    """Layer norm written out: each position's C channels to mean 0 and variance 1, then scaled and shifted.

    x (..., C); weight, bias (C,) (bias None: no shift). The variance divides by C, eps inside the
    square root, as in ``fused_layer_norm`` (PyTorch's kernel, the default); tests show they agree.
    """
    mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # (..., 1): divided by C, not C - 1
    x_hat = (x - mean) / torch.sqrt(var + eps)  # (..., C)
    return x_hat * weight if bias is None else x_hat * weight + bias


def fused_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     eps: float = 1e-5) -> torch.Tensor:
    """``layer_norm`` as PyTorch's one kernel (what ``nn.LayerNorm`` calls)."""
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)


def swiglu_hidden(n_embd: int) -> int:
    """SwiGLU's hidden width: 8/3 of n_embd (2/3 of GELU's 4x, for a third matrix), rounded up to a multiple of 8."""
    return (8 * n_embd // 3 + 7) // 8 * 8
