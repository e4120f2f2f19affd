"""SML models in and out of Hugging Face: export a trained model, import GPT-2 (or an export).

``export_model`` writes a trained SML model as a ``transformers`` model directory::

    config.json             the architecture (GPT-2, GPT-NeoX or Llama: weights.py says which)
    model.safetensors       the weights: only tensors, nothing a loader could run
    generation_config.json  which token ends a document
    tokenizer.json          the same BPE for Hugging Face ``tokenizers`` (tokenizer.py)
    tokenizer_config.json   so that ``AutoTokenizer`` loads it as a PreTrainedTokenizerFast

``AutoModelForCausalLM.from_pretrained(dir)`` then computes SML's logits (tests/test_hf.py).

``import_model`` goes the other way, from such a directory or a hub name (``gpt2``, downloaded
with ``huggingface_hub`` where there is a network) to an SML model directory: ``model.pt`` +
``model.json``, and the tokenizer under ``tokenizer/``, which ``python -m stages.sample``
samples from. Only ``model.safetensors`` is read: a ``pytorch_model.bin`` is a pickle, which
can run code on loading, and is refused.

Neither needs ``transformers``: config.json and tokenizer.json are JSON, written and read here.
"""

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from sml.chat import END
from sml.hf.tokenizer import from_tokenizer_json, to_tokenizer_json, tokenizer_config
from sml.hf.weights import from_hf, to_hf
from sml.model import GPT
from sml.run.atomic import atomic_open, write_json
from sml.run.checkpoint import RETRAIN, check_tokenizer, file_fingerprint, load_checkpoint, model_info, save_torch
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer

HUB_FILES = ["config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json"]


# sml/chat.py's template in Jinja, for transformers' apply_chat_template: each message's role token,
# content and <|end|>; the generation prompt is <|assistant|>.
CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
                 "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}")


def export_model(model_dir: str | Path, tokenizer: str | Path, out: str | Path) -> str:
    """Write the SML model in ``model_dir`` (trained with ``tokenizer``) as a Hugging Face directory ``out``.

    Returns one line that says what was written.
    """
    from safetensors.torch import save

    model_dir, out = Path(model_dir), Path(out)
    _check_out(out, EXPORT_FILES, "an earlier export")
    info = model_info(model_dir)
    check_tokenizer(info, model_dir, tokenizer)
    theirs = sorted(part for part, whose in (info["impl"] or {}).items() if whose == "mine")
    if theirs:  # Hugging Face would run its own attention, MLP, ...: other logits than the model trained to
        raise SMLError(f"{model_dir} was trained with your {', '.join(f'mine/{p}.py' for p in theirs)}, which a"
                       " Hugging Face model cannot run: export a model trained with SML's parts (impl: reference,"
                       " then dvc repro train)")
    tok = Tokenizer.load(tokenizer)
    cfg = info["config"]
    eos = "<|endoftext|>" if "<|endoftext|>" in tok.special_tokens else next(iter(tok.special_tokens), None)
    eos_id = tok.special_tokens.get(eos)
    config, tensors = to_hf(cfg, info["vocab_size"], load_checkpoint(model_dir / "model.pt", if_damaged=RETRAIN),
                            bos_id=eos_id, eos_id=eos_id)
    hf_tokenizer = to_tokenizer_json(tok)  # everything is built before the first file is written
    with atomic_open(out / "model.safetensors", "wb") as f:
        f.write(save(tensors, metadata={"format": "pt"}))
    write_json(out / "config.json", config)
    chat = END in tok.special_tokens  # a fine-tuned chat model: a reply ends with <|end|>, and the template goes along
    stop = tok.special_tokens[END] if chat else eos_id
    write_json(out / "generation_config.json", {"bos_token_id": eos_id, "eos_token_id": stop})
    write_json(out / "tokenizer.json", hf_tokenizer)
    write_json(out / "tokenizer_config.json", tokenizer_config(eos, cfg.block_size)
               | ({"eos_token": END, "chat_template": CHAT_TEMPLATE} if chat else {}))
    n = sum(t.numel() for t in tensors.values())
    return f"export: {config['architectures'][0]} ({n / 1e6:.2f}M parameters, vocab {info['vocab_size']:,}) -> {out}"


