"""Broken on purpose: tanh's _backward adds its local derivative alone, not times out.grad."""

from tests.solutions.broken import mutated

EXPECT = "forgets to multiply by out.grad"

Value = mutated("micrograd.py", ("self.grad += (1 - t**2) * out.grad", "self.grad += 1 - t**2")).Value
