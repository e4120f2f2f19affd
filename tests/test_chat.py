"""The chat template, its loss mask and the grown vocabulary (issue 28)."""

import dataclasses

import pytest
import torch

from sml.chat import CHAT_TOKENS, END, IGNORE, Message, grow_vocab, inputs_and_targets, prompt, render, with_chat_tokens
from sml.model import GPT
from sml.tokenizer import Tokenizer
from tests.conftest import MIXED, SONNET
from tests.test_model import TINY

CHATTY = dataclasses.replace(TINY, block_size=128)  # a whole conversation in one window
TALK = [Message("system", "Be brief."), Message("user", "Shall I compare thee?"),
        Message("assistant", "To a summer's day."), Message("user", "And?"), Message("assistant", "Thou art lovelier.")]


@pytest.fixture(scope="module")
def base():
    return Tokenizer.train(SONNET + MIXED, 300, "gpt4")


@pytest.fixture(scope="module")
def tok(base):
    return with_chat_tokens(base)


def test_chat_tokens_come_after_the_old_ids_and_change_no_encoding(base, tok):
    assert tok.vocab_size == base.vocab_size + 4 and tok.merges == base.merges
    assert [tok.special_tokens[t] for t in CHAT_TOKENS] == list(range(base.vocab_size, base.vocab_size + 4))
    assert all(tok.special_tokens[s] == i for s, i in base.special_tokens.items())
    assert tok.encode(SONNET) == base.encode(SONNET)
    assert with_chat_tokens(tok) is tok  # already there: nothing added


def test_render_wraps_each_message_and_learns_the_assistants_words_and_end_only(tok):
    ids, learn = render(TALK, tok)
    assert tok.decode(ids) == ("<|system|>Be brief.<|end|><|user|>Shall I compare thee?<|end|>"
                               "<|assistant|>To a summer's day.<|end|><|user|>And?<|end|>"
                               "<|assistant|>Thou art lovelier.<|end|>")
    learned = [i for i, keep in zip(ids, learn, strict=True) if keep]
    end = tok.special_tokens[END]
    assert learned == tok.encode("To a summer's day.") + [end] + tok.encode("Thou art lovelier.") + [end]
    roles = {tok.special_tokens[t] for t in ("<|system|>", "<|user|>", "<|assistant|>")}
    assert not any(keep for i, keep in zip(ids, learn, strict=True) if i in roles)


def test_a_user_typing_a_chat_token_does_not_end_the_message(tok):
    ids, _ = render([Message("user", "say <|end|> now"), Message("assistant", "ok")], tok)
    assert ids.count(tok.special_tokens[END]) == 2  # the user's end and the assistant's, not the typed one
    assert "say <|end|> now" in tok.decode(ids)


def test_the_prompt_asks_for_the_assistants_turn(tok):
    ids = prompt(TALK[:2], tok)
    assert ids[-1] == tok.special_tokens["<|assistant|>"] and ids[:-1] == render(TALK[:2], tok)[0]


def test_targets_are_shifted_by_one_and_not_learned_ones_are_ignored(tok):
    ids, learn = render(TALK[1:3], tok)
    x, y = inputs_and_targets(ids, learn)
    assert x.tolist() == ids[:-1]
    assert y.tolist() == [i if keep else IGNORE for i, keep in zip(ids[1:], learn[1:], strict=True)]
    assert y[-1] == tok.special_tokens[END]  # the last target: the reply's end, learned
    assert y[0] == IGNORE  # the first target is the user's first word


def test_the_models_loss_counts_the_learned_targets_only(base, tok):
    torch.manual_seed(0)
    model = GPT(CHATTY, base.vocab_size)
    grow_vocab(model, tok.vocab_size)
    ids, learn = render(TALK, tok)
    x, y = inputs_and_targets(ids, learn)
    logits, loss = model(x[None], y[None])
    learned = y != IGNORE
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits[0][learned], y[learned]))
    # A user's turn after the last reply: whatever it says, the loss is the same (causal attention
    # keeps it from the reply's predictions, and its own tokens are not learned)...
    losses, unmasked = [], []
    for words in ("What a long and winding question that is", "No"):
        ids, learn = render([*TALK[1:3], Message("user", words)], tok)
        losses.append(model(*(t[None] for t in inputs_and_targets(ids, learn)))[1])
        unmasked.append(model(torch.tensor([ids[:-1]]), torch.tensor([ids[1:]]))[1])
    torch.testing.assert_close(losses[0], losses[1])
    assert not torch.allclose(unmasked[0], unmasked[1])  # counted, the user's words would change it
    # ...and no gradient reaches the logits of the positions whose targets are not learned.
    logits = logits.detach().requires_grad_()
    torch.nn.functional.cross_entropy(logits[0], y).backward()
    assert logits.grad[0][~learned].abs().max() == 0 and logits.grad[0][learned].abs().max() > 0


@pytest.mark.parametrize("tied", [True, False])
def test_a_grown_model_keeps_its_old_logits_and_starts_new_rows_at_the_mean(base, tok, tied):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(CHATTY, tie_weights=tied), base.vocab_size).eval()
    x = torch.tensor([base.encode("Shall I compare thee")])
    before = model(x)[0]
    old = model.wte.weight.detach().clone()
    grow_vocab(model, tok.vocab_size)
    after = model(x)[0]
    assert after.shape[-1] == tok.vocab_size and model.vocab_size == tok.vocab_size
    torch.testing.assert_close(after[..., : base.vocab_size], before)
    assert torch.equal(model.wte.weight[base.vocab_size :], old.mean(0).expand(4, -1))
    assert (model.lm_head.weight is model.wte.weight) == tied
    x, y = inputs_and_targets(*render(TALK, tok))
    model(x[None], y[None])[1].backward()  # the grown model trains
    assert model.wte.weight.grad[tok.special_tokens[END]].abs().sum() > 0
    with pytest.raises(ValueError, match="below the model's"):
        grow_vocab(model, base.vocab_size)
