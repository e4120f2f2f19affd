"""Training batches (sml/batches.py): the targets are the inputs shifted by one; resuming repeats them."""

import numpy as np
import pytest
import torch

from sml.batches import RandomWindows

CPU = torch.device("cpu")


def test_a_batchs_targets_are_its_inputs_shifted_by_one():
    tokens = np.random.default_rng(0).permutation(200).astype(np.uint16)  # each id once: a window shows where it began
    x, y = RandomWindows(tokens, 8, 4, seed=1, device=CPU).next()
    assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # the same window, one position later
    for row_x, row_y in zip(x, y, strict=True):
        start = int(np.flatnonzero(tokens == int(row_x[0]))[0])
        assert row_x.tolist() == tokens[start : start + 8].tolist()
        assert row_y.tolist() == tokens[start + 1 : start + 9].tolist()  # the token after each input


def test_every_window_fits_the_stream_even_the_last_one():
    tokens = np.arange(10, dtype=np.uint16)  # 10 tokens, windows of 8 + 1: starts 0 and 1 only
    windows = RandomWindows(tokens, 8, 64, seed=0, device=CPU)
    x, y = windows.next()
    assert set(x[:, 0].tolist()) == {0, 1}
    assert int(y.max()) == 9


def test_a_restored_generator_draws_the_same_batches():
    tokens = np.arange(100, dtype=np.uint16)
    windows = RandomWindows(tokens, 4, 3, seed=5, device=CPU)
    state = windows.state_dict()
    first = [windows.next() for _ in range(3)]
    windows.load_state_dict(state)
    again = [windows.next() for _ in range(3)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))


def test_too_few_tokens_for_one_window_is_refused():
    with pytest.raises(ValueError, match="cannot fill one window"):
        RandomWindows(np.arange(8, dtype=np.uint16), 8, 1, seed=0, device=CPU)
