"""Broken on purpose: the logits are multiplied by the temperature instead of divided."""

from tests.solutions.sampling import pick as right_pick

EXPECT = "multiplied by the temperature"


def pick(logits, temperature, top_k, top_p, generator):
    if temperature == 0:
        return right_pick(logits, 0.0, top_k, top_p, generator)
    return right_pick(logits * temperature * temperature, temperature, top_k, top_p, generator)
