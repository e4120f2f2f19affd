"""Pipeline stages: one typer command per ``dvc.yaml`` stage, each a thin adapter.

A stage reads its section of ``params.yaml`` (through ``sml.config``), calls the ``sml``
library, and writes its declared outputs. Logic lives in ``sml/``, never here.
"""

import sys


def _interrupted_quietly(kind, value, tb):
    """Ctrl-C before a stage's own handling starts (while Python imports torch): one line, no
    traceback; Python then ends by SIGINT, as an interrupted program should (exit 130)."""
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
    else:
        sys.__excepthook__(kind, value, tb)


sys.excepthook = _interrupted_quietly
