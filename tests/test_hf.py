"""Hugging Face in and out (sml/hf/): an SML model exported loads in transformers with the same
logits, comes back with the same logits, its tokenizer gives the same ids, and a GPT-2-style
directory (the hub's layout, with its own token order) imports with the same logits (and
samples: tests/test_stages.py). All offline: the Hugging Face models are built here, small and random."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from sml.config import ModelConfig
from sml.hf import export_model, import_model
from sml.hf.tokenizer import spell, to_tokenizer_json
from sml.model import GPT
from sml.run.atomic import write_json
from sml.run.checkpoint import file_fingerprint, load_model, save_torch
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer
from tests.conftest import MIXED, SONNET, command

tokenizers = pytest.importorskip("tokenizers")
if importlib.util.find_spec("transformers") is None:
    pytest.skip("transformers is not installed (pip install -e '.[dev]')", allow_module_level=True)


def transformers():
    """The transformers package, imported by the first test that needs it (2 s that collecting
    every test module need not wait for)."""
    return importlib.import_module("transformers")


TINY = ModelConfig(n_layer=2, n_head=4, n_embd=32, block_size=32, dropout=0.0, bias=False,
                   positions="rope", norm="layernorm", mlp="gelu", tie_weights=True, attention="sdpa")
# Every SML variant that has a Hugging Face architecture, with and without biases and tying.
EXPORTABLE = {
    "gpt2": dict(positions="learned"),
    "gpt2 gelu_tanh, biases, untied": dict(positions="learned", mlp="gelu_tanh", bias=True, tie_weights=False),
    "gpt_neox": dict(),
    "gpt_neox biases, untied": dict(bias=True, tie_weights=False),
    "llama": dict(norm="rmsnorm", mlp="swiglu"),
    "llama biases, untied": dict(norm="rmsnorm", mlp="swiglu", bias=True, tie_weights=False),
    # issue 27's dials, each as its Hugging Face key
    "llama grouped-query, theta, width, eps": dict(norm="rmsnorm", mlp="swiglu", n_kv_head=2, rope_theta=1e5,
                                                   mlp_hidden=40, norm_eps=1e-5),
    "llama multi-query": dict(norm="rmsnorm", mlp="swiglu", n_kv_head=1, bias=True, tie_weights=False),
    "gpt_neox theta, width, eps": dict(rope_theta=500.0, mlp_hidden=24, norm_eps=1e-6),
    "gpt2 width, eps": dict(positions="learned", mlp_hidden=40, norm_eps=1e-6),
}
# Text a byte-level tokenizer must get right: scripts, emoji sequences, contractions in both
# cases, long numbers, CRLF, tabs, runs of spaces, combining marks.
VARIED = ["Hello world! I'm   fine.\n\n", "naïve café résumé — 3,50 €", "東京タワーは高い。", "🙂🚀 👩‍👩‍👧 emoji",
          "مرحبا بالعالم", "Привет, мир", "DON'T YOU'LL we've they'RE 1234567 3.14159",
          "\r\n\t tabs\t\tand  spaces   \n",
          "x\u0301 combining ǅ ß ﬁ", "ROMEO:\nBut soft, what light through yonder window breaks?"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    return Tokenizer.train(SONNET * 3 + MIXED, 400, "gpt4").save(out)


def sml_model_dir(path, cfg, tokenizer_json, seed=0):
    """An SML model directory as the train stage writes it, with random (not initial) weights:
    biases and norm gains far from 0 and 1, so a bias or gain in the wrong place shows."""
    torch.manual_seed(seed)
    model = GPT(cfg, Tokenizer.load(tokenizer_json).vocab_size)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "norm" in name:
                p.normal_(0.0 if name.endswith(".bias") else 1.0, 0.3)
    save_torch(path / "model.pt", model.state_dict())
    write_json(path / "model.json", {"model": dataclasses.asdict(cfg), "vocab_size": model.vocab_size,
                                     "tokenizer_sha256": file_fingerprint(tokenizer_json), "impl": {}})
    return model.eval()


@pytest.mark.parametrize("variant", EXPORTABLE)
def test_an_sml_model_round_trips_through_transformers_with_the_same_logits(tmp_path, tokenizer_dir, variant):
    cfg = dataclasses.replace(TINY, **EXPORTABLE[variant])
    ours = sml_model_dir(tmp_path, cfg, tokenizer_dir)
    export_model(tmp_path, tokenizer_dir, tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors").exists() and not list((tmp_path / "hf").glob("*.bin"))

    theirs = transformers().AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    hf_tok = transformers().AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert type(theirs).__name__ == {"gpt2": "GPT2LMHeadModel", "gpt_neox": "GPTNeoXForCausalLM",
                                     "llama": "LlamaForCausalLM"}[variant.split()[0]]
    text = "ROMEO:\nShall I compare thee to a summer's day? 東京 🙂"
    ids = Tokenizer.load(tokenizer_dir).encode(text)
    assert hf_tok(text)["input_ids"] == ids
    x = torch.tensor([ids[:32]])
    with torch.no_grad():
        expected = ours(x)[0]
        torch.testing.assert_close(theirs(x).logits, expected, atol=2e-5, rtol=1e-4)

    import_model(tmp_path / "hf", tmp_path / "back")  # and into SML again
    back = load_model(tmp_path / "back", tmp_path / "back" / "tokenizer" / "tokenizer.json")
    assert back.cfg == cfg  # bias, tying, variant: all recovered from the export
    with torch.no_grad():
        torch.testing.assert_close(back(x)[0], expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_the_exported_tokenizer_gives_sml_s_ids_on_varied_unicode(pattern):
    ours = Tokenizer.train(SONNET * 3 + MIXED, 450, pattern, specials=["<|endoftext|>", "<|pad|>"])
    theirs = tokenizers.Tokenizer.from_str(json.dumps(to_tokenizer_json(ours)))
    for text in [*VARIED, MIXED, SONNET, "one<|endoftext|>two<|pad|>"]:
        ids = ours.encode(text, special="allow")
        assert theirs.encode(text).ids == ids, text
        assert theirs.decode(ids, skip_special_tokens=False) == text


def test_a_tokenizer_whose_merges_spell_one_token_twice_is_refused():
    ours = Tokenizer([(97, 98), (256, 99), (98, 99), (97, 258)], "gpt2")  # "ab"+"c" and "a"+"bc": both "abc"
    with pytest.raises(SMLError, match="spell the same bytes"):
        to_tokenizer_json(ours)


@pytest.mark.parametrize("variant, named", [
    (dict(norm="rmsnorm"), "model.norm = rmsnorm.*no Hugging Face architecture"),
    (dict(mlp="swiglu"), "model.mlp = swiglu.*no Hugging Face architecture"),
    (dict(mlp="relu2"), "model.mlp = relu2.*no Hugging Face architecture"),
    (dict(n_kv_head=2), "model.n_kv_head = 2: no Hugging Face architecture.*Llama, the only one with fewer"),
    (dict(norm="rmsnorm", mlp="swiglu", qk_norm=True), "model.qk_norm = true: no architecture SML exports"),
])
def test_a_variant_without_a_hugging_face_architecture_is_refused(tmp_path, tokenizer_dir, variant, named):
    sml_model_dir(tmp_path, dataclasses.replace(TINY, **variant), tokenizer_dir)
    with pytest.raises(SMLError, match=named):
        export_model(tmp_path, tokenizer_dir, tmp_path / "hf")


def test_the_export_command_refuses_sinusoidal_positions_in_one_line(tmp_path, tokenizer_dir):
    sml_model_dir(tmp_path, dataclasses.replace(TINY, positions="sinusoidal"), tokenizer_dir)
    result = run("hf", "export", "--model", str(tmp_path), "--tokenizer", str(tokenizer_dir),
                 "--out", str(tmp_path / "hf"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "model.positions = sinusoidal" in result.stderr and "no Hugging Face architecture" in result.stderr
    assert not (tmp_path / "hf").exists()


def test_a_model_trained_with_a_learners_part_is_not_exported_and_an_imported_one_runs_with_any(tmp_path,
                                                                                              tokenizer_dir):
    """A Hugging Face model cannot run mine/attention.py: refused in one line. A model with no
    learner code in it (an import) is not refused for the learner's impl: it has none of theirs."""
    from sml.learn.mine import Mine

    sml_model_dir(tmp_path / "m", TINY, tokenizer_dir)
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    write_json(tmp_path / "m" / "model.json", info | {"impl": {"attention": "mine"}})
    with pytest.raises(SMLError, match=r"trained with your mine/attention\.py, which a Hugging Face model cannot run"):
        export_model(tmp_path / "m", tokenizer_dir, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    write_json(tmp_path / "m" / "model.json", info)  # as an import writes it: no part of the learner's
    assert load_model(tmp_path / "m", tokenizer_dir, mine=Mine(sha256={"attention": "0" * 64})) is not None


def gpt2_style_directory(path, vocab_size=300):
    """A directory laid out like the hub's ``gpt2``: a GPT2LMHeadModel's weights without the
    ``transformer.`` prefix and with the causal-mask buffers, and a tokenizer that the
    ``tokenizers`` library trained GPT-2's way (ByteLevel with its own regex), which numbers
    its tokens in another order than SML (special token first, bytes in character order)."""
    hf_tok = byte_level_tokenizer(path, vocab_size)
    torch.manual_seed(0)
    config = transformers().GPT2Config(vocab_size=hf_tok.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2,
                                     n_head=4, activation_function="gelu_new")
    model = transformers().GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name or name.endswith(".bias"):
                p.normal_(0.0 if name.endswith(".bias") else 1.0, 0.3)
    model.save_pretrained(path)
    from safetensors.torch import load_file, save_file
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(path / "model.safetensors").items()}
    for i in range(config.n_layer):
        tensors[f"h.{i}.attn.bias"] = torch.ones(1, 1, 64, 64).tril()
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    return model, hf_tok


