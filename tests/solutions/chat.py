"""A learner's correct chat part, written from the stub's contract alone (for the grader's tests)."""

import torch

from sml.chat import END, IGNORE, ROLE_TOKENS


def render(messages, tok):
    ids, learn = [], []
    for message in messages:
        content = tok.encode(message.content, special="text")
        ids += [tok.special_tokens[ROLE_TOKENS[message.role]], *content, tok.special_tokens[END]]
        mine = message.role == "assistant"
        learn += [False] + [mine] * (len(content) + 1)
    return ids, learn


def inputs_and_targets(ids, learn):
    x = torch.tensor(ids[:-1], dtype=torch.long)
    y = torch.tensor([i if keep else IGNORE for i, keep in zip(ids[1:], learn[1:])], dtype=torch.long)
    return x, y
