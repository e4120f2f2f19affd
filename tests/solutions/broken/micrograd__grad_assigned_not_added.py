"""Broken on purpose: each _backward assigns its gradient (=) instead of adding it (+=)."""

from tests.solutions.broken import mutated

EXPECT = "gradients must be added (+=), not assigned (=)"

Value = mutated("micrograd.py", (".grad += ", ".grad = ")).Value
