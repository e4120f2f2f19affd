"""Sampling: turning a trained GPT into text, one token at a time.

Each step feeds the context to the model, takes the logits of the last position, and picks
the next token from them:
- **greedy** (``temperature = 0``): always the most likely token (repetitive, but exact);
- **temperature**: divide the logits by T before the softmax (T < 1 sharpens, T > 1 flattens);
- **top-k**: only the k most likely tokens stay candidates;
- **top-p** (nucleus): only the smallest set of tokens whose probabilities add up to p.
A seed fixes the random draws, so the same prompt and settings give the same text.

**KV cache.** Without one, every step re-runs the model over the whole context: cost grows
with its length. With one (``kvcache.KVCache``), each layer keeps the keys and values of the
tokens seen so far, and a new token costs one position.

**Past the context length** the window slides: when the context is full, its older half is
dropped and the cache is rebuilt from the newer half (one forward pass, amortized over the
next block_size / 2 tokens). Uncached generation follows the same windows, so the two give
the same tokens.

Left out on purpose: beam search, batching several prompts, repetition penalties.
"""

import codecs
from collections.abc import Callable, Iterator

import torch

from sml.kvcache import KVCache
from sml.model import GPT
from sml.run.device import small_ops
from sml.tokenizer.tokenizer import replace_surrogates


def generate(model: GPT, prompt: list[int], max_new_tokens: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, seed: int = 0, use_cache: bool = True,
             pick: Callable | None = None) -> Iterator[int]:
    """Yield ``max_new_tokens`` new token ids continuing ``prompt`` (at most block_size ids).

    ``pick``: the rule that chooses each id (default: the model's ``parts.pick``, this module's
    ``pick`` unless ``impl.sampling: mine``), called as pick(logits (V,), temperature, top_k, top_p, generator).
    """
    pick = model.parts.pick if pick is None else pick
    block_size = model.cfg.block_size
    if not 0 < len(prompt) <= block_size:
        raise ValueError(f"prompt of {len(prompt)} tokens: need 1 to {block_size}")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)  # draws on the CPU: same text on any device
    tokens = list(prompt)
    start = 0  # where the current window begins in `tokens`
    cache = KVCache(model, 1, device) if use_cache else None
    model.eval()
    with torch.inference_mode():
        for i in range(max_new_tokens):
            refill = i == 0
            if len(tokens) - start == block_size:  # full: keep the newer half
                start, refill = len(tokens) - block_size // 2, True
            with small_ops(device):  # on a CPU: without oneDNN, whose setup outweighs one row's work
                if not use_cache:
                    logits = model(_tensor(tokens[start:], device))[0]
                elif refill:  # (re)fill the cache with the whole window
                    cache.reset()
                    logits = model(_tensor(tokens[start:], device), cache=cache)[0]
                else:
                    logits = model(_tensor(tokens[-1:], device), cache=cache)[0]
            next_id = pick(logits[0, -1], temperature, top_k, top_p, generator)
            tokens.append(next_id)
            yield next_id


def complete(model: GPT, tok, prompt: str, max_new_tokens: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, seed: int = 0,
             pick: Callable | None = None) -> tuple[Iterator[str], str]:
    """Continue the text ``prompt``: (an iterator of text pieces as they are generated, a note).

    The note says how the prompt was adapted (empty, or longer than the context), or is "".
    ``pick`` as for ``generate``.
    """
    ids, note = prompt_ids(tok, prompt, model.cfg.block_size)
    stream = TextStream(tok)

    def pieces() -> Iterator[str]:
        for token_id in generate(model, ids, max_new_tokens, temperature, top_k, top_p, seed, pick=pick):
            if text := stream.push(token_id):
                yield text
        if tail := stream.flush():
            yield tail

    return pieces(), note


def samples_markdown(model: GPT, tok, prompts: list[str], settings: dict, title: str,
                     pick: Callable | None = None) -> str:
    """A markdown page with one sample per prompt (seed + i for the i-th), and the settings."""
    shown = ", ".join(f"{k} {v}" for k, v in settings.items())
    parts = [f"# Samples\n\n{title}; {shown}.\n"]
    for i, prompt in enumerate(prompts):
        prompt = replace_surrogates(prompt)  # as the model reads it, and as UTF-8 can hold it
        pieces, note = complete(model, tok, prompt, **{**settings, "seed": settings["seed"] + i}, pick=pick)
        parts.append(f"## Prompt {i + 1}: {prompt!r}\n" + (f"\n_{note}_\n" if note else "")
                     + "\n```text\n" + prompt + "".join(pieces) + "\n```\n")
    return "\n".join(parts)


def pick(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
         generator: torch.Generator) -> int:
    """Choose the next id from one position's logits (V,).

    Top-k and top-p both keep the most likely tokens, so one ``topk`` (sorted, most likely
    first) finds the candidates of both, and the softmax and the draw run over those k
    instead of the whole vocabulary: a few small operations per token.

    >>> g = torch.Generator().manual_seed(0)
    >>> pick(torch.tensor([0.0, 3.0, 1.0]), 0.0, 0, 1.0, g)  # greedy
    1
    >>> pick(torch.tensor([0.0, 3.0, 1.0]), 1.0, 1, 1.0, g)  # top-1 leaves one candidate
    1
    """
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.float().cpu()  # the draw is on the CPU's generator: the same text on any device
    vocab = logits.numel()
    k = top_k if 0 < top_k < vocab else vocab
    if k == vocab and top_p >= 1.0:  # every token stays a candidate: no sort needed
        probs = torch.softmax(logits / temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))
    values, ids = logits.topk(k)  # (k,) each, most likely first
    probs = torch.softmax(values / temperature, dim=-1)
    if top_p < 1.0:
        before = probs.cumsum(0) - probs  # mass of the tokens ranked above each one
        probs = probs.masked_fill(before >= top_p, 0.0)  # the smallest set reaching top_p (at least one)
    return int(ids[torch.multinomial(probs, 1, generator=generator)])


def prompt_ids(tok, text: str, block_size: int, start_token: str = "<|endoftext|>") -> tuple[list[int], str]:
    """Encode a prompt for ``generate``; returns (ids, note) where note explains any change.

    An empty prompt starts from ``start_token``; a prompt longer than the context keeps its
    last ``block_size`` tokens.
    """
    ids = tok.encode(text, special="allow")
    if not ids:
        if start_token not in tok.special_tokens:
            raise ValueError(f"empty prompt, and the tokenizer has no {start_token} to start from")
        return [tok.special_tokens[start_token]], f"empty prompt: starting from {start_token}"
    if len(ids) > block_size:
        note = f"prompt of {len(ids)} tokens cut to its last {block_size} (the context length)"
        return ids[-block_size:], note
    return ids, ""


class TextStream:
    """Decode token ids to text as they come, never splitting a UTF-8 character.

    A token may end in the middle of a multi-byte character; the incremental decoder keeps
    those bytes until the character is complete.
    """

    def __init__(self, tok):
        self.tok = tok
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self.decoder.decode(self.tok.decode_bytes([token_id]))

    def flush(self) -> str:
        return self.decoder.decode(b"", final=True)


def _tensor(ids: list[int], device) -> torch.Tensor:
    return torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)