def test_a_gpt2_style_directory_imports_with_the_same_logits(tmp_path):
    hf_dir = tmp_path / "gpt2"
    hf_dir.mkdir()
    theirs, hf_tok = gpt2_style_directory(hf_dir)
    result = run("hf", "import", str(hf_dir), "--out", str(tmp_path / "sml"))
    assert result.returncode == 0, result.stderr
    assert "gpt2" in result.stdout and "2 layers" in result.stdout

    tokenizer = tmp_path / "sml" / "tokenizer" / "tokenizer.json"
    ours, tok = load_model(tmp_path / "sml", tokenizer), Tokenizer.load(tokenizer)
    assert ours.cfg.mlp == "gelu_tanh" and ours.cfg.positions == "learned" and ours.cfg.tie_weights
    text = "Shall I compare thee 東京 🙂?"
    hf_ids, sml_ids = hf_tok.encode(text).ids, tok.encode(text)
    assert len(hf_ids) == len(sml_ids) and hf_ids != sml_ids  # the same tokens, numbered differently
    assert [hf_tok.id_to_token(i) for i in hf_ids] == [hf_tok.id_to_token(i) for i in _hf_ids(tok, hf_tok, sml_ids)]
    with torch.no_grad():
        hf_logits = theirs(torch.tensor([hf_ids])).logits[0]
        sml_logits = ours(torch.tensor([sml_ids]))[0][0]
    order = _hf_ids(tok, hf_tok, range(tok.vocab_size))  # SML id i is Hugging Face id order[i]
    torch.testing.assert_close(sml_logits, hf_logits[:, order], atol=2e-5, rtol=1e-4)



