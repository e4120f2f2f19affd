"""The parts a learner rewrites, in one record: the functions the model, trainer and sampler call.

Each field is one function of the syllabus (LEARN.md), and its default is SML's own: what a
default run runs. Where that is one of PyTorch's fused kernels, the default is a one-line
adapter to it, and the written-out function a reader studies sits next to it in the same
module (``model.attention`` next to ``model.sdpa_attention``); tests show each pair agrees.

    parts = Parts()                                 # SML's functions
    parts = dataclasses.replace(parts, attention=my_attention)   # one replaced
    model = GPT(cfg, vocab_size, parts)             # the model calls parts.attention(...)

The model, the training step and the sampler call ``parts.<name>(...)`` the same way
whoever wrote the function: ``impl.<part>: mine`` in params.yaml (``sml/learn/mine.py``)
replaces the fields of that part with the learner's, after grading them.

Left out on purpose: the tokenizer's BPE and micrograd's ``Value``, which the stages hand
over directly (``Tokenizer.use``, ``stages/micrograd.py``).
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch.nn.functional as F

from sml import batches, generate, model, optim
from sml.config import ModelConfig

if TYPE_CHECKING:
    from sml.learn.mine import Mine


@dataclass(frozen=True)
class Parts:
    """One function per seam, SML's by default (the groups are LEARN.md's chapters)."""

    # embeddings: token rows plus position rows; sinusoidal positions; RoPE (for_model: from tables)
    embed: Callable = model.embed
    sinusoidal_table: Callable = model.sinusoidal_table
    rope: Callable = model.rope
    # attention: PyTorch's fused kernel (model.attention: manual runs the written-out one)
    attention: Callable = model.sdpa_attention
    # heads: q, k, v cut into heads, and the heads put side by side again
    split_heads: Callable = model.split_heads
    merge_heads: Callable = model.merge_heads
    # layer norm (PyTorch's kernel; model.layer_norm is written out), the GELU MLP, the block
    layer_norm: Callable = model.fused_layer_norm
    mlp: Callable = model.mlp
    block: Callable = model.block
    # training: batches, the loss (PyTorch's kernel; sml/loss.py is written out), clipping,
    # AdamW's update (optim.adamw_step: SML's runs as torch.optim.AdamW), the schedule
    get_batch: Callable = batches.get_batch
    cross_entropy: Callable = F.cross_entropy
    clip_grad_norm: Callable = optim.fused_clip_grad_norm
    adamw_step: Callable = optim.adamw_step
    lr_at: Callable = optim.warmup_cosine
    # sampling: choose the next token from the logits
    pick: Callable = generate.pick


def for_model(cfg: ModelConfig, replaced: dict[str, Callable] | None = None) -> Parts:
    """The record a model with these settings runs, with the fields in ``replaced`` (the
    learner's functions) in place of SML's.

    ``model.attention: manual`` runs the written-out ``model.attention`` and ``model.rope``
    instead of PyTorch's fused kernel and RoPE's precomputed tables (``model.Rotary``):
    slower, and every step visible.
    """
    if cfg.attention == "manual":
        base = Parts(attention=model.attention)
    elif cfg.positions == "rope":  # the fast defaults: PyTorch's attention kernel, RoPE from tables made once
        base = Parts(rope=model.Rotary(cfg.n_embd // cfg.n_head, cfg.block_size, cfg.rope_theta))
    else:
        base = Parts()
    return dataclasses.replace(base, **(replaced or {}))


def parts_for(cfg: ModelConfig, mine: "Mine | None") -> Parts:
    """``for_model`` with the learner's functions of ``mine`` (``sml/learn/mine.py``; None: all SML's)."""
    return for_model(cfg, mine.replaced() if mine is not None else None)
