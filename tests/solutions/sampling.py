"""A learner's correct pick, written from the stub's contract alone (for the grader's tests)."""

import torch


def pick(logits, temperature, top_k, top_p, generator):
    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if 0 < top_k < len(probs):
        kth = torch.topk(probs, top_k).values[-1]
        probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        mass_above = torch.cumsum(sorted_probs, dim=0) - sorted_probs
        sorted_probs[mass_above >= top_p] = 0.0  # the first one has mass 0 above it: it always stays
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))
