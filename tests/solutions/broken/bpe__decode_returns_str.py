"""Broken on purpose: decode returns text (str), not bytes."""

from tests.solutions.bpe import *  # noqa: F403
from tests.solutions.bpe import decode as decode_bytes

EXPECT = "should return bytes"


def decode(ids, merges):
    return decode_bytes(ids, merges).decode("utf-8", errors="replace")