def import_model(source: str | Path, out: str | Path) -> str:
    """Read a Hugging Face model (a directory, or a hub name) into an SML model directory ``out``.

    Writes ``out/model.pt``, ``out/model.json`` and ``out/tokenizer/``; returns one line that
    says what was read.
    """
    folder, out = _local(source), Path(out)
    _check_out(out, None, "an earlier import")
    if not (folder / "config.json").exists() and (folder / "pytorch_model.bin").exists():
        _read_weights(folder)  # says what is wrong: a pickle, and no safetensors
    config = _read_json(folder / "config.json")
    tok, hf_of = from_tokenizer_json(_read_json(folder / "tokenizer.json"), folder / "tokenizer.json")
    try:
        cfg, vocab_size, state = from_hf(config, _read_weights(folder))
    except KeyError as e:
        raise SMLError(f"{folder / 'config.json'}: no {e} (every {config.get('model_type')} config has it)") from None
    if vocab_size != tok.vocab_size:
        raise SMLError(f"{folder / 'model.safetensors'}: {vocab_size:,} embedding rows, but"
                       f" {folder / 'tokenizer.json'} has {tok.vocab_size:,} tokens: SML needs one row per token")
    rows = torch.tensor(hf_of)  # SML id i is Hugging Face id hf_of[i]: its embedding row comes along
    tied = state["lm_head.weight"] is state["wte.weight"]
    state["wte.weight"] = state["wte.weight"][rows]
    state["lm_head.weight"] = state["wte.weight"] if tied else state["lm_head.weight"][rows]
    model = GPT(cfg, vocab_size)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # a tensor of another shape than config.json says
        raise SMLError(f"{folder / 'model.safetensors'} does not fit {folder / 'config.json'}"
                       f" ({' '.join(str(e).split())[:200]})") from None
    tokenizer = tok.save(out / "tokenizer")
    save_torch(out / "model.pt", model.state_dict())
    write_json(out / "model.json", {"model": asdict(cfg), "vocab_size": vocab_size,
                                    "tokenizer_sha256": file_fingerprint(tokenizer), "impl": {},
                                    "imported_from": str(source)})
    n = model.param_counts()["total"]
    return (f"import: {config['model_type']} from {source} ({n / 1e6:.2f}M parameters, {cfg.n_layer} layers,"
            f" vocab {vocab_size:,}) -> {out} (tokenizer: {tokenizer})")


EXPORT_FILES = {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"}


def _check_out(out: Path, files: set[str] | None, what: str) -> None:
    """Refuse to write into a directory that holds something else than ``what`` (SML's own model or
    tokenizer, the user's files): an export holds only ``files``; an import, a model.json saying so."""
    if not out.is_dir() or not any(out.iterdir()):
        if out.exists() and not out.is_dir():
            raise SMLError(f"{out}: a file, not a directory: give --out a new or empty directory")
        return
    if files is not None:
        ours = all(p.name in files for p in out.iterdir())
    else:
        try:
            ours = "imported_from" in json.loads((out / "model.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            ours = False
    if not ours:
        raise SMLError(f"{out}: holds files that are not {what} (a trained model, a tokenizer, your own):"
                       " nothing was written; give --out a new or empty directory")


def _local(source: str | Path) -> Path:
    """``source`` as a local directory: itself, or the hub's files for that name, downloaded once."""
    if Path(source).is_dir():
        return Path(source)
    if os.path.lexists(source) and not Path(source).exists():  # a link to nothing: not a hub name either
        raise SMLError(f"{source}: a symbolic link that leads nowhere (a loop, or its target is gone)")
    if Path(source).exists() or str(source).startswith((".", "/", "~")) or str(source).count("/") > 1:
        raise SMLError(f"{source}: not a directory (a Hugging Face model directory, or a hub name such as gpt2)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SMLError(f"{source} is not a directory here, and downloading it from the Hugging Face hub"
                       " needs huggingface_hub: pip install huggingface_hub") from None
    try:
        return Path(snapshot_download(str(source), allow_patterns=HUB_FILES))
    except Exception as e:  # no network, no such model, a gated one: the hub's own reason, on one line
        raise SMLError(f"{source}: no such directory here, and the Hugging Face hub could not give it"
                       f" ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SMLError(f"{path}: missing (a Hugging Face model directory has config.json and tokenizer.json)") from None
    except (OSError, UnicodeError, json.JSONDecodeError) as e:
        raise SMLError(f"{path}: not readable JSON ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(data, dict):
        raise SMLError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of ``model.safetensors`` (or of the shards its index lists)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    files = ["model.safetensors"]
    if index.exists():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map or not all(
                isinstance(v, str) for v in weight_map.values()):
            raise SMLError(f"{index}: weight_map is {type(weight_map).__name__}, expected a non-empty object of"
                           " tensor name -> file name")
        files = sorted(set(weight_map.values()))
        for name in files:  # only files in this directory: a map is not a way to read anything else
            if Path(name).name != name or name in (".", ".."):
                raise SMLError(f"{index}: weight_map names {name!r}, not a file in {folder}")
    if not (folder / files[0]).exists() and (folder / "pytorch_model.bin").exists():
        raise SMLError(f"{folder}: has pytorch_model.bin (a pickle, which can run code when loaded) but no"
                       " model.safetensors: SML reads only safetensors")
    tensors = {}
    for name in files:
        try:
            tensors |= load_file(folder / name)
        except FileNotFoundError:
            raise SMLError(f"{folder / name}: missing") from None
        except (SafetensorError, OSError) as e:
            raise SMLError(f"{folder / name}: not a readable safetensors file ({e})") from None
    return tensors
