"""SML's weights as a Hugging Face model's, and back: which architecture, which names, which layouts.

Three Hugging Face architectures compute exactly what some SML variant computes
(``model.positions``, ``model.norm``, ``model.mlp`` in params.yaml):

    learned + layernorm + gelu | gelu_tanh  ->  GPT-2     (GPT2LMHeadModel)
    rope    + layernorm + gelu | gelu_tanh  ->  GPT-NeoX  (GPTNeoXForCausalLM)
    rope    + rmsnorm   + swiglu            ->  Llama     (LlamaForCausalLM)

Every other combination (sinusoidal positions, say) has none, and ``architecture`` says so
in one line. The same numbers sit in different places, and each transform below is one of:

- GPT-2 keeps its linear layers as ``Conv1D``, (in, out): the transpose of nn.Linear's (out, in).
- RoPE: SML rotates the channel pairs (0, 1), (2, 3), ... of each head; Hugging Face rotates
  (j, j + hs/2) ("rotate_half"). Moving, head by head, the even rows of the query and key
  weights to the first half and the odd rows to the second turns one into the other: the
  pairs meet the same angles, and an attention score, a dot product of q and k, does not
  change when both have their channels reordered the same way (``_halves``, ``_pairs``).
- GPT-NeoX packs q, k and v head by head (q0 k0 v0 q1 k1 v1 ...); SML packs q | k | v.
- Llama has q, k, v as three matrices, and SML's ``fc`` (gate | up) as gate_proj and up_proj.
- A tied head (``tie_weights``) is written once: Hugging Face ties it again on loading.
- Biases: GPT-2 and GPT-NeoX always have some (LayerNorm's, the MLP's). SML with ``bias:
  false`` writes zeros there, which computes the same; on import, biases that are all zero
  come back as ``bias: false``.

The dials travel as their Hugging Face keys: ``n_kv_head`` as num_key_value_heads (Llama),
``rope_theta``, ``mlp_hidden`` as n_inner / intermediate_size, ``norm_eps`` as the norm's eps.
Qwen2 is Llama with biases on q, k and v only: it imports as ``bias: true`` with zeros elsewhere.
Only what SML computes is accepted on import: a config that asks for something else (partial
rotary, parallel residuals, sliding windows) is refused with the key that says so, rather than
loaded into a model that computes something else; ``qk_norm`` and ``relu2`` have no
architecture here and are refused on export.
"""

import dataclasses
import math

import torch

from sml.config import ModelConfig
from sml.model import ROPE_BASE, swiglu_hidden
from sml.run.errors import SMLError

LAYERNORM_EPS = 1e-5  # nn.LayerNorm's default, which SML uses
RMSNORM_EPS = torch.finfo(torch.float32).eps  # nn.RMSNorm(eps=None) in float32
GELU_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_new"}  # SML's model.mlp -> Hugging Face's activation name
ACT_GELU = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
PREFIX = {"gpt2": "transformer.", "gpt_neox": "gpt_neox.", "llama": "model.", "qwen2": "model."}


def architecture(cfg: ModelConfig) -> str:
    """The Hugging Face ``model_type`` that computes what ``cfg`` does, or a one-line SMLError."""
    if cfg.qk_norm:
        raise SMLError("model.qk_norm = true: no architecture SML exports normalises q and k (Qwen3 and"
                       " OLMo 2 do; not yet here)")
    grouped = cfg.n_kv_head not in (0, cfg.n_head)
    if cfg.positions == "learned" and cfg.norm == "layernorm" and cfg.mlp in GELU_ACT and not grouped:
        return "gpt2"
    if cfg.positions == "rope" and cfg.norm == "layernorm" and cfg.mlp in GELU_ACT and not grouped:
        return "gpt_neox"
    if cfg.positions == "rope" and cfg.norm == "rmsnorm" and cfg.mlp == "swiglu":
        return "llama"
    raise SMLError(f"model.positions = {cfg.positions}, model.norm = {cfg.norm}, model.mlp = {cfg.mlp}"
                   + (f", model.n_kv_head = {cfg.n_kv_head}" if grouped else "") +
                   ": no Hugging Face architecture computes this combination (export knows learned +"
                   " layernorm + gelu -> GPT-2, rope + layernorm + gelu -> GPT-NeoX, rope + rmsnorm +"
                   " swiglu -> Llama, the only one with fewer key/value heads)")


