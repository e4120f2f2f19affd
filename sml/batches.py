"""Training batches: random windows of the token stream, reproducible and resumable.

A batch is ``batch_size`` windows of ``block_size + 1`` consecutive tokens taken at random
offsets; the input is each window's first ``block_size`` tokens and the target the same
window shifted by one: at every position the model learns to predict the next token.

Tokens stay in a memory map (``sml.data.tokens.load_tokens``): only the windows drawn are read,
so a corpus larger than RAM trains the same way. The offsets come from a private
``torch.Generator`` whose state goes into each checkpoint, so a resumed run draws exactly
the batches an uninterrupted run would have drawn.

``get_batch`` cuts the windows at the drawn offsets (the learner's with ``impl.training:
mine``, through ``sml/parts.py``): it is handed the memory map itself as a tensor, in the
token file's dtype (uint16, or uint32 for a vocabulary over 65,536), and its x and y become int64.
"""

import warnings
from collections.abc import Callable

import numpy as np
import torch

IGNORE = -100  # a target the loss skips: F.cross_entropy's default ignore_index (sml/chat.py)


class RandomWindows:
    """Draws (x, y) batches of shape (batch_size, block_size) from a 1-D token array.

    ``learn`` (fine-tuning, ``sml/chat.py``): one flag per token, 1 where the model learns to
    predict it; a target not learned is ``IGNORE`` (-100) in y, which the loss skips. A batch with
    no target to learn at all (its loss would be 0 / 0) is drawn again.
    """

    MAX_DRAWS = 1000  # batches drawn in a row without a learned target before giving up

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, seed: int,
                 device: torch.device, cut: Callable | None = None, learn: np.ndarray | None = None):
        if len(tokens) <= block_size:
            raise ValueError(f"{len(tokens)} tokens cannot fill one window of {block_size} + 1")
        self.tokens, self.block_size, self.batch_size = tokens, block_size, batch_size
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self.cut = cut or get_batch  # (tokens, starts, block_size) -> (x, y): parts.get_batch
        with warnings.catch_warnings():  # a read-only map: nothing writes through the tensor
            warnings.simplefilter("ignore", UserWarning)
            self.stream = torch.from_numpy(np.asarray(tokens))  # (N,), no copy
            self.learn = None if learn is None else torch.from_numpy(np.asarray(learn))

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch: inputs and targets, (B, T) int64 each, on the device."""
        for _ in range(self.MAX_DRAWS):
            starts = torch.randint(len(self.tokens) - self.block_size, (self.batch_size,), generator=self.generator)
            x, y = self.cut(self.stream, starts, self.block_size)
            x, y = x.to(torch.int64), y.to(torch.int64)
            if self.learn is None:
                break
            learned = self.cut(self.learn, starts, self.block_size)[1] != 0  # the same windows' flags
            if learned.any():
                y = y.masked_fill(~learned, IGNORE)
                break
        else:
            raise ValueError(f"{self.MAX_DRAWS} batches in a row held no token to learn")
        return self._to_device(x), self._to_device(y)

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":  # pinned memory lets the copy overlap with compute
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch.to(self.device)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        # The generator is a CPU one: its state must be a CPU byte tensor, wherever it was loaded.
        self.generator.set_state(state["generator"].cpu())


def get_batch(tokens: torch.Tensor, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (B, block_size) each, in the dtype of ``tokens`` (N,): the window at each
    start (B,), and the same window shifted by one.

    >>> x, y = get_batch(torch.arange(10), torch.tensor([0, 5]), 3)
    >>> x.tolist(), y.tolist()
    ([[0, 1, 2], [5, 6, 7]], [[1, 2, 3], [6, 7, 8]])
    """
    windows = tokens[starts[:, None] + torch.arange(block_size + 1)]  # (B, T+1): one gather, only these tokens read
    return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)
