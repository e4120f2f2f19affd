"""The evaluate_chat stage's work: the fine-tuned model on held-out conversations.

Two kinds of figure: the loss over the replies (what fine-tuning lowers), and how the model
replies when asked (does it stop; does it do what was asked), since a lower loss alone does
not say that a model answers.
"""

import math
import re
import sys
from pathlib import Path

import torch

from sml.chat import END, IGNORE, Chat, grow_vocab, inputs_and_targets, render
from sml.config import ChatConfig
from sml.data.conversations import parse_conversation, required_words
from sml.learn.mine import Mine
from sml.run.checkpoint import load_model
from sml.run.device import pick_runtime
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer


def evaluate_chat(model_dir: Path, conversations: Path, cfg: ChatConfig, base: tuple[Path, Path] | None = None,
                  out=None, mine: Mine | None = None) -> dict:
    """The fine-tuned model in ``model_dir`` on the held-out conversations in ``conversations``
    (val.jsonl): returns the metrics as a dict.

    - The loss over the replies: each conversation scored alone from its start (its first
      ``block_size + 1`` ids), the mean over the learned targets in nats/token, and in bits per
      character of the replies' text.
    - How it replies, on the first ``cfg.eval_conversations``: the conversation up to its last
      reply is the prompt, the model answers greedily; the share of replies that end with
      ``<|end|>`` (not cut by ``cfg.max_new_tokens`` or the context), and, where the request has
      a ``Words:`` line (TinyStories-Instruct), the share of the required words the reply uses.

    ``base``: the trained model's directory and tokenizer, scored the same way under ``"base"``
    (its vocabulary grown as fine-tuning starts): what fine-tuning changed. ``mine``: the
    learner's parts; with ``impl.chat: mine`` their ``render`` and ``inputs_and_targets`` make
    the scored targets.
    """
    out = sys.stdout if out is None else out
    runtime = pick_runtime(cfg.device, "float32", compile=False, key="chat")
    tok = Tokenizer.load(model_dir / "tokenizer.json")
    try:
        lines = conversations.read_bytes().splitlines()
    except FileNotFoundError:
        raise SMLError(f"{conversations}: not found: run the conversations stage (dvc repro conversations)") from None
    talks = [parse_conversation(line, f"{conversations} line {n:,}") for n, line in enumerate(lines, start=1)]
    models = {"fine-tuned": load_model(model_dir, model_dir / "tokenizer.json", runtime.device, mine)}
    if base is not None:
        models["base"] = load_model(*base, runtime.device, mine)
        grow_vocab(models["base"], tok.vocab_size)
    metrics: dict = {}
    for name, model in models.items():
        m = score(model.eval(), tok, talks, cfg, runtime.device, mine, out, name)
        if not m["learned_tokens"]:
            raise SMLError(f"{conversations}: no reply to score: rerun the conversations stage")
        metrics |= m if name == "fine-tuned" else {"base": m}
    return metrics


@torch.inference_mode()
def score(model, tok: Tokenizer, talks: list, cfg: ChatConfig, device, mine: Mine | None, out, name: str) -> dict:
    """One model's figures on ``talks`` (see ``evaluate_chat``), each printed as it is known."""
    render_fn = mine.render if mine is not None and mine.render else render
    targets_fn = mine.inputs_and_targets if mine is not None and mine.inputs_and_targets else inputs_and_targets
    end, block = tok.special_tokens[END], model.cfg.block_size
    nats, learned, chars, cut = 0.0, 0, 0, 0
    for talk in talks:
        ids, learn = render_fn(talk, tok)
        cut += len(ids) > block + 1
        x, y = targets_fn(list(ids[: block + 1]), list(learn[: block + 1]))
        n = int((y != IGNORE).sum())
        if n:
            nats += model(x[None].to(device), y[None].to(device))[1].item() * n
            learned += n
            chars += len(tok.decode([i for i in y[y != IGNORE].tolist() if i != end]))
    metrics: dict = {"val_loss": nats / max(learned, 1), "val_bits_per_char": nats / max(chars, 1) / math.log(2),
                     "conversations_scored": len(talks), "learned_tokens": learned}
    print(f"evaluate_chat: {name}: {len(talks):,} held-out conversations ({cut:,} cut to the context of {block:,}"
          f" tokens): {metrics['val_loss']:.4f} nats/token over the replies' {learned:,} tokens,"
          f" {metrics['val_bits_per_char']:.4f} bits/char", file=out, flush=True)
    ended, asked, used, lengths, too_long = 0, 0, 0.0, [], 0
    asking = [t[: max(i for i, m in enumerate(t) if m.role == "assistant")] for t in talks[: cfg.eval_conversations]]
    for history in (t for t in asking if t and t[-1].role == "user"):
        chat = Chat(model, tok)
        chat.messages = list(history[:-1])
        try:
            reply = list(chat.reply(history[-1].content, cfg.max_new_tokens, temperature=0.0))
        except ValueError:  # the request alone leaves no room for a reply in the context
            too_long += 1
            continue
        lengths.append(len(reply))
        ended += chat.ended  # stopped by <|end|>, not by max_new_tokens or the context
        words = required_words(history[-1].content)
        if words:
            asked += 1
            used += words_used(tok.decode(reply), words)
        if len(lengths) <= 2:
            print(f"evaluate_chat: {name}: {history[-1].content[:50]!r} -> {tok.decode(reply)[:80]!r}", file=out)
    replies = len(lengths)
    metrics |= {"replies": replies, "ends_with_end": ended / replies if replies else None,
                "mean_reply_tokens": sum(lengths) / replies if replies else None,
                "words_asked": asked, "words_used": used / asked if asked else None, "too_long_to_ask": too_long}
    if replies:
        print(f"evaluate_chat: {name}: {replies} greedy replies ({too_long} requests too long for the context left"
              f" out): {metrics['ends_with_end']:.0%} end with <|end|> (mean {metrics['mean_reply_tokens']:.1f}"
              " tokens)" + (f"; {metrics['words_used']:.0%} of the required words used ({asked} requests)"
                            if asked else ""), file=out, flush=True)
    return metrics


def words_used(text: str, words: list[str]) -> float:
    """The share of ``words`` that ``text`` uses: where a word of it starts with one, whatever the case.

    >>> words_used("Lily helped. The MUD was fun. A whelp.", ["help", "mud", "bossy"])  # not bossy, not whelp
    0.6666666666666666
    """
    return sum(bool(re.search(r"\b" + re.escape(w), text, re.IGNORECASE)) for w in words) / len(words)
