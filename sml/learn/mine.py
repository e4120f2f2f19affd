"""The learner's parts in the real pipeline: ``impl.<part>: mine`` in params.yaml (LEARN.md).

For each part set to ``mine``, ``load_mine`` grades ``mine/<part>.py`` (``sml.learn``),
then loads its functions into one ``Mine``. Where they run:

- the model, training and sampling parts: ``sml.parts.parts_for(cfg, mine)`` is the record
  of ``sml/parts.py`` with the learner's functions (``Mine.replaced``) in place of SML's; the
  model (``GPT(cfg, vocab, parts)``), the training step and the sampler call every function
  through it;
- micrograd: ``python -m stages.micrograd`` builds its MLP from the learner's ``Value``;
- bpe: train_bpe learns the merges with ``learn_merges``, encode and sample run the
  tokenizer with ``encode_chunk`` and ``decode`` (``Tokenizer.use``).

A part not written yet stops the stage before any work; a part that fails a check runs
anyway, after a warning: seeing what a broken part does to the loss is an experiment too.
"""

import dataclasses
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from sml.config import ImplConfig
from sml.run.errors import SMLError

MODEL_PARTS = ("embeddings", "attention", "heads", "layernorm", "mlp", "block")  # what the model calls
PARTS = ("micrograd", "bpe", *MODEL_PARTS, "training", "sampling", "chat")  # syllabus order


@dataclass(frozen=True)
class Mine:
    """The learner's functions, each None where the reference runs; ``sha256``: their files."""

    Value: type | None = None  # micrograd
    learn_merges: Callable | None = None  # bpe
    encode_chunk: Callable | None = None
    decode: Callable | None = None
    embed: Callable | None = None  # embeddings
    sinusoidal_table: Callable | None = None
    rope: Callable | None = None
    attention: Callable | None = None  # attention
    split_heads: Callable | None = None  # heads
    merge_heads: Callable | None = None
    layer_norm: Callable | None = None  # layernorm
    mlp: Callable | None = None  # mlp
    block: Callable | None = None  # block
    get_batch: Callable | None = None  # training
    cross_entropy: Callable | None = None
    clip_grad_norm: Callable | None = None
    adamw_step: Callable | None = None
    lr_at: Callable | None = None
    pick: Callable | None = None  # sampling
    render: Callable | None = None  # chat
    inputs_and_targets: Callable | None = None
    sha256: dict[str, str] = dataclasses.field(default_factory=dict)  # part -> sha256 of mine/<part>.py
    files: dict[str, Path] = dataclasses.field(default_factory=dict)  # part -> mine/<part>.py
    graded: dict[str, str] = dataclasses.field(default_factory=dict)  # part -> "passes" or what fails

    def replaced(self) -> dict[str, Callable]:
        """The learner's functions that take a field of ``sml/parts.py``'s record, by field name."""
        handed_over = ("Value", "learn_merges", "encode_chunk", "decode", "render", "inputs_and_targets", "sha256",
                       "files", "graded")  # not fields of sml/parts.py's record
        return {f.name: fn for f in dataclasses.fields(self)
                if f.name not in handed_over and (fn := getattr(self, f.name)) is not None}

    def in_use(self) -> str:
        """'mine/attention.py is in use (impl.attention: mine) and fails a check: ...': what to look at first."""
        graded = {part: self.graded.get(part, "passes its checks") for part in self.sha256}
        return "; ".join(f"mine/{part}.py is in use (impl.{part}: mine) and {how}" for part, how in graded.items())

    def model_impl(self) -> dict[str, str]:
        """Whose code each model part runs, as model.json records it: {"attention": "mine", ...}."""
        return {part: "mine" if part in self.sha256 else "reference" for part in MODEL_PARTS}


def load_mine(impl: ImplConfig, root: Path = Path("."), parts: tuple[str, ...] = PARTS, out=None) -> Mine | None:
    """Grade and load ``root/mine/<part>.py`` for each of ``parts`` (those a stage runs) set to
    ``mine``; None if none is.

    Raises SMLError (one line) for a part not written yet; prints a warning for one that fails a check.
    """
    chosen = [part for part in parts if getattr(impl, part) == "mine"]
    if not chosen:
        return None
    from sml.learn.core import grade, load  # the grader (and torch) only when a part is the learner's

    out = sys.stderr if out is None else out
    functions, sha256, files, graded = {}, {}, {}, {}
    for part in chosen:
        path = Path(root) / "mine" / f"{part}.py"
        result = grade(import_module(f"sml.learn.{part}").PART, path)
        if result.status == "todo":
            todo = ", ".join(f + "()" for f in result.todo) or "it"
            raise SMLError(f"params.yaml: impl.{part} = 'mine', but mine/{part}.py is not written yet"
                           f" (write {todo}; make grade PART={part})")
        if result.status == "fail" and not result.runs:  # it would not train: it does not load, loops, exits
            raise SMLError(f"mine/{part}.py: {result.message}; fix it (make grade PART={part}) or set"
                           f" impl.{part} to reference")
        if result.status == "fail":
            print(f"warning: mine/{part}.py fails a check, and trains anyway: {result.message}", file=out)
        graded[part] = f"fails a check: {result.message}" if result.status == "fail" else "passes its checks"
        module = load(path)
        functions |= {name: getattr(module, name) for name in result.part.functions}
        sha256[part] = hashlib.sha256(path.read_bytes()).hexdigest()
        files[part] = path
    return Mine(**functions, sha256=sha256, files=files, graded=graded)


def check_model_impl(recorded: dict | None, mine: Mine | None, model_dir: Path) -> None:
    """Refuse to run a model trained with a learner's part without that part (model.json's ``impl``).

    A model with no learner code in it (trained with SML's parts, or imported) runs with any
    parts: a learner's correct part computes what SML's does.
    """
    recorded = recorded or {}  # a model.json from before impl: every part the reference's
    wanted = (mine or Mine()).model_impl()
    for part in MODEL_PARTS:
        if recorded.get(part, "reference") == "mine" and wanted[part] != "mine":
            raise SMLError(f"{model_dir} was trained with your mine/{part}.py (impl.{part}: mine) and is loaded"
                           f" with SML's {part}: set impl.{part}: mine in params.yaml (in code: load_model(...,"
                           f" mine=load_mine(load_params().impl))), or retrain with SML's (dvc repro train)")


GRADER = ("core.py", "mine.py")  # sml/learn/ files every graded part runs, besides its own checks


def manifest(impl: ImplConfig, root: Path = Path(".")) -> dict[str, dict]:
    """What each part runs, one small record per part (the ``parts`` stage writes each to a file).

    ``{"impl": "reference"}`` for SML's own; for the learner's, also the sha256 of their file and
    of the grader that checks it. A stage depends on the records of the parts it runs, not on
    ``mine/``: editing a stub no one runs changes no record, so no model is retrained for it.
    """
    records = {}
    for part in PARTS:
        if getattr(impl, part) != "mine":
            records[part] = {"part": part, "impl": "reference"}
            continue
        path = Path(root) / "mine" / f"{part}.py"
        if not path.is_file():
            raise SMLError(f"params.yaml: impl.{part} = 'mine', but {path} does not exist: copy it back"
                           f" (git checkout -- mine/{part}.py) or set impl.{part} to reference")
        grader = Path(__file__).parent
        digest = hashlib.sha256()
        for name in (*GRADER, f"{part}.py"):
            digest.update((grader / name).read_bytes())
        records[part] = {"part": part, "impl": "mine", "file": f"mine/{part}.py",
                         "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "grader_sha256": digest.hexdigest()}
    return records