# Real small models' shapes (their config.json values), with 1 or 2 layers, random weights and a
# test vocabulary: SML imports them with transformers' logits, and exports them back.
LLAMA_FAMILY = {
    "SmolLM2-135M": ("LlamaConfig", dict(hidden_size=576, num_attention_heads=9, num_key_value_heads=3,
                                         intermediate_size=1536, rope_theta=100000.0, rms_norm_eps=1e-5,
                                         max_position_embeddings=8192, tie_word_embeddings=True, num_hidden_layers=2)),
    "TinyLlama-1.1B": ("LlamaConfig", dict(hidden_size=2048, num_attention_heads=32, num_key_value_heads=4,
                                           intermediate_size=5632, rope_theta=10000.0, rms_norm_eps=1e-5,
                                           max_position_embeddings=2048, tie_word_embeddings=False,
                                           num_hidden_layers=1)),  # 44M parameters a layer: one is enough
    "Qwen2-0.5B": ("Qwen2Config", dict(hidden_size=896, num_attention_heads=14, num_key_value_heads=2,
                                       intermediate_size=4864, rope_theta=1000000.0, rms_norm_eps=1e-6,
                                       max_position_embeddings=32768, tie_word_embeddings=True,
                                       use_sliding_window=False, num_hidden_layers=2)),
}


