"""The learner's parts in the real pipeline: ``impl.<part>: mine`` in params.yaml (LEARN.md).

For each part set to ``mine``, ``load_mine`` grades ``mine/<part>.py`` (``sml.grading``),
then loads its functions into one ``Mine``: the model (``GPT(cfg, vocab, mine)``) and the
sampler (``generate(..., pick=mine.pick)``) call a learner's function where it is not None,
and their own code where it is. A part not written yet stops the stage before any work; a
part that fails a check trains anyway, after a warning: seeing what a broken part does to
the loss is an experiment too.

Left out on purpose: micrograd, bpe and training (not switchable yet: the tokenizer and the
trainer run SML's code whatever ``mine/`` holds).
"""

import dataclasses
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from sml.config import ImplConfig
from sml.errors import SMLError

MODEL_PARTS = ("embeddings", "attention", "heads", "layernorm", "mlp", "block")  # what the model calls
PARTS = (*MODEL_PARTS, "sampling")


@dataclass(frozen=True)
class Mine:
    """The learner's functions, each None where the reference runs; ``sha256``: their files."""

    embed: Callable | None = None  # embeddings
    sinusoidal_table: Callable | None = None
    rope: Callable | None = None
    attention: Callable | None = None  # attention
    split_heads: Callable | None = None  # heads
    merge_heads: Callable | None = None
    layer_norm: Callable | None = None  # layernorm
    mlp: Callable | None = None  # mlp
    block: Callable | None = None  # block
    pick: Callable | None = None  # sampling
    sha256: dict[str, str] = dataclasses.field(default_factory=dict)  # part -> sha256 of mine/<part>.py

    def model_impl(self) -> dict[str, str]:
        """Whose code each model part runs, as model.json records it: {"attention": "mine", ...}."""
        return {part: "mine" if part in self.sha256 else "reference" for part in MODEL_PARTS}


def load_mine(impl: ImplConfig, root: Path = Path("."), parts: tuple[str, ...] = PARTS, out=None) -> Mine | None:
    """Grade and load ``root/mine/<part>.py`` for each of ``parts`` set to ``mine``; None if none is.

    Raises SMLError (one line) for a part not written yet; prints a warning for one that fails a check.
    """
    from sml.grading.core import grade, load  # the grader only when a part is the learner's

    out = sys.stderr if out is None else out
    chosen = [part for part in parts if getattr(impl, part) == "mine"]
    if not chosen:
        return None
    functions, sha256 = {}, {}
    for part in chosen:
        path = Path(root) / "mine" / f"{part}.py"
        result = grade(import_module(f"sml.grading.{part}").PART, path)
        if result.status == "todo":
            todo = ", ".join(f + "()" for f in result.todo) or "it"
            raise SMLError(f"params.yaml: impl.{part} = 'mine', but mine/{part}.py is not written yet"
                           f" (write {todo}; make grade PART={part})")
        if result.status == "fail":
            print(f"warning: mine/{part}.py fails a check, and trains anyway: {result.message}", file=out)
        module = load(path)
        functions |= {name: getattr(module, name) for name in result.part.functions}
        sha256[part] = hashlib.sha256(path.read_bytes()).hexdigest()
    return Mine(**functions, sha256=sha256)


def check_model_impl(recorded: dict | None, mine: Mine | None, model_dir: Path) -> None:
    """Refuse to run a model with other parts than it was trained with (model.json's ``impl``)."""
    recorded = recorded or {}  # a model.json from before impl: every part the reference's
    wanted = (mine or Mine()).model_impl()
    for part in MODEL_PARTS:
        trained = recorded.get(part, "reference")
        if trained != wanted[part]:
            raise SMLError(f"{model_dir} was trained with impl.{part} = {trained!r}, but params.yaml says"
                           f" {wanted[part]!r}: set it back, or retrain (dvc repro train)")
