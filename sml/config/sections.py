"""The sections of ``params.yaml``: one frozen dataclass each, its fields' types and allowed ranges.

``field(metadata=limits(...))`` gives a field's bounds or pattern; ``Literal[...]`` its
choices. ``sml/config/reading.py`` reads the file and checks every value against these.
"""

import dataclasses
import typing
from typing import Any, Literal

from sml.run.errors import SMLError


class ParamsError(SMLError):
    """``params.yaml`` is wrong: a key, a value, the file. One line, whatever the file holds."""

    def __init__(self, message: str):
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))  # a line break in a key


def limits(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, pattern: str | None = None, hint: str = "") -> dict:
    """Field metadata: numeric bounds (closed unless ``*_open``) or a regex a string must match."""
    return {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "pattern": pattern, "hint": hint}


def same_as(section: type, name: str) -> Any:
    """A field with the bounds of ``section``'s field ``name``: one place for them."""
    return dataclasses.field(metadata=section.__dataclass_fields__[name].metadata)


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """One file of the corpus: where it is, its checksum, and how its documents are stored."""

    url: str = dataclasses.field(metadata=limits(pattern=r".+", hint="an http(s) URL or a path"))
    sha256: str = dataclasses.field(metadata=limits(
        pattern=r"[0-9a-f]{64}|", hint='64 lowercase hex digits, or "" to download it and print its sha256'))
    format: Literal["text", "jsonl"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the corpus comes from and how it is split (stages ``download`` and ``encode``)."""

    sources: tuple[SourceConfig, ...]
    val_sources: tuple[SourceConfig, ...]
    val_fraction: float = dataclasses.field(metadata=limits(0.0, 1.0, lo_open=True, hi_open=True))
    text_field: str = dataclasses.field(metadata=limits(pattern=r".+", hint="the key of the text in each JSON line"))
    separator: str
    special_in_text: Literal["raise", "allow", "text"]

    def __post_init__(self):
        if not self.sources:
            _fail("data.sources", [], "a list of at least one source (url, sha256, format)")
        seen: dict[str, str] = {}  # a file twice would be joined twice, and val's tail would sit in train too
        for key, sources in (("data.sources", self.sources), ("data.val_sources", self.val_sources)):
            for i, s in enumerate(sources):
                for same in (s.url, s.sha256 or None):
                    if same in seen:
                        _fail(f"{key}[{i}]", s.url, f"another file than {seen[same]} (the same url or sha256):"
                              " give each file once")
                    if same:
                        seen[same] = f"{key}[{i}]"


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """The BPE tokenizer to train (stage ``train_bpe``)."""

    vocab_size: int = dataclasses.field(metadata=limits(  # the floor: in __post_init__, with special_tokens
        None, 1 << 20, hint="256 bytes + 1 per special token + at least 1 merge, and <= 1048576"))
    pattern: Literal["gpt2", "gpt4"]
    special_tokens: tuple[str, ...]
    train_bytes: int = dataclasses.field(metadata=limits(1, 1 << 50))

    def __post_init__(self):
        for i, s in enumerate(self.special_tokens):
            if not s or "\n" in s or "\r" in s:
                _fail(f"tokenizer.special_tokens[{i}]", s, "a non-empty string without newlines")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            _fail("tokenizer.special_tokens", list(self.special_tokens), "a list without duplicates")
        floor = 256 + (n := len(self.special_tokens)) + 1
        if self.vocab_size < floor:
            _fail("tokenizer.vocab_size", self.vocab_size, f"an integer >= {floor} and <= {1 << 20}"
                  f" (256 bytes + {n} special token{'' if n == 1 else 's'} + at least 1 merge)")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The GPT's shape and variants (stage ``train``; later ``evaluate`` and ``sample``)."""

    n_layer: int = dataclasses.field(metadata=limits(1, 256))
    n_head: int = dataclasses.field(metadata=limits(1, 256))
    n_embd: int = dataclasses.field(metadata=limits(8, 65536))
    block_size: int = dataclasses.field(metadata=limits(2, 1 << 20))
    dropout: float = dataclasses.field(metadata=limits(0.0, 1.0, hi_open=True))
    bias: bool
    positions: Literal["learned", "sinusoidal", "rope"]
    norm: Literal["layernorm", "rmsnorm"]
    mlp: Literal["gelu", "gelu_tanh", "swiglu", "relu2"]
    tie_weights: bool
    attention: Literal["sdpa", "manual"]
    # The dials added later have defaults (today's model): a model.json written before them still loads.
    n_kv_head: int = dataclasses.field(default=0, metadata=limits(0, 256))  # 0: n_head
    rope_theta: float = dataclasses.field(default=10000.0, metadata=limits(1.0, 1e12, lo_open=True))
    mlp_hidden: int = dataclasses.field(default=0, metadata=limits(0, 1 << 20))  # 0: the mlp's own rule
    norm_eps: float = dataclasses.field(default=0.0, metadata=limits(0.0, 1.0))  # 0: each norm's default
    qk_norm: bool = False

    def __post_init__(self):
        if self.n_embd % self.n_head:
            _fail("model.n_embd", self.n_embd, f"a multiple of model.n_head ({self.n_head})")
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            _fail("model.n_embd", self.n_embd, "such that n_embd / n_head is even (rope rotates pairs)")
        if self.n_kv_head and self.n_head % self.n_kv_head:
            _fail("model.n_kv_head", self.n_kv_head, f"a divisor of model.n_head ({self.n_head}), or 0 for n_head")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The optimization run (stage ``train``)."""

    device: Literal["auto", "cpu", "cuda", "mps"]
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    compile: Literal["auto", True, False]
    deterministic: bool
    nproc: int = dataclasses.field(metadata=limits(1, 1024))
    threads: int = dataclasses.field(metadata=limits(0, 4096))
    seed: int = dataclasses.field(metadata=limits(0, 2**63 - 1))
    batch_size: int = dataclasses.field(metadata=limits(1, 1 << 20))
    grad_accum: int = dataclasses.field(metadata=limits(1, 1 << 16))
    max_iters: int = dataclasses.field(metadata=limits(1, 1 << 40))
    time_budget_s: float = dataclasses.field(metadata=limits(0.0, 1e9))
    optimizer: Literal["adamw", "muon"]
    lr: float = dataclasses.field(metadata=limits(0.0, 10.0, lo_open=True))
    muon_lr: float = dataclasses.field(metadata=limits(0.0, 10.0, lo_open=True))
    min_lr: float = dataclasses.field(metadata=limits(0.0, 10.0))
    warmup_iters: int = dataclasses.field(metadata=limits(0, 1 << 40))
    schedule: Literal["cosine", "wsd"]
    decay_fraction: float = dataclasses.field(metadata=limits(0.0, 1.0, lo_open=True))
    weight_decay: float = dataclasses.field(metadata=limits(0.0, 10.0))
    beta1: float = dataclasses.field(metadata=limits(0.0, 1.0, hi_open=True))
    beta2: float = dataclasses.field(metadata=limits(0.0, 1.0, hi_open=True))
    grad_clip: float = dataclasses.field(metadata=limits(0.0, None))
    eval_interval: int = dataclasses.field(metadata=limits(1, 1 << 40))
    eval_iters: int = dataclasses.field(metadata=limits(1, 1 << 20))
    log_interval: int = dataclasses.field(metadata=limits(1, 1 << 40))
    checkpoint_interval: int = dataclasses.field(metadata=limits(1, 1 << 40))
    patience: int = dataclasses.field(metadata=limits(0, 1 << 20))

    def __post_init__(self):
        if self.min_lr > self.lr:
            _fail("train.min_lr", self.min_lr, f"a number <= train.lr ({self.lr})")
        if self.warmup_iters > self.max_iters:
            _fail("train.warmup_iters", self.warmup_iters, f"<= train.max_iters ({self.max_iters})")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """Loss over whole splits, and measures of generated text (stage ``evaluate``)."""

    device: Literal["auto", "cpu", "cuda", "mps"]
    batch_size: int = dataclasses.field(metadata=limits(1, 1 << 16))
    max_tokens: int = dataclasses.field(metadata=limits(1, 1 << 40))
    prompts: tuple[str, ...]
    max_new_tokens: int = dataclasses.field(metadata=limits(1, 1 << 20))
    temperature: float = dataclasses.field(metadata=limits(0.0, 100.0))
    seed: int = dataclasses.field(metadata=limits(0, 2**63 - 1))


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """Text generation (stage ``sample``, and ``python -m stages.sample --prompt ...``)."""

    device: Literal["auto", "cpu", "cuda", "mps"]
    prompts: tuple[str, ...]
    max_new_tokens: int = dataclasses.field(metadata=limits(1, 1 << 20))
    temperature: float = dataclasses.field(metadata=limits(0.0, 100.0))
    top_k: int = dataclasses.field(metadata=limits(0, 1 << 24))
    top_p: float = dataclasses.field(metadata=limits(0.0, 1.0, lo_open=True))
    seed: int = dataclasses.field(metadata=limits(0, 2**63 - 1))


@dataclasses.dataclass(frozen=True)
class PlotConfig:
    """Figures under artifacts/plots/ (stage ``plot``)."""

    sentence: str = dataclasses.field(metadata=limits(pattern=r"(?s).+", hint="a non-empty sentence"))
    layer: int = dataclasses.field(metadata=limits(0, 255))


@dataclasses.dataclass(frozen=True)
class ConversationSourceConfig:
    """One file of conversations: where it is, its checksum, and how its conversations are stored."""

    url: str = same_as(SourceConfig, "url")
    sha256: str = same_as(SourceConfig, "sha256")
    format: Literal["jsonl", "play", "tinystories_instruct"]


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning the trained model on conversations (stages ``conversations`` and ``finetune``).

    The optimization settings not named here (device, dtype, optimizer, weight decay, betas,
    clipping, schedule, seed...) are ``train``'s."""

    sources: tuple[ConversationSourceConfig, ...]
    val_sources: tuple[ConversationSourceConfig, ...]
    val_fraction: float = same_as(DataConfig, "val_fraction")
    batch_size: int = same_as(TrainConfig, "batch_size")
    max_iters: int = same_as(TrainConfig, "max_iters")
    time_budget_s: float = same_as(TrainConfig, "time_budget_s")
    lr: float = same_as(TrainConfig, "lr")
    min_lr: float = same_as(TrainConfig, "min_lr")
    warmup_iters: int = same_as(TrainConfig, "warmup_iters")
    eval_interval: int = same_as(TrainConfig, "eval_interval")
    eval_iters: int = same_as(TrainConfig, "eval_iters")
    log_interval: int = same_as(TrainConfig, "log_interval")
    checkpoint_interval: int = same_as(TrainConfig, "checkpoint_interval")
    patience: int = same_as(TrainConfig, "patience")

    def __post_init__(self):
        if not self.sources:
            _fail("finetune.sources", [], "a list of at least one source (url, sha256, format)")
        if self.min_lr > self.lr:
            _fail("finetune.min_lr", self.min_lr, f"a number <= finetune.lr ({self.lr})")
        if self.warmup_iters > self.max_iters:
            _fail("finetune.warmup_iters", self.warmup_iters, f"<= finetune.max_iters ({self.max_iters})")

    def train_config(self, train: TrainConfig) -> TrainConfig:
        """The run fine-tuning is: ``train``'s settings with this section's in their place."""
        own = {f.name for f in dataclasses.fields(TrainConfig)} & {f.name for f in dataclasses.fields(self)}
        return dataclasses.replace(train, **{name: getattr(self, name) for name in own})


@dataclasses.dataclass(frozen=True)
class ChatConfig:
    """Talking to the fine-tuned model (``python -m stages.chat``, stage ``evaluate_chat``)."""

    device: Literal["auto", "cpu", "cuda", "mps"]
    system: str
    max_new_tokens: int = same_as(SampleConfig, "max_new_tokens")
    temperature: float = same_as(SampleConfig, "temperature")
    top_k: int = same_as(SampleConfig, "top_k")
    top_p: float = same_as(SampleConfig, "top_p")
    seed: int = same_as(SampleConfig, "seed")
    eval_conversations: int = dataclasses.field(metadata=limits(0, 1 << 20))


Impl = Literal["reference", "mine"]


@dataclasses.dataclass(frozen=True)
class ImplConfig:
    """Whose code runs each part: SML's (``reference``) or the learner's ``mine/<part>.py``
    (``mine``; ``sml/learn/mine.py`` grades and loads it). LEARN.md, "Into the pipeline"."""

    micrograd: Impl  # python -m stages.micrograd (not a DVC stage)
    bpe: Impl
    embeddings: Impl
    attention: Impl
    heads: Impl
    layernorm: Impl
    mlp: Impl
    block: Impl
    training: Impl
    sampling: Impl
    chat: Impl


@dataclasses.dataclass(frozen=True)
class Params:
    """All of ``params.yaml``, one attribute per section."""

    data: DataConfig
    tokenizer: TokenizerConfig
    model: ModelConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    sample: SampleConfig
    plot: PlotConfig
    finetune: FinetuneConfig
    chat: ChatConfig
    impl: ImplConfig

    def __post_init__(self):
        if self.impl.layernorm == "mine" and self.model.norm != "layernorm":
            _fail("impl.layernorm", "mine", f"'reference' with model.norm = {self.model.norm!r}"
                  " (mine/layernorm.py is a layer norm: set model.norm to layernorm to train with it)")
        if self.impl.mlp == "mine" and self.model.mlp != "gelu":
            _fail("impl.mlp", "mine", f"'reference' with model.mlp = {self.model.mlp!r}"
                  " (mine/mlp.py is the GELU MLP: set model.mlp to gelu to train with it)")
        specials = self.tokenizer.special_tokens
        if self.data.separator and self.data.separator not in specials:
            _fail("data.separator", self.data.separator, f'"" or one of tokenizer.special_tokens {list(specials)}'
                  " (so that it becomes one token)")


def _yaml(value: Any) -> str:
    """A choice as it is written in params.yaml: 'gpt2', true, false."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _fail(key: str, value: Any, expected: str, verb: str = "") -> typing.NoReturn:
    try:
        shown = repr(value)
    except ValueError:  # an int of over 4300 digits (YAML's 0x... or base-60 1:30:00 can make one)
        shown = "(a huge number)"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if verb:
        raise ParamsError(f"{key} {verb} (value {shown}): {expected}")
    raise ParamsError(f"{key} = {shown}: must be {expected}")