@pytest.mark.parametrize("name", LLAMA_FAMILY)
def test_a_llama_family_model_imports_with_the_logits_of_transformers_and_exports_back(tmp_path, name):
    config_class, shape = LLAMA_FAMILY[name]
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    hf_tok = byte_level_tokenizer(hf_dir)
    torch.manual_seed(0)
    config = getattr(transformers(), config_class)(vocab_size=hf_tok.get_vocab_size(), **shape)
    theirs = transformers().AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for param_name, p in theirs.named_parameters():
            if "norm" in param_name or param_name.endswith(".bias"):  # far from 1 and 0: misplaced ones show
                p.normal_(0.0 if param_name.endswith(".bias") else 1.0, 0.3)
    theirs.save_pretrained(hf_dir)
    import_model(hf_dir, tmp_path / "sml")
    tokenizer = tmp_path / "sml" / "tokenizer" / "tokenizer.json"
    ours, tok = load_model(tmp_path / "sml", tokenizer), Tokenizer.load(tokenizer)
    assert ours.cfg.n_kv_head == shape["num_key_value_heads"] and ours.cfg.rope_theta == shape["rope_theta"]
    assert ours.blocks[0].mlp.proj.in_features == shape["intermediate_size"]
    assert ours.cfg.norm_eps == shape["rms_norm_eps"]
    assert ours.cfg.bias == (config_class == "Qwen2Config")  # Qwen2's q, k, v biases
    sml_ids = tok.encode("Shall I compare thee 東京 🙂?")
    order = _hf_ids(tok, hf_tok, range(tok.vocab_size))  # SML id i is Hugging Face id order[i]
    with torch.no_grad():
        expected = theirs(torch.tensor([_hf_ids(tok, hf_tok, sml_ids)])).logits[0][:, order]
        torch.testing.assert_close(ours(torch.tensor([sml_ids]))[0][0], expected, atol=1e-4, rtol=1e-4)
    export_model(tmp_path / "sml", tokenizer, tmp_path / "back")  # and out again, as Llama
    again = transformers().AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert type(again).__name__ == "LlamaForCausalLM"
    with torch.no_grad():
        torch.testing.assert_close(again(torch.tensor([sml_ids])).logits[0], expected, atol=1e-4, rtol=1e-4)


