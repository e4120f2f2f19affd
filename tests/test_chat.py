"""The chat template, its loss mask and the grown vocabulary (issue 28)."""

import dataclasses

import pytest
import torch

from sml.chat import (
    CHAT_TOKENS,
    END,
    IGNORE,
    Chat,
    Message,
    grow_vocab,
    inputs_and_targets,
    prompt,
    render,
    with_chat_tokens,
)
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


def chat_model(base, tok, block_size=128):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, block_size=block_size), base.vocab_size)
    grow_vocab(model, tok.vocab_size)
    return model.eval()


def greedy_until_end(model, tok, ids, n):
    """What a fresh, uncached greedy sampler writes after ``ids``, cut at the end token."""
    from sml.generate import generate

    out = []
    for i in generate(model, ids, n, temperature=0.0, use_cache=False):
        if i == tok.special_tokens[END]:
            break
        out.append(i)
    return out


def test_a_chat_reuses_its_cache_across_turns_and_writes_what_a_fresh_sampler_would(base, tok):
    model = chat_model(base, tok)
    fed = []
    model.register_forward_pre_hook(lambda m, args, kwargs: fed.append(args[0].shape[1]), with_kwargs=True)
    talk = Chat(model, tok, system="Be brief.")
    first = list(talk.reply("Shall I compare thee?", max_new_tokens=12))
    asked = prompt([Message("system", "Be brief."), Message("user", "Shall I compare thee?")], tok)
    assert first == greedy_until_end(model, tok, asked, 12)
    fed.clear()
    second = list(talk.reply("And?", max_new_tokens=12))
    end, assistant = tok.special_tokens[END], tok.special_tokens["<|assistant|>"]
    new = [end, *render([Message("user", "And?")], tok)[0], assistant]
    assert fed[0] == len(new)  # the second turn reads its own tokens only, not the conversation again
    assert second == greedy_until_end(model, tok, asked + first + new, 12)
    assert [m.role for m in talk.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert talk.messages[-1].content == tok.decode(second)


def test_a_full_context_drops_the_oldest_turns_and_keeps_the_system_message(base, tok):
    model = chat_model(base, tok, block_size=96)
    talk = Chat(model, tok, system="Be brief.")
    for i in range(6):
        list(talk.reply(f"Question number {i}, if you please?", max_new_tokens=8))
    assert talk.dropped > 0 and talk.messages[0] == Message("system", "Be brief.")
    assert talk.messages[-2] == Message("user", "Question number 5, if you please?")
    assert len(talk.read) <= 96
    with pytest.raises(ValueError, match="leaves less than 8 for the reply in the context of 96"):
        list(talk.reply("word " * 60, max_new_tokens=8))
    assert talk.messages[-2].content == "Question number 5, if you please?"  # nothing lost
    talk.reset()
    assert talk.messages == [Message("system", "Be brief.")] and talk.read == [] and talk.dropped == 0


def test_a_reply_cut_short_is_still_the_assistants_turn(base, tok):
    talk = Chat(chat_model(base, tok), tok)
    stream = talk.reply("Hello?", max_new_tokens=20)
    taken = [next(stream), next(stream)]
    stream.close()
    assert [m.role for m in talk.messages] == ["user", "assistant"]
    assert talk.messages[-1].content == tok.decode(taken)
    assert talk.read[-2:] == taken  # the model read what the user saw
    asked = talk.read + [tok.special_tokens[END], *render([Message("user", "Again?")], tok)[0],
                         tok.special_tokens["<|assistant|>"]]
    assert list(talk.reply("Again?", max_new_tokens=5)) == greedy_until_end(talk.model, tok, asked, 5)


def test_a_reply_allowed_more_tokens_than_the_context_holds_stops_at_its_end(base, tok):
    """max_new_tokens past the context (the REPL's 200 on make quick's 128): the turn still gets
    half the context for its reply, and the reply stops where the context ends."""
    model = chat_model(base, tok, block_size=48)
    talk = Chat(model, tok)
    asked = prompt([Message("user", "Hi?")], tok)
    reply = list(talk.reply("Hi?", max_new_tokens=500))
    assert talk.ended or len(asked) + len(reply) == 48
    assert len(talk.read) <= 48
    for _ in range(3):  # the next turns drop the old ones to make room, never past the context
        list(talk.reply("And then?", max_new_tokens=500))
        assert len(talk.read) <= 48
    assert talk.dropped > 0
