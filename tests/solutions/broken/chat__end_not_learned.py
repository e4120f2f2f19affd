"""Broken on purpose: the assistant's words are learned, its end token is not."""

from tests.solutions.chat import inputs_and_targets  # noqa: F401
from tests.solutions.chat import render as right_render

EXPECT = "the end token is not learned"


def render(messages, tok):
    ids, learn = right_render(messages, tok)
    return ids, [keep and i != tok.special_tokens["<|end|>"] for i, keep in zip(ids, learn)]