def test_cs336s_transformer_lm_shape_is_params_alone(tmp_path):
    """Stanford CS336 assignment 1's TransformerLM: RMSNorm eps 1e-5, a given d_ff, RoPE theta
    10000, no tied head, no biases: built from params.yaml keys, no module replaced."""
    import yaml

    from sml.config import load_params
    from tests.conftest import params_template

    raw = params_template()
    raw["model"].update(n_layer=4, n_head=16, n_embd=512, block_size=256, positions="rope", norm="rmsnorm",
                        mlp="swiglu", mlp_hidden=1344, norm_eps=1e-5, rope_theta=10000.0, tie_weights=False,
                        bias=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_params(tmp_path / "params.yaml").model
    model = GPT(cfg, 10_000)
    block = model.blocks[0]
    assert block.mlp.fc.weight.shape == (2 * 1344, 512) and block.mlp.proj.weight.shape == (512, 1344)  # w1|w3, w2
    assert block.norm1.eps == 1e-5 and model.parts.rope.base == 10000.0
    assert model.lm_head.weight is not model.wte.weight and not any(n.endswith(".bias") for n, _ in
                                                                    model.named_parameters())
    # CS336's count: 2 V d (embedding, untied head) + L (4 d^2 + 3 d d_ff + 2 d) + d
    d, d_ff, L, V = 512, 1344, 4, 10_000
    assert model.param_counts()["total"] == 2 * V * d + L * (4 * d * d + 3 * d * d_ff + 2 * d) + d


def byte_level_tokenizer(path, vocab_size=300):
    """A ``tokenizers`` byte-level BPE trained GPT-2's way, saved as ``path``/tokenizer.json."""
    hf_tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    hf_tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf_tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    hf_tok.train_from_iterator([SONNET * 3 + MIXED], trainer)
    hf_tok.save(str(path / "tokenizer.json"))
    return hf_tok


def _hf_ids(tok, hf_tok, sml_ids):
    """The Hugging Face id of each SML id, found by the token's text (for the test's own check)."""
    return [hf_tok.token_to_id(s) if (s := next((k for k, v in tok.special_tokens.items() if v == i), None))
            else hf_tok.token_to_id(spell(tok.vocab[i])) for i in sml_ids]


def test_what_sml_cannot_compute_or_read_is_refused_in_one_line(tmp_path):
    hf_dir = tmp_path / "gpt2"
    hf_dir.mkdir()
    gpt2_style_directory(hf_dir)
    config = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps(config | {"activation_function": "relu"}))
    with pytest.raises(SMLError, match="activation_function = 'relu'"):
        import_model(hf_dir, tmp_path / "out")
    (hf_dir / "config.json").write_text(json.dumps(config))
    (hf_dir / "model.safetensors").rename(hf_dir / "pytorch_model.bin")
    result = run("hf", "import", str(hf_dir), "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "pytorch_model.bin" in result.stderr and "only safetensors" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("kv_heads", "says"), [
    (2, r"model.safetensors does not fit .*config.json \(.*size mismatch for blocks.0.attn.qkv.weight"),
    (3, "num_key_value_heads = 3: SML's model needs a divisor of num_attention_heads = 4"),
    (0, "num_key_value_heads = 0: SML's model needs a divisor"),
])
def test_key_value_heads_that_disagree_with_the_weights_or_heads_are_one_line(tmp_path, tokenizer_dir, kv_heads,
                                                                              says):
    sml_model_dir(tmp_path, dataclasses.replace(TINY, norm="rmsnorm", mlp="swiglu"), tokenizer_dir)
    export_model(tmp_path, tokenizer_dir, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config | {"num_key_value_heads": kv_heads}))
    with pytest.raises(SMLError, match=says):
        import_model(tmp_path / "hf", tmp_path / "back")


def run(stage, *args):
    return command(f"stages.{stage}", *args)  # the real process: tests/test_stages.py, import then sample


