"""Grading the learner's own parts against the reference: ``make grade`` (LEARN.md).

The learner writes the parts with the most to learn in ``mine/``, one file per part, from
stubs that state each function's contract. ``python -m sml.grading [PART ...]`` (what
``make grade`` runs) checks each part on small seeded inputs against the reference in
``sml/`` and prints a checklist: passes, to do (a stub not yet written), or what broke, in
words ("position 1 attends to position 3, which comes after it: the causal mask is
missing"), with the largest difference and where.

One module per part, in syllabus order; each holds the part's ``PART`` (its checks).
"""

from importlib import import_module

from sml.grading.core import Part, Result, grade

NAMES = ("micrograd", "bpe", "embeddings", "attention", "heads", "layernorm", "mlp", "block", "training",
         "sampling")


def parts() -> list[Part]:
    """Every part, in LEARN.md's order."""
    return [import_module(f"sml.grading.{name}").PART for name in NAMES]


__all__ = ["NAMES", "Part", "Result", "grade", "parts"]
