"""Deliberately broken parts: each ``<part>__<mistake>.py`` makes one classic mistake, and its
``EXPECT`` holds the words the grader's message must contain (tests/test_grading.py)."""

import types
from pathlib import Path

SOLUTIONS = Path(__file__).resolve().parent.parent


def mutated(solution: str, *edits: tuple[str, str]) -> types.ModuleType:
    """A fresh copy of tests/solutions/<solution> with each (old, new) text replaced: one mistake."""
    source = (SOLUTIONS / solution).read_text(encoding="utf-8")
    for old, new in edits:
        if old not in source:
            raise ValueError(f"{solution} has no {old!r} to break")
        source = source.replace(old, new)
    module = types.ModuleType(f"broken_{Path(solution).stem}")
    exec(compile(source, str(SOLUTIONS / solution), "exec"), module.__dict__)
    return module
