"""Typed, validated parameters: ``params.yaml`` turned into config objects, in one place.

Each section of ``params.yaml`` (``data``, ``tokenizer``, ...) is a frozen dataclass below.
Its fields say the type; ``field(metadata=...)`` adds the allowed range or choices. Parsing
checks everything before any stage does any work, and a bad value fails with one line that
names the file, the key, the value, and what is allowed::

    params.yaml: tokenizer.vocab_size = 100: must be an integer >= 258 and <= 1048576 (...)

Every key must be present in the file (no hidden defaults in code): DVC tracks the values in
``params.yaml``, so that file, and nothing else, has to say what a run used. Nothing else in
it is silently misread or makes a traceback: a key given twice, bytes that are not UTF-8 (a
UTF-8 byte-order mark is fine), broken YAML, ``.nan`` or ``.inf`` fail in one line too. YAML
is read as PyYAML and DVC read it (1.1): ``yes``/``no``/``on``/``off`` are true/false (quote
them to mean text), and ``1e-3``, a string to YAML 1.1 (no dot), is still a number here.

Adding a parameter: add a field to its section in ``sections.py``, the key to ``params.yaml``, and the key
to the ``params:`` list of each stage in ``dvc.yaml`` that reads it.
"""

from sml.config.reading import apply_preset, load_params, load_preset, parse_params, with_options
from sml.config.sections import (
    ChatConfig,
    ConversationSourceConfig,
    DataConfig,
    EvaluateConfig,
    FinetuneConfig,
    ImplConfig,
    ModelConfig,
    Params,
    ParamsError,
    PlotConfig,
    SampleConfig,
    SourceConfig,
    TokenizerConfig,
    TrainConfig,
    limits,
)

__all__ = ["ChatConfig", "ConversationSourceConfig", "DataConfig", "EvaluateConfig", "FinetuneConfig",
           "ImplConfig", "ModelConfig", "Params", "ParamsError", "PlotConfig", "SampleConfig", "SourceConfig",
           "TokenizerConfig", "TrainConfig", "apply_preset", "limits", "load_params", "load_preset", "parse_params",
           "with_options"]
