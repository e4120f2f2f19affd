"""Broken on purpose: backward recurses through _prev with no topological sort."""

from tests.solutions.broken import mutated

EXPECT = "topological order"

SORTED = """        topo, seen = [], set()

        def build(v):
            if v not in seen:
                seen.add(v)
                for child in v._prev:
                    build(child)
                topo.append(v)
        build(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward(v)
"""
RECURSIVE = """        self.grad = 1.0

        def visit(v):  # each value passes its gradient on as soon as it is reached
            v._backward(v)
            for child in v._prev:
                visit(child)
        visit(self)
"""
Value = mutated("micrograd.py", (SORTED, RECURSIVE)).Value
