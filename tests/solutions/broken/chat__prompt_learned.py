"""Broken on purpose: every message's words are learned, the user's too."""

from tests.solutions.chat import inputs_and_targets  # noqa: F401
from tests.solutions.chat import render as right_render

EXPECT = "the prompt's tokens are counted in the loss"


def render(messages, tok):
    ids, learn = right_render(messages, tok)
    roles = set(tok.special_tokens.values()) - {tok.special_tokens["<|end|>"]}
    return ids, [i not in roles for i in ids]