def stranger_directory(tmp_path, tokenizer_dir, change) -> Path:
    """A GPT-2 directory exported from a tiny SML model, then ``change(config, tensors)`` by a stranger."""
    from safetensors.torch import load_file, save_file

    sml_model_dir(tmp_path / "m", dataclasses.replace(TINY, **EXPORTABLE["gpt2"]), tokenizer_dir)
    export_model(tmp_path / "m", tokenizer_dir, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    tensors = load_file(tmp_path / "hf" / "model.safetensors")
    change(config, tensors)
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    save_file(tensors, tmp_path / "hf" / "model.safetensors")
    return tmp_path / "hf"


def first(tensors, part):
    return next(k for k in tensors if part in k)


STRANGERS = {
    "fewer layers than the weights": (lambda c, t: c.update(n_layer=1), r"tensor\(s\) that config\.json does not"
                                      r" account for, such as transformer\.h\.1\..*check num_hidden_layers"),
    "more layers than the weights": (lambda c, t: c.update(n_layer=10000),
                                     r"no tensor transformer\.h\.2\..*config\.json's sizes"),
    "negative layers": (lambda c, t: c.update(n_layer=-3), r"does not account for|model\.n_layer = -3"),
    "layers as a word": (lambda c, t: c.update(n_layer="two"), r"do not describe one gpt2 model \(TypeError"),
    "heads that do not divide the width": (lambda c, t: c.update(n_head=3), r"model\.n_embd = 32: must be a multiple"
                                           r"|do not describe one gpt2 model"),
    "no heads": (lambda c, t: c.update(n_head=0), r"model\.n_head = 0|do not describe one gpt2 model"),
    "a huge context": (lambda c, t: c.update(n_positions=10**12), r"model\.block_size = 1000000000000: must be"),
    "a vocabulary the tensors do not have": (lambda c, t: c.update(vocab_size=12345), r"vocab_size = 12345, but the"
                                             r" embedding has"),
    "nan weights": (lambda c, t: t[first(t, "c_fc.weight")].fill_(float("nan")), r"holds inf or nan"),
    "int weights": (lambda c, t: t.update({first(t, "c_fc.weight"): t[first(t, "c_fc.weight")].int()}),
                    r"holds int32, not floats"),
    "a q/k/v matrix a row short": (lambda c, t: t.update({first(t, "c_attn.weight"):
                                                          t[first(t, "c_attn.weight")][:-1]}),
                                   r"do not describe one gpt2 model|does not fit"),
}


@pytest.mark.parametrize("case", STRANGERS)
def test_a_strangers_directory_is_one_line_naming_what_is_wrong_and_nothing_is_written(tmp_path, tokenizer_dir,
                                                                                       case):
    change, message = STRANGERS[case]
    folder = stranger_directory(tmp_path, tokenizer_dir, change)
    with pytest.raises(SMLError, match=message) as e:
        import_model(folder, tmp_path / "out")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("weight_map", "says"), [
    ({"wte.weight": "../outside.safetensors"}, r"weight_map names '\.\./outside\.safetensors', not a file in"),
    ({}, r"weight_map is dict, expected a non-empty object"),
    (["model.safetensors"], r"weight_map is list, expected"),
])
def test_an_index_file_reads_nothing_outside_its_directory(tmp_path, tokenizer_dir, weight_map, says):
    folder = stranger_directory(tmp_path, tokenizer_dir, lambda c, t: None)
    (tmp_path / "outside.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(SMLError, match=says):
        import_model(folder, tmp_path / "out")


def test_import_and_export_never_write_over_other_files(tmp_path, tokenizer_dir):
    folder = stranger_directory(tmp_path, tokenizer_dir, lambda c, t: None)
    import_model(folder, tmp_path / "out")
    import_model(folder, tmp_path / "out")  # over an earlier import: fine
    with pytest.raises(SMLError, match=r"m: holds files that are not an earlier import .* nothing was written"):
        import_model(folder, tmp_path / "m")  # a trained model (artifacts/model)
    with pytest.raises(SMLError, match=r"holds files that are not an earlier export"):
        export_model(tmp_path / "m", tokenizer_dir, tokenizer_dir.parent)  # artifacts/tokenizer: vocab.txt too
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    with pytest.raises(SMLError, match=r"holds files that are not an earlier export"):
        export_model(tmp_path / "m", tokenizer_dir, tmp_path / "mine")
    export_model(tmp_path / "m", tokenizer_dir, folder)  # over an earlier export: fine


def test_a_directory_with_only_a_pickle_says_so(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(SMLError, match=r"has pytorch_model\.bin \(a pickle"):
        import_model(tmp_path, tmp_path / "out")


def test_a_symbolic_link_loop_is_named_as_one(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(SMLError, match=r"loop: a symbolic link that leads nowhere \(a loop"):
        import_model(tmp_path / "loop", tmp_path / "out")


def test_a_place_that_cannot_be_written_is_one_line_and_the_earlier_import_stays(tmp_path, tokenizer_dir,
                                                                                 monkeypatch):
    import errno

    import sml.run.atomic

    folder = stranger_directory(tmp_path, tokenizer_dir, lambda c, t: None)
    (tmp_path / "notes.txt").write_text("the user's")
    done = run("hf", "import", str(folder), "--out", str(tmp_path / "notes.txt" / "model"))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert str(tmp_path / "notes.txt") in done.stderr
    assert "Not a directory: choose a place you can write to" in done.stderr
    assert run("hf", "import", str(folder), "--out", str(tmp_path / "out")).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sml.run.atomic.os, "fsync", full)
    done = run("hf", "import", str(folder), "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "error: No space left on device: free some space" in done.stderr, done.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before
