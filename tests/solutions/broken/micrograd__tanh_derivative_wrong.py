"""Broken on purpose: tanh's derivative uses the input, 1 - a^2, not 1 - tanh(a)^2."""

from tests.solutions.broken import mutated

EXPECT = "one minus the *output* squared"

Value = mutated("micrograd.py", ("self.grad += (1 - t**2) * out.grad",
                                 "self.grad += (1 - self.data**2) * out.grad")).Value
