"""The machinery of running: what a real run needs around the textbook, and a learner can skip.

Errors and atomic writes (``errors``, ``atomic``); where and in what precision it runs
(``device``, ``distributed``, ``memory``); the training run around the loop of ``sml/train.py``
(``state``, ``trainer``, ``checkpoint``, ``resume``, ``budget``, ``progress``); what is
reported afterwards (``plots``, ``compare``).
"""
