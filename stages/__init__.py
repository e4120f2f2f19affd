"""Pipeline stages: one typer command per ``dvc.yaml`` stage, each a thin adapter.

A stage reads its section of ``params.yaml`` (through ``sml.config``), calls the ``sml``
library, and writes its declared outputs. Logic lives in ``sml/``, never here.
"""