def to_hf(cfg: ModelConfig, vocab_size: int, state: dict[str, torch.Tensor],
          bos_id: int | None = None, eos_id: int | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """SML weights ``state`` -> (Hugging Face config.json as a dict, its state dict).

    ``bos_id``/``eos_id``: the special token that starts and ends a document, if any.
    """
    kind = architecture(cfg)
    state = {k: v.detach().float().cpu() for k, v in state.items()}
    tensors = {PREFIX[kind] + k: v for k, v in EXPORT[kind](cfg, state).items()}
    if not cfg.tie_weights:
        tensors["lm_head.weight"] = state["lm_head.weight"]
    config = {"architectures": [ARCHITECTURES[kind]], "model_type": kind, "vocab_size": vocab_size,
              "tie_word_embeddings": cfg.tie_weights, "bos_token_id": bos_id, "eos_token_id": eos_id,
              "torch_dtype": "float32", "dtype": "float32", **CONFIG[kind](cfg)}
    return config, {k: v.contiguous() for k, v in tensors.items()}


# Buffers some checkpoints carry that hold no weights: GPT-2's causal masks, RoPE's frequencies.
IGNORED = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq", ".attention.bias", ".attention.masked_bias")


def from_hf(config: dict, tensors: dict[str, torch.Tensor]) -> tuple[ModelConfig, int, dict[str, torch.Tensor]]:
    """A Hugging Face config.json (dict) and its weights -> (SML ModelConfig, vocab size, SML state dict)."""
    kind = config.get("model_type")
    if kind not in IMPORT:
        raise SMLError(f"config.json: model_type = {kind!r}: SML imports {', '.join(IMPORT)}")
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method", "quantized")
        raise SMLError(f"config.json: quantization_config ({method}): SML imports float weights, not quantized ones")
    for name, t in tensors.items():  # before any conversion: an int tensor would turn into floats silently
        if not t.is_floating_point():
            raise SMLError(f"model.safetensors: tensor {name} holds {str(t.dtype).removeprefix('torch.')},"
                           " not floats: SML imports float weights")
    tensors = {k: v.float() for k, v in tensors.items()}
    prefix = PREFIX[kind]
    if not any(k.startswith(prefix) for k in tensors):  # the base model's own file (the hub's gpt2): no prefix
        tensors = {(k if k.startswith("lm_head.") else prefix + k): v for k, v in tensors.items()}
    reader = _Reader(tensors, prefix)
    try:
        cfg_fields, state = IMPORT[kind](config, reader)
    except (TypeError, ValueError, ZeroDivisionError, IndexError, RuntimeError) as e:  # a value of the wrong kind
        raise SMLError(f"config.json and model.safetensors do not describe one {kind} model"
                       f" ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    unused = sorted(k for k in set(tensors) - reader.used if not k.endswith(IGNORED))
    if unused:  # e.g. layers the config does not count: they would be dropped without a word
        raise SMLError(f"model.safetensors: {len(unused)} tensor(s) that config.json does not account for, such as"
                       f" {unused[0]}: check num_hidden_layers and the other sizes in config.json")
    vocab_size, n_embd = state["wte.weight"].shape
    if config.get("vocab_size", vocab_size) != vocab_size:
        raise SMLError(f"config.json: vocab_size = {config['vocab_size']!r}, but the embedding has"
                       f" {vocab_size:,} rows")
    head = tensors.get("lm_head.weight", tensors.get("embed_out.weight"))  # older GPT-NeoX: embed_out
    tied = head is None or torch.equal(head, state["wte.weight"])
    state["lm_head.weight"] = state["wte.weight"] if tied else head
    bias = any(bool(v.any()) for k, v in state.items() if k.endswith(".bias"))
    if not bias:
        state = {k: v for k, v in state.items() if not k.endswith(".bias")}
    cfg = checked_config(dict(n_embd=n_embd, dropout=0.0, bias=bias, tie_weights=tied, attention="sdpa",
                              **cfg_fields))
    for name, t in state.items():
        if not torch.isfinite(t).all():
            raise SMLError(f"model.safetensors: tensor {name} holds inf or nan: a model cannot run on it")
    return cfg, vocab_size, state


def checked_config(fields: dict) -> ModelConfig:
    """``ModelConfig`` from an imported config, with the ranges params.yaml's ``model:`` gets."""
    from sml.config.reading import _build
    from sml.config.sections import ParamsError

    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.default is not dataclasses.MISSING}
    try:
        return _build(ModelConfig, defaults | fields, prefix="model.")
    except ParamsError as e:
        raise SMLError(f"config.json gives {e}") from None


class _Reader:
    """Hugging Face tensors by name (without the model's prefix); a missing one is a one-line error."""

    def __init__(self, tensors: dict[str, torch.Tensor], prefix: str):
        self.tensors, self.prefix, self.used = tensors, prefix, {"lm_head.weight", "embed_out.weight"}

    def __call__(self, name: str, bias_rows: int | None = None) -> torch.Tensor:
        full = self.prefix + name
        if full in self.tensors:
            self.used.add(full)
            return self.tensors[full]
        if name.endswith(".bias") and bias_rows:  # a bias this model does not have: zeros compute the same
            return torch.zeros(bias_rows)
        raise SMLError(f"model.safetensors: no tensor {full}, which config.json's sizes call for: the two"
                       f" disagree (a {self.prefix[:-1]} model with that config has it)")


def _eps(cfg: ModelConfig) -> float:
    """The eps SML's norms use: model.norm_eps, or PyTorch's default for the norm."""
    return cfg.norm_eps or (LAYERNORM_EPS if cfg.norm == "layernorm" else RMSNORM_EPS)


def _eps_field(config: dict, key: str, default: float) -> float:
    """model.norm_eps for a config's eps: 0 (PyTorch's default) when it is that default."""
    eps = config.get(key, default)
    _require(config, key, isinstance(eps, (int, float)) and 0 <= eps <= 1, "a number from 0 to 1")
    return 0.0 if math.isclose(eps, default, rel_tol=1e-3) else float(eps)


def _hidden(cfg: ModelConfig) -> int:
    """The MLP's hidden width, as sml.model builds it."""
    return cfg.mlp_hidden or (swiglu_hidden(cfg.n_embd) if cfg.mlp == "swiglu" else 4 * cfg.n_embd)


def _require(config: dict, key: str, ok: bool, expected: str) -> None:
    if not ok:
        raise SMLError(f"config.json: {key} = {config.get(key)!r}: SML's model needs {expected}")


def _norm(state: dict, sml: str, out: dict, hf: str) -> None:
    """A LayerNorm's weight and bias (zeros if SML has none) under Hugging Face's name ``hf``."""
    out[f"{hf}.weight"] = state[f"{sml}.weight"]
    out[f"{hf}.bias"] = state.get(f"{sml}.bias", torch.zeros_like(state[f"{sml}.weight"]))


def _bias(state: dict, key: str, rows: int) -> torch.Tensor:
    return state.get(key, torch.zeros(rows))


# ---- GPT-2 -------------------------------------------------------------------------------------

def _gpt2_config(cfg: ModelConfig) -> dict:
    return {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd, "n_positions": cfg.block_size,
            "n_inner": _hidden(cfg), "activation_function": GELU_ACT[cfg.mlp],
            "layer_norm_epsilon": _eps(cfg), "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}


def _gpt2_export(cfg: ModelConfig, s: dict) -> dict:
    C, H, out = cfg.n_embd, _hidden(cfg), {"wte.weight": s["wte.weight"], "wpe.weight": s["wpe.weight"]}
    for i in range(cfg.n_layer):
        b, h = f"blocks.{i}.", f"h.{i}."
        _norm(s, b + "norm1", out, h + "ln_1")
        _norm(s, b + "norm2", out, h + "ln_2")
        for sml, hf, rows in (("attn.qkv", "attn.c_attn", 3 * C), ("attn.proj", "attn.c_proj", C),
                              ("mlp.fc", "mlp.c_fc", H), ("mlp.proj", "mlp.c_proj", C)):
            out[h + hf + ".weight"] = s[b + sml + ".weight"].T  # Conv1D: (in, out)
            out[h + hf + ".bias"] = _bias(s, b + sml + ".bias", rows)
    _norm(s, "norm_f", out, "ln_f")
    return out


def _gpt2_import(config: dict, read: _Reader) -> tuple[dict, dict]:
    n_layer, n_embd = config["n_layer"], config["n_embd"]
    _require(config, "activation_function", config.get("activation_function") in ACT_GELU, " or ".join(ACT_GELU))
    hidden = config.get("n_inner") or 4 * n_embd
    _require(config, "n_inner", isinstance(hidden, int) and hidden > 0, "a width above 0 (or null: 4 * n_embd)")
    _require(config, "scale_attn_by_inverse_layer_idx", not config.get("scale_attn_by_inverse_layer_idx"), "false")
    state = {"wte.weight": read("wte.weight"), "wpe.weight": read("wpe.weight")}
    for i in range(n_layer):
        b, h = f"blocks.{i}.", f"h.{i}."
        for sml, hf in (("norm1", "ln_1"), ("norm2", "ln_2"), ("attn.qkv", "attn.c_attn"),
                        ("attn.proj", "attn.c_proj"), ("mlp.fc", "mlp.c_fc"), ("mlp.proj", "mlp.c_proj")):
            weight = read(h + hf + ".weight")
            state[b + sml + ".weight"] = weight if "norm" in sml else weight.T  # Conv1D: (in, out)
            state[b + sml + ".bias"] = read(h + hf + ".bias")
    state["norm_f.weight"], state["norm_f.bias"] = read("ln_f.weight"), read("ln_f.bias")
    fields = dict(n_layer=n_layer, n_head=config["n_head"], block_size=config["n_positions"],
                  positions="learned", norm="layernorm", mlp=ACT_GELU[config["activation_function"]],
                  mlp_hidden=0 if hidden == 4 * n_embd else hidden,
                  norm_eps=_eps_field(config, "layer_norm_epsilon", LAYERNORM_EPS))
    return fields, state


# ---- RoPE's two pair layouts -------------------------------------------------------------------

def _halves(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Rows (or a bias) of q or k, SML's interleaved pairs -> Hugging Face's halves, head by head."""
    heads = w.reshape(n_head, -1, 2, *w.shape[1:])  # (nh, hs/2, 2, ...): pair j's two rows
    return heads.transpose(1, 2).reshape(w.shape)  # (nh, 2, hs/2, ...): evens, then odds


def _pairs(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """The inverse of ``_halves``: Hugging Face's rotate_half layout -> SML's interleaved pairs."""
    heads = w.reshape(n_head, 2, -1, *w.shape[1:])  # (nh, 2, hs/2, ...)
    return heads.transpose(1, 2).reshape(w.shape)


def _rope_theta(config: dict) -> float:
    """The RoPE base a config asks for (transformers 5 keeps it in rope_parameters, 4 at the top)."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    _require(config, "rope_parameters", rope.get("rope_type", rope.get("type", "default")) == "default",
             "plain RoPE (rope_type default)")
    theta = rope.get("rope_theta", config.get("rope_theta", config.get("rotary_emb_base", ROPE_BASE)))
    _require(config, "rope_theta", isinstance(theta, (int, float)) and theta > 1, "a number above 1")
    return float(theta)


def _rope_config(cfg: ModelConfig, partial: bool = False) -> dict:
    rope = {"rope_type": "default", "rope_theta": cfg.rope_theta} | ({"partial_rotary_factor": 1.0} if partial else {})
    return {"rope_theta": cfg.rope_theta, "rope_parameters": rope}  # transformers 4 reads the first, 5 the second


# ---- GPT-NeoX ----------------------------------------------------------------------------------

def _neox_config(cfg: ModelConfig) -> dict:
    return {"num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head, "hidden_size": cfg.n_embd,
            "intermediate_size": _hidden(cfg), "hidden_act": GELU_ACT[cfg.mlp],
            "max_position_embeddings": cfg.block_size, "layer_norm_eps": _eps(cfg),
            "rotary_pct": 1.0, "rotary_emb_base": cfg.rope_theta, **_rope_config(cfg, partial=True),
            "use_parallel_residual": False, "attention_bias": True, "hidden_dropout": 0.0,
            "attention_dropout": 0.0, "classifier_dropout": 0.0}


def _neox_export(cfg: ModelConfig, s: dict) -> dict:
    C, nh, H = cfg.n_embd, cfg.n_head, _hidden(cfg)
    out = {"embed_in.weight": s["wte.weight"]}
    for i in range(cfg.n_layer):
        b, h = f"blocks.{i}.", f"layers.{i}."
        _norm(s, b + "norm1", out, h + "input_layernorm")
        _norm(s, b + "norm2", out, h + "post_attention_layernorm")
        for key, rows in ((".weight", 3 * C), (".bias", 3 * C)):
            q, k, v = _bias(s, b + "attn.qkv.bias", rows).chunk(3) if key == ".bias" \
                else s[b + "attn.qkv.weight"].chunk(3)
            q, k = _halves(q, nh), _halves(k, nh)
            packed = torch.stack([t.reshape(nh, C // nh, *t.shape[1:]) for t in (q, k, v)], dim=1)  # (nh, 3, hs, ...)
            out[h + "attention.query_key_value" + key] = packed.reshape(3 * C, *q.shape[1:])
        for sml, hf, rows in (("attn.proj", "attention.dense", C), ("mlp.fc", "mlp.dense_h_to_4h", H),
                              ("mlp.proj", "mlp.dense_4h_to_h", C)):
            out[h + hf + ".weight"] = s[b + sml + ".weight"]
            out[h + hf + ".bias"] = _bias(s, b + sml + ".bias", rows)
    _norm(s, "norm_f", out, "final_layer_norm")
    return out


def _neox_import(config: dict, read: _Reader) -> tuple[dict, dict]:
    n_layer, nh, C = config["num_hidden_layers"], config["num_attention_heads"], config["hidden_size"]
    rope = config.get("rope_parameters") or {}
    partial = rope.get("partial_rotary_factor", config.get("partial_rotary_factor", config.get("rotary_pct", 1.0)))
    _require(config, "rotary_pct", partial == 1.0, "1.0 (every channel of a head rotated)")
    _require(config, "use_parallel_residual", config.get("use_parallel_residual") is False, "false")
    _require(config, "hidden_act", config.get("hidden_act") in ACT_GELU, " or ".join(ACT_GELU))
    H = config.get("intermediate_size", 4 * C)
    _require(config, "intermediate_size", isinstance(H, int) and H > 0, "a width above 0")
    theta = _rope_theta(config)
    state = {"wte.weight": read("embed_in.weight")}
    for i in range(n_layer):
        b, h = f"blocks.{i}.", f"layers.{i}."
        for sml, hf, rows in (("norm1", "input_layernorm", C), ("norm2", "post_attention_layernorm", C),
                              ("attn.proj", "attention.dense", C), ("mlp.fc", "mlp.dense_h_to_4h", H),
                              ("mlp.proj", "mlp.dense_4h_to_h", C)):
            state[b + sml + ".weight"] = read(h + hf + ".weight")
            state[b + sml + ".bias"] = read(h + hf + ".bias", rows)
        for key in (".weight", ".bias"):
            packed = read(h + "attention.query_key_value" + key, 3 * C)
            q, k, v = packed.reshape(nh, 3, C // nh, *packed.shape[1:]).unbind(1)  # each (nh, hs, ...)
            q, k, v = (t.reshape(C, *packed.shape[1:]) for t in (q, k, v))
            state[b + "attn.qkv" + key] = torch.cat([_pairs(q, nh), _pairs(k, nh), v])
    state["norm_f.weight"] = read("final_layer_norm.weight")
    state["norm_f.bias"] = read("final_layer_norm.bias", C)
    fields = dict(n_layer=n_layer, n_head=nh, block_size=config["max_position_embeddings"],
                  positions="rope", norm="layernorm", mlp=ACT_GELU[config["hidden_act"]], rope_theta=theta,
                  mlp_hidden=0 if H == 4 * C else H, norm_eps=_eps_field(config, "layer_norm_eps", LAYERNORM_EPS))
    return fields, state


# ---- Llama -------------------------------------------------------------------------------------

def _llama_config(cfg: ModelConfig) -> dict:
    return {"num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
            "num_key_value_heads": cfg.n_kv_head or cfg.n_head, "hidden_size": cfg.n_embd,
            "head_dim": cfg.n_embd // cfg.n_head, "intermediate_size": _hidden(cfg), "hidden_act": "silu",
            "max_position_embeddings": cfg.block_size, "rms_norm_eps": _eps(cfg), **_rope_config(cfg),
            "attention_bias": cfg.bias, "mlp_bias": cfg.bias, "attention_dropout": 0.0}


def _llama_export(cfg: ModelConfig, s: dict) -> dict:
    nh, nkv, out = cfg.n_head, cfg.n_kv_head or cfg.n_head, {"embed_tokens.weight": s["wte.weight"]}
    kv = nkv * (cfg.n_embd // nh)  # the rows of k, and of v
    for i in range(cfg.n_layer):
        b, h = f"blocks.{i}.", f"layers.{i}."
        out[h + "input_layernorm.weight"] = s[b + "norm1.weight"]
        out[h + "post_attention_layernorm.weight"] = s[b + "norm2.weight"]
        for key in (".weight", ".bias") if cfg.bias else (".weight",):
            q, k, v = s[b + "attn.qkv" + key].split([cfg.n_embd, kv, kv])
            out[h + "self_attn.q_proj" + key], out[h + "self_attn.k_proj" + key] = _halves(q, nh), _halves(k, nkv)
            out[h + "self_attn.v_proj" + key] = v
            out[h + "self_attn.o_proj" + key] = s[b + "attn.proj" + key]
            out[h + "mlp.gate_proj" + key], out[h + "mlp.up_proj" + key] = s[b + "mlp.fc" + key].chunk(2)
            out[h + "mlp.down_proj" + key] = s[b + "mlp.proj" + key]
    out["norm.weight"] = s["norm_f.weight"]
    return out


def _llama_import(config: dict, read: _Reader) -> tuple[dict, dict]:
    """Llama, and Qwen2 (Llama with biases on q, k, v: ``bias: true``, zeros where it has none)."""
    n_layer, nh, C = config["num_hidden_layers"], config["num_attention_heads"], config["hidden_size"]
    nkv = config.get("num_key_value_heads", nh)
    _require(config, "num_key_value_heads", isinstance(nkv, int) and 0 < nkv <= nh and nh % nkv == 0,
             f"a divisor of num_attention_heads = {nh}")
    _require(config, "head_dim", config.get("head_dim") in (None, C // nh), f"hidden_size / heads = {C // nh}")
    _require(config, "hidden_act", config.get("hidden_act") == "silu", "silu (SwiGLU)")
    _require(config, "use_sliding_window", not config.get("use_sliding_window"), "false (attention over the whole"
             " context)")
    H = config.get("intermediate_size")
    _require(config, "intermediate_size", isinstance(H, int) and H > 0, "a width above 0")
    theta, kv = _rope_theta(config), nkv * (C // nh)
    state = {"wte.weight": read("embed_tokens.weight")}
    for i in range(n_layer):
        b, h = f"blocks.{i}.", f"layers.{i}."
        state[b + "norm1.weight"] = read(h + "input_layernorm.weight")
        state[b + "norm2.weight"] = read(h + "post_attention_layernorm.weight")
        for key in (".weight", ".bias"):  # absent biases (attention_bias, mlp_bias false) read as zeros
            q, k, v = read(h + "self_attn.q_proj" + key, C), *(read(h + f"self_attn.{x}_proj" + key, kv) for x in "kv")
            state[b + "attn.qkv" + key] = torch.cat([_pairs(q, nh), _pairs(k, nkv), v])
            state[b + "attn.proj" + key] = read(h + "self_attn.o_proj" + key, C)
            state[b + "mlp.fc" + key] = torch.cat([read(h + f"mlp.{x}_proj" + key, H) for x in ("gate", "up")])
            state[b + "mlp.proj" + key] = read(h + "mlp.down_proj" + key, C)
    state["norm_f.weight"] = read("norm.weight")
    fields = dict(n_layer=n_layer, n_head=nh, block_size=config["max_position_embeddings"], positions="rope",
                  norm="rmsnorm", mlp="swiglu", n_kv_head=0 if nkv == nh else nkv, rope_theta=theta,
                  mlp_hidden=0 if H == swiglu_hidden(C) else H,
                  norm_eps=_eps_field(config, "rms_norm_eps", RMSNORM_EPS))
    return fields, state


ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "gpt_neox": "GPTNeoXForCausalLM", "llama": "LlamaForCausalLM"}
CONFIG = {"gpt2": _gpt2_config, "gpt_neox": _neox_config, "llama": _llama_config}
EXPORT = {"gpt2": _gpt2_export, "gpt_neox": _neox_export, "llama": _llama_export}
IMPORT = {"gpt2": _gpt2_import, "gpt_neox": _neox_import, "llama": _llama_import, "qwen2": _llama_import}
