"""Broken on purpose: top-p keeps the ids whose running total (itself included) is within p."""

import torch

EXPECT = "one id too few"


def pick(logits, temperature, top_k, top_p, generator):
    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if 0 < top_k < len(probs):
        kth = torch.topk(probs, top_k).values[-1]
        probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        sorted_probs[torch.cumsum(sorted_probs, dim=0) > top_p] = 0.0  # drops the id that crosses p
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))
