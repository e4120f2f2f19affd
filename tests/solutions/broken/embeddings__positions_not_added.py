"""Broken on purpose: the position rows are ignored."""

from tests.solutions.embeddings import *  # noqa: F403

EXPECT = "positions not added"


def embed(idx, token_table, position_rows=None):
    return token_table[idx]
