"""Chat: a conversation as the token ids a model reads, and which of them it learns.

A base model continues text. A chat model has learned a template: each message wrapped in
special tokens that say who speaks and where the message ends,

    <|system|>You write short stories.<|end|><|user|>A cat story.<|end|><|assistant|>Once...<|end|>

To ask for a reply, the prompt is the conversation so far followed by ``<|assistant|>``;
the model writes the reply and ends it with ``<|end|>``, which is where sampling stops.

**The loss mask.** Fine-tuning learns the assistant's tokens only: its words and its
``<|end|>`` (so it learns to stop), never the system's or the user's (the model is not
meant to write those) nor the role tokens (the template puts them there). ``render``
returns, beside the ids, one flag per id: is this token one the model learns to predict?
The model predicts id t + 1 from ids 0..t, so the flags of the *targets* (ids[1:]) are the
ones that count: ``inputs_and_targets`` makes that shift, and writes ``IGNORE`` (-100) for
a target not learned. The model's loss, ``F.cross_entropy``, skips those: its mean is over
the learned targets only (what -100 means to PyTorch's ``ignore_index``).

**New tokens, no new BPE.** ``with_chat_tokens`` appends the four special tokens to a
trained tokenizer: new ids after the old ones, the merges unchanged. ``grow_vocab`` gives
the model's embedding (and an untied head) as many new rows, each the mean of the old ones:
a new token starts as an average token, not as noise that the first steps must undo.

Content is encoded with special tokens as plain text: a user who types ``<|end|>`` does not
end their message early.

**Talking.** ``Chat`` keeps a conversation and the KV cache of the ids the model has read:
each turn feeds only its new ids (the end of the last reply, the user's message, then
``<|assistant|>``) and samples until ``<|end|>``. When a turn would overflow the context, the
oldest messages after the system's are dropped and the cache is refilled.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from sml.batches import IGNORE
from sml.kvcache import KVCache
from sml.run.device import small_ops
from sml.tokenizer import Tokenizer

ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
END = "<|end|>"
CHAT_TOKENS = (*ROLE_TOKENS.values(), END)


@dataclass(frozen=True)
class Message:
    role: str  # system, user or assistant
    content: str


def with_chat_tokens(tok: Tokenizer) -> Tokenizer:
    """``tok`` with the chat tokens it lacks appended as special tokens (ids after its own)."""
    specials = sorted(tok.special_tokens, key=tok.special_tokens.get)
    missing = [t for t in CHAT_TOKENS if t not in tok.special_tokens]
    return tok if not missing else Tokenizer(list(tok.merges), tok.pattern, specials + missing)


def render(messages: Sequence[Message], tok: Tokenizer) -> tuple[list[int], list[bool]]:
    """The template's ids for ``messages``, and for each id whether it is one the model learns
    (the assistant's content and its end token)."""
    ids: list[int] = []
    learn: list[bool] = []
    for m in messages:
        body = tok.encode(m.content, special="text") + [tok.special_tokens[END]]
        ids += [tok.special_tokens[ROLE_TOKENS[m.role]], *body]
        learn += [False] + [m.role == "assistant"] * len(body)
    return ids, learn


def prompt(messages: Sequence[Message], tok: Tokenizer) -> list[int]:
    """The ids that ask for the next reply: the conversation so far, then ``<|assistant|>``."""
    return render(messages, tok)[0] + [tok.special_tokens[ROLE_TOKENS["assistant"]]]


def inputs_and_targets(ids: list[int], learn: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (T,) and targets (T,) of one rendered conversation: the target of position t is
    ids[t + 1] where that id is learned, and ``IGNORE`` where it is not."""
    x = torch.tensor(ids[:-1], dtype=torch.long)
    y = torch.tensor(ids[1:], dtype=torch.long)
    return x, y.masked_fill(~torch.tensor(learn[1:]), IGNORE)


def grow_vocab(model: nn.Module, vocab_size: int) -> None:
    """Give ``model`` ``vocab_size`` ids: new embedding (and untied head) rows at the end, each
    the mean of the old rows. A tied head shares the grown embedding, as before."""
    embedding, head = model.wte.weight, model.lm_head.weight
    if vocab_size < embedding.size(0):
        raise ValueError(f"vocab_size {vocab_size} is below the model's {embedding.size(0)}")
    model.wte.weight = nn.Parameter(_rows(embedding, vocab_size))
    model.wte.num_embeddings = vocab_size
    model.lm_head.weight = model.wte.weight if head is embedding else nn.Parameter(_rows(head, vocab_size))
    model.lm_head.out_features = model.vocab_size = vocab_size


def _rows(weight: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``weight`` (V, C) with rows added up to ``vocab_size``, each the mean of the old rows."""
    extra = weight.detach().mean(dim=0, keepdim=True).expand(vocab_size - weight.size(0), -1)
    return torch.cat([weight.detach(), extra])


class Chat:
    """A conversation with a model, turn by turn: the messages so far, and the KV cache of the ids
    the model has read, kept from one turn to the next (a new turn costs its own tokens only).

    ``reply`` streams the assistant's ids until it writes ``<|end|>`` (``ended`` says it did), or
    stops at ``max_new_tokens`` or the end of the context. When a turn would leave too little
    room for its reply (``max_new_tokens``, or half the context if that is less), the oldest turns
    after the system message are dropped, the cache is refilled, and ``dropped`` counts them.
    """

    def __init__(self, model: nn.Module, tok: Tokenizer, system: str = ""):
        self.model, self.tok = model, tok
        self.system = [Message("system", system)] if system else []
        self.messages = list(self.system)
        self.cache = KVCache(model, 1, next(model.parameters()).device)
        self.read: list[int] = []  # the ids in the cache, in order
        self.dropped = 0  # messages dropped (the oldest after the system's) to fit the context
        self.ended = False  # whether the last reply ended with <|end|>

    def reply(self, text: str, max_new_tokens: int = 200, temperature: float = 0.0, top_k: int = 0,
              top_p: float = 1.0, seed: int = 0) -> Iterator[int]:
        """Add the user's ``text``; yield the reply's ids as they come (not its end token)."""
        block_size = self.model.cfg.block_size
        messages = [*self.messages, Message("user", text)]
        ask = [self.tok.special_tokens[ROLE_TOKENS["assistant"]]]
        ids = (self.read + [self.tok.special_tokens[END]] + render(messages[-1:], self.tok)[0] + ask
               if self.read else prompt(messages, self.tok))  # the reply's own ids, not its text again
        dropped, room = 0, min(max_new_tokens, block_size // 2)  # the least room a reply gets
        while len(ids) + room > block_size and len(messages) > len(self.system) + 1:
            del messages[len(self.system)]  # the oldest turn goes: positions move, the cache is refilled
            dropped += 1
            ids = prompt(messages, self.tok)
        if len(ids) + room > block_size:  # nothing changed: the conversation is as it was
            raise ValueError(f"this message takes {len(ids)} tokens, which leaves less than {room} for the reply"
                             f" in the context of {block_size}")
        self.messages, self.dropped, self.ended = messages, self.dropped + dropped, False
        generator = torch.Generator().manual_seed(seed)
        end, words = self.tok.special_tokens[END], []
        self.model.eval()
        try:
            with torch.inference_mode():
                if not (self.read and ids[: len(self.read)] == self.read):  # not a continuation: read it all
                    self.cache.reset()
                    self.read = []
                logits = self._feed(ids[len(self.read):])
                for _ in range(min(max_new_tokens, block_size - len(ids))):
                    next_id = self.model.parts.pick(logits[0, -1], temperature, top_k, top_p, generator)
                    if next_id == end:
                        self.ended = True
                        break
                    words.append(next_id)
                    logits = self._feed([next_id])  # read before it is shown: a reply cut short was read whole
                    yield next_id
        finally:  # a reply cut short (the caller stopped reading) is still the assistant's turn
            self.messages.append(Message("assistant", self.tok.decode(words)))

    def reset(self) -> None:
        """Forget the conversation (the system message stays)."""
        self.messages, self.read, self.dropped = list(self.system), [], 0
        self.cache.reset()

    def _feed(self, ids: list[int]) -> torch.Tensor:
        """The model reads ``ids`` after the cached ones; the logits (1, T, V)."""
        with small_ops(self.cache.length.device):
            logits = self.model(torch.tensor([ids], device=self.cache.length.device), cache=self.cache)[0]
        self.read += ids
        return logits
