"""Part 11: chat: the template and the loss mask. LEARN.md, 11. Chat.

Grade it: ``make grade PART=chat``. Fine-tune with it: ``dvc exp run -S impl.chat=mine``.
The reference to compare with once yours passes: ``render`` and ``inputs_and_targets`` in sml/chat.py.
"""

import torch

from sml.chat import END, IGNORE, ROLE_TOKENS  # noqa: F401 ("<|end|>", -100, {"user": "<|user|>", ...})


def render(messages, tok) -> tuple[list[int], list[bool]]:
    """A conversation as the ids the model reads, and which of them it learns to predict.

    messages: a list of messages, each with .role ("system", "user" or "assistant") and
        .content (a str).
    tok: the tokenizer with the chat tokens: tok.special_tokens[ROLE_TOKENS["user"]] is the id of
        "<|user|>", tok.special_tokens[END] the id of "<|end|>"; tok.encode(text, special="text")
        encodes text, with a "<|end|>" typed in it kept as plain characters (a user cannot end
        their message early).
    Returns: ids (a list of ints) and learn (a list of bools, one per id).

    The template: each message is its role's token, its content's ids, then the end token:
        <|user|> Hi! <|end|> <|assistant|> Hello. <|end|>
    What must hold: the model learns the assistant's content and the end token after it (so it
    learns to stop), and nothing else: not the system's or the user's words (it is not meant
    to write those), not the role tokens (the template puts them there).
    """
    raise NotImplementedError("render: write it (LEARN.md, 11. Chat)")


def inputs_and_targets(ids: list[int], learn: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """One rendered conversation of T + 1 ids as the model's inputs and targets, (T,) int64 each.

    x[t] is ids[t]; y[t] is the id the model should predict after reading ids[0..t], where that
    id is one it learns, and IGNORE (-100) where it is not: F.cross_entropy skips those, so the
    loss is the mean over the learned targets only.
    """
    raise NotImplementedError("inputs_and_targets: write it (LEARN.md, 11. Chat)")
