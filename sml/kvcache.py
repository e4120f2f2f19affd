"""The KV cache: every layer's keys and values of the tokens seen so far, for generation.

Without it, each new token reruns the model over the whole context; with it, a new token
costs one position: its query attends to the keys and values cached for the earlier ones.
The cache has the same shapes at every position (its length is a tensor, and attention
reads all block_size slots with a mask), which is what a compiled or CUDA-graph-captured
decode step needs (``bench/generate.py --compile``, ``bench/gpu.py``).

Left out on purpose: paging, eviction and batches of different lengths (one batch of
sequences shares one length).
"""

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from sml.model import GPT


class KVCache:
    """The keys and values of every layer for the tokens seen so far (one batch of sequences).

    Preallocated to ``block_size`` slots, with shapes that never change: a new token's keys and
    values are written into its slot, attention reads all the slots and a mask hides the ones
    not yet filled. ``length`` (how many are filled) is a tensor on the device and moves in
    place, so a decode step has no Python number in it: it can be compiled once, or captured
    as a CUDA graph and replayed for every token.
    """

    def __init__(self, model: "GPT", batch_size: int, device, dtype=torch.float32):
        cfg = model.cfg  # n_kv_head heads (fewer than n_head with grouped-query attention: less memory)
        shape = (batch_size, cfg.n_kv_head or cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head)
        self.layers = [LayerCache(torch.zeros(shape, device=device, dtype=dtype),
                                  torch.zeros(shape, device=device, dtype=dtype)) for _ in range(cfg.n_layer)]
        self.length = torch.zeros((), dtype=torch.long, device=device)
        self.slots = torch.arange(cfg.block_size, device=device)  # (block_size,)

    def layer(self, i: int) -> "LayerCache":
        return self.layers[i]

    def next_positions(self, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The positions (T,) of the next T tokens (length, length + 1, ...), and which slots
        each of them sees (T, block_size): the filled ones and its own, not those after it."""
        positions = self.length + self.slots[:T]
        return positions, self.slots[None, :] <= positions[:, None]

    def advance(self, T: int) -> None:
        self.length += T

    def reset(self) -> None:
        """Empty: the slots are rewritten before they are read again."""
        self.length.zero_()


class LayerCache:
    """One layer's cached keys and values, (B, nkv, block_size, hs) each."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor):
        self.k, self.v = k, v

    def store(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor):
        """Write the new keys/values (B, nkv, T, hs) into their slots; return every slot."""
        self.k.index_copy_(2, positions, k.to(self.k.dtype))
        self.v.index_copy_(2, positions, v.to(self.v.dtype))
        return self.k, self.v
