"""Grading part 11: chat: the template and the loss mask (mine/chat.py).

The learner's ``render`` and ``inputs_and_targets`` run on a few small conversations (a system
message, two turns each way, an end token typed by the user) with a small tokenizer, and are
compared with the reference's (``sml.chat``); each classic mistake is named: the prompt's
tokens counted in the loss, the end token not learned, the role tokens learned, the shift by
one missed.
"""

import functools

import torch

from sml.chat import END, IGNORE, ROLE_TOKENS, Message, inputs_and_targets, render, with_chat_tokens
from sml.learn.core import Mismatch, Part, check

TALKS = [
    [Message("user", "Hi!"), Message("assistant", "Hello, friend.")],
    [Message("system", "Be brief."), Message("user", "Two plus two?"), Message("assistant", "Four."),
     Message("user", "And <|end|> this?"), Message("assistant", "Text, not a token.")],
]


@functools.cache
def tokenizer():
    from sml.tokenizer import Tokenizer

    text = " ".join(m.content for talk in TALKS for m in talk) * 4
    return with_chat_tokens(Tokenizer.train(text, 280, "gpt4"))


def rendered(mine, talk):
    got = mine.render(list(talk), tokenizer())
    if not (isinstance(got, tuple | list) and len(got) == 2):
        raise Mismatch(f"render returned {type(got).__name__}, not (ids, learn): return both lists")
    ids, learn = (list(map(int, got[0])), [bool(f) for f in got[1]])
    if len(ids) != len(learn):
        raise Mismatch(f"render returned {len(ids)} ids but {len(learn)} learn flags: one flag per id")
    return ids, learn


def shown(ids) -> str:
    return repr(tokenizer().decode(ids))


@check("the template: each message's role token, content, end token", "render")
def template(mine):
    tok, end = tokenizer(), tokenizer().special_tokens[END]
    for talk in TALKS:
        ids, _ = rendered(mine, talk)
        want, _ = render(talk, tok)
        if ids == want:
            continue
        if ids == [i for i in want if i != end]:
            raise Mismatch(f"no <|end|> after each message: got {shown(ids)}; each message ends with the end"
                           " token, the reply's is where sampling stops")
        roles = {tok.special_tokens[t] for t in ROLE_TOKENS.values()}
        if ids == [i for i in want if i not in roles]:
            raise Mismatch(f"no role token before each message: got {shown(ids)}; start each message with"
                           " ROLE_TOKENS[message.role]")
        if end in ids and ids.count(end) > want.count(end):
            raise Mismatch("a '<|end|>' typed in a message became the end token: encode content with"
                           " tok.encode(text, special=\"text\"), so a user cannot end their message early")
        raise Mismatch(f"the ids differ from the template's: got {shown(ids)}, expected {shown(want)}")


@check("the loss mask: the assistant's words and its end token, nothing else", "render")
def mask(mine):
    tok = tokenizer()
    for talk in TALKS:
        ids, learn = rendered(mine, talk)
        want_ids, want = render(talk, tok)
        if ids != want_ids:
            raise Mismatch("the ids differ from the template's (see the template's check first)")
        extra = [i for i, (a, b) in enumerate(zip(learn, want)) if a and not b]
        missing = [i for i, (a, b) in enumerate(zip(learn, want)) if b and not a]
        if extra:
            token = ids[extra[0]]
            if token in {tok.special_tokens[t] for t in ROLE_TOKENS.values()}:
                raise Mismatch(f"a role token ({tok.decode([token])}) is learned: the template puts it there, the"
                               " model is not meant to predict it; learn the assistant's content and <|end|> only")
            raise Mismatch(f"the prompt's tokens are counted in the loss: {shown([ids[i] for i in extra])} is"
                           " learned, but it is not the assistant's; the model would learn to write the user's"
                           " side too")
        if missing and all(ids[i] == tok.special_tokens[END] for i in missing):
            raise Mismatch("the end token is not learned: the <|end|> after the assistant's reply must be, or the"
                           " model never learns to stop")
        if missing:
            raise Mismatch(f"the assistant's words {shown([ids[i] for i in missing])} are not learned: learn"
                           " every token of its content and the <|end|> after it")


@check("inputs and targets: shifted by one, IGNORE where not learned", "inputs_and_targets")
def targets(mine):
    for talk in TALKS:
        ids, learn = render(talk, tokenizer())
        got = mine.inputs_and_targets(list(ids), list(learn))
        if not (isinstance(got, tuple | list) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            raise Mismatch("inputs_and_targets must return (x, y), two tensors")
        x, y = got
        want_x, want_y = inputs_and_targets(ids, learn)
        if x.shape != want_x.shape or y.shape != want_y.shape:
            raise Mismatch(f"x {tuple(x.shape)} and y {tuple(y.shape)}: expected ({len(ids) - 1},) each, the T + 1 ids"
                           " give T inputs and T targets")
        if torch.equal(x, want_x) and torch.equal(y, want_y):
            continue
        if torch.equal(y.long(), torch.tensor(ids[:-1]).masked_fill(~torch.tensor(learn[:-1]), IGNORE)):
            raise Mismatch("the shift by one is missed: y[t] must be the id after x[t] (ids[t + 1]), the one the"
                           " model predicts, not ids[t] itself")
        if torch.equal(y.long(), torch.tensor(ids[1:]).masked_fill(~torch.tensor(learn[:-1]), IGNORE)):
            raise Mismatch("the mask is not shifted with the targets: whether y[t] is learned is learn[t + 1],"
                           " the flag of the id it is")
        if not torch.equal(x, want_x):
            raise Mismatch("x must be ids[:-1], the ids the model reads")
        if torch.equal((y == want_y), want_y != IGNORE):
            raise Mismatch(f"a target not learned must be IGNORE ({IGNORE}), which F.cross_entropy skips;"
                           f" found {int(y[want_y == IGNORE][0])}")
        raise Mismatch("y differs from the reference's: ids[1:], with IGNORE where the id is not learned")


PART = Part("chat", "the chat template and the loss mask", ("render", "inputs_and_targets"),
            "LEARN.md, 11. Chat", (template, mask, targets))
