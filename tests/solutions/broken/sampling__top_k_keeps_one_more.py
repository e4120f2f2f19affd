"""Broken on purpose: top-k keeps the k + 1 most likely ids."""

from tests.solutions.sampling import pick as right_pick

EXPECT = "keeps k + 1"


def pick(logits, temperature, top_k, top_p, generator):
    return right_pick(logits, temperature, top_k + 1 if top_k else 0, top_p, generator)
