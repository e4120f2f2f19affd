"""Grading the learner's own parts against the reference: ``make grade`` (LEARN.md).

The learner writes the parts with the most to learn in ``mine/``, one file per part, from
stubs that state each function's contract. ``python -m sml.learn [PART ...]`` (what
``make grade`` runs) checks each part on small seeded inputs against the reference in
``sml/`` and prints a checklist: passes, to do (a stub not yet written), or what broke, in
words ("position 1 attends to position 3, which comes after it: the causal mask is
missing"), with the largest difference and where.

One module per part, in syllabus order; each holds the part's ``PART`` (its checks).
``core`` is the grader's machinery, ``mine`` loads graded parts into the pipeline
(``impl.<part>: mine``). This package's own import is free: torch comes with ``core``.
"""
