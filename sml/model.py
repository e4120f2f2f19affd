"""The GPT: a decoder-only transformer language model, readable in one sitting.

Reading order, bottom-up like the data flows:
1. token ids -> vectors (``wte``), plus where each token is (``positions``);
2. ``n_layer`` Blocks, each: x + attention(norm(x)), then x + mlp(norm(x)) (pre-norm residuals);
3. a final norm and the language-model head: one score (logit) per vocabulary id.
The loss is cross-entropy between those scores and the next token, in nats/token.

Variants a learner can switch in params.yaml (``model:``) and compare with ``dvc exp``:
positions ``learned | sinusoidal | rope``, norm ``layernorm | rmsnorm``, MLP ``gelu | swiglu``,
weight tying, dropout, biases, and attention ``manual`` (written out step by step) or
``sdpa`` (PyTorch's fused kernel; a test shows both agree).

Shapes: B batch, T time (tokens), C channels (n_embd), nh heads, hs head size (C / nh),
V vocabulary size.

Left out on purpose: the KV cache for fast sampling (``generate.py``), and any training code.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from sml.config import ModelConfig

INIT_STD = 0.02  # GPT-2's initial weight scale


class GPT(nn.Module):
    """Token embedding -> n_layer Blocks -> norm -> logits over the vocabulary."""

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.positions == "learned" else None
        if cfg.positions == "sinusoidal":
            # Scaled to the 0.02 that token and learned position embeddings start at: a table
            # of unit sines would drown the tokens (the original paper scaled tokens up instead).
            table = INIT_STD * sinusoidal_table(cfg.block_size, cfg.n_embd)
            self.register_buffer("sinusoid", table, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        rope = Rotary(cfg.n_embd // cfg.n_head, cfg.block_size) if cfg.positions == "rope" else None
        self.blocks = nn.ModuleList(Block(cfg, rope) for _ in range(cfg.n_layer))
        self.norm_f = make_norm(cfg)
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

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, V) for token ids ``idx`` (B, T); with ``targets`` also the mean loss."""
        B, T = idx.shape
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.cfg.block_size}")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))  # (T, C) broadcast over B
        elif self.cfg.positions == "sinusoidal":
            x = x + self.sinusoid[:T]
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.norm_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(B * T))  # (B*T, V) vs (B*T,)
        return logits, loss

    def param_counts(self) -> dict[str, int]:
        """Parameters by component (a tied head counts once, under embeddings)."""
        counts: dict[str, int] = {}
        seen: set[int] = set()
        for name, p in self.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
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
        """Training FLOPs per token (forward + backward), PaLM appendix B's estimate.

        6 per weight (2 forward, 4 backward) for every weight a token passes through, plus
        attention's scores and weighted sum: 12 * n_layer * n_embd * block_size. Position
        embeddings are a lookup, not a matmul, so they cost nothing here.
        """
        counts = self.param_counts()
        n_matmul = counts["total"] - counts.get("position embedding", 0)
        return 6 * n_matmul + 12 * self.cfg.n_layer * self.cfg.n_embd * self.cfg.block_size


class Block(nn.Module):
    """One transformer layer: communicate (attention), then compute (MLP), each a residual."""

    def __init__(self, cfg: ModelConfig, rope: "Rotary | None"):
        super().__init__()
        self.norm1, self.norm2 = make_norm(cfg), make_norm(cfg)
        self.attn = CausalSelfAttention(cfg, rope)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # (B, T, C)
        return x + self.mlp(self.norm2(x))


class CausalSelfAttention(nn.Module):
    """Each token mixes the values of the tokens before it, weighted by query-key similarity."""

    def __init__(self, cfg: ModelConfig, rope: "Rotary | None"):
        super().__init__()
        self.n_head, self.dropout, self.mode = cfg.n_head, cfg.dropout, cfg.attention
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.rope = rope
        if self.mode == "manual":
            mask = torch.tril(torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool))
            self.register_buffer("causal", mask, persistent=False)  # (block_size, block_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        dropout = self.dropout if self.training else 0.0
        if self.mode == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            y = self.manual_attention(q, k, v, dropout)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_drop(self.proj(y))

    def manual_attention(self, q, k, v, dropout: float) -> torch.Tensor:
        """Attention written out: scores, causal mask, softmax, weighted sum of values."""
        T, hs = q.size(-2), q.size(-1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, T): how well each q matches each k
        scores = scores.masked_fill(~self.causal[:T, :T], float("-inf"))  # no peeking at the future
        weights = F.softmax(scores, dim=-1)  # (B, nh, T, T): each row sums to 1
        weights = F.dropout(weights, dropout, training=dropout > 0)
        return weights @ v  # (B, nh, T, hs)


class MLP(nn.Module):
    """Per-token computation: widen, apply a nonlinearity, project back."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        # SwiGLU has three matrices instead of two: 2/3 the width keeps the parameter count.
        hidden = 4 * cfg.n_embd if not self.swiglu else _round_up(8 * cfg.n_embd // 3, 8)
        self.fc = nn.Linear(cfg.n_embd, 2 * hidden if self.swiglu else hidden, bias=cfg.bias)
        self.proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)  # (B, T, hidden) or (B, T, 2 * hidden)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)  # 2 x (B, T, hidden)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h)
        return self.drop(self.proj(h))  # (B, T, C)


class Rotary(nn.Module):
    """RoPE: rotate each (even, odd) pair of q and k channels by an angle that grows with position.

    The dot product of two rotated vectors depends only on the *difference* of their
    positions, so attention sees relative distance and no position vector is added to x.
    """

    def __init__(self, head_size: int, block_size: int, base: float = 10000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_size, 2).float() / head_size)  # (hs/2,)
        angles = torch.outer(torch.arange(block_size).float(), inv_freq)  # (block_size, hs/2)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.size(-2)
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, nh, T, hs/2) each
        cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)  # (T, hs/2)
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, nh, T, hs/2, 2)
        return rotated.flatten(-2)  # (B, nh, T, hs), pairs back in place


def sinusoidal_table(block_size: int, n_embd: int) -> torch.Tensor:
    """The fixed position code of "Attention Is All You Need": sines and cosines of many periods.

    >>> sinusoidal_table(4, 6).shape
    torch.Size([4, 6])
    """
    position = torch.arange(block_size).float()[:, None]  # (T, 1)
    inv_freq = 10000.0 ** (-torch.arange(0, n_embd, 2).float() / n_embd)  # (C/2,)
    table = torch.zeros(block_size, n_embd)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)[:, : n_embd // 2]
    return table


def make_norm(cfg: ModelConfig) -> nn.Module:
    """LayerNorm (centre and scale) or RMSNorm (scale only: cheaper, as in Llama)."""
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.n_embd)
    return nn.LayerNorm(cfg.n_embd, bias=cfg.bias)


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple
