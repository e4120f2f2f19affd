"""sml/learn/mine.py: the learner's parts in the model and the sampler, graded before they run."""

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sml.config import ImplConfig, ModelConfig, parse_params
from sml.generate import generate
from sml.learn.mine import MODEL_PARTS, PARTS, check_model_impl, load_mine
from sml.model import GPT
from sml.parts import parts_for
from sml.run.errors import SMLError
from tests.conftest import ROOT, params_template
from tests.test_train import data  # noqa: F401  (the tiny corpus fixture)

SOLUTIONS = ROOT / "tests" / "solutions"
ALL_MINE = ImplConfig(**dict.fromkeys(PARTS, "mine"))
REFERENCE = ImplConfig(**dict.fromkeys(PARTS, "reference"))


def project(tmp_path: Path, **files: Path) -> Path:
    """A project root whose mine/ holds the stubs, with ``files`` (part -> file) copied over them."""
    shutil.copytree(ROOT / "mine", tmp_path / "mine", ignore=shutil.ignore_patterns("__pycache__"))
    for part, source in files.items():
        shutil.copy(source, tmp_path / "mine" / f"{part}.py")
    return tmp_path


@pytest.fixture(scope="module")
def solved(tmp_path_factory) -> Path:
    return project(tmp_path_factory.mktemp("solved"), **{part: SOLUTIONS / f"{part}.py" for part in PARTS})


def config(positions: str, **dials) -> ModelConfig:
    return ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=12, dropout=0.0, bias=True, positions=positions,
                       norm="layernorm", mlp="gelu", tie_weights=True, attention="sdpa", **dials)


@pytest.mark.parametrize(("positions", "dials"), [("learned", {}), ("sinusoidal", {}), ("rope", {}),
                                                  ("rope", {"n_kv_head": 1, "rope_theta": 500.0, "qk_norm": True})])
def test_a_model_of_correct_learner_parts_computes_the_reference_logits(solved, positions, dials):
    """The learner's parts, the dials included: grouped k and v reach their attention repeated to
    the query heads, and their split_heads cuts q's and k's heads together as it cuts any width."""
    mine = load_mine(ALL_MINE, solved)
    torch.manual_seed(0)
    reference = GPT(config(positions, **dials), 50).eval()
    theirs = GPT(config(positions, **dials), 50, parts_for(config(positions, **dials), mine)).eval()
    theirs.load_state_dict(reference.state_dict())  # the same keys: only the code differs
    idx = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(theirs(idx)[0], reference(idx)[0], atol=1e-5, rtol=1e-5)
    prompt = [1, 2, 3]  # greedy, through the KV cache (positions past the prompt, the sliding window)
    assert list(generate(theirs, prompt, 15, temperature=0, pick=mine.pick)) == \
        list(generate(reference, prompt, 15, temperature=0))


def test_the_learners_pick_draws_the_text_from_its_seed(solved):
    """Not the reference's draws (a correct pick may use the generator differently): its own, repeatably."""
    mine = load_mine(ALL_MINE, solved, parts=("sampling",))
    torch.manual_seed(0)
    model = GPT(config("rope"), 50)
    text = list(generate(model, [1, 2], 10, temperature=0.8, top_k=5, top_p=0.9, seed=3, pick=mine.pick))
    assert len(text) == 10 and all(0 <= i < 50 for i in text)
    assert list(generate(model, [1, 2], 10, temperature=0.8, top_k=5, top_p=0.9, seed=3, pick=mine.pick)) == text


def test_with_every_part_the_reference_the_learners_files_are_not_read(tmp_path):
    assert load_mine(REFERENCE, tmp_path) is None  # no mine/ at all


def test_a_stub_stops_the_stage_in_one_line(tmp_path):
    with pytest.raises(SMLError) as e:
        load_mine(ImplConfig(**{**vars(REFERENCE), "attention": "mine"}), project(tmp_path))
    assert str(e.value) == ("params.yaml: impl.attention = 'mine', but mine/attention.py is not written yet"
                            " (write attention(); make grade PART=attention)")


def test_a_broken_part_is_warned_about_and_still_runs(tmp_path, capsys):
    root = project(tmp_path, attention=SOLUTIONS / "broken" / "attention__no_causal_mask.py")
    mine = load_mine(ImplConfig(**{**vars(REFERENCE), "attention": "mine"}), root)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: mine/attention.py fails a check")
    assert "the causal mask is missing" in warning[0]
    torch.manual_seed(0)
    reference, theirs = GPT(config("rope"), 50), GPT(config("rope"), 50, parts_for(config("rope"), mine))
    theirs.load_state_dict(reference.state_dict())
    idx = torch.randint(0, 50, (1, 12))
    _, loss = theirs(idx, idx)
    assert torch.isfinite(loss)
    assert not torch.allclose(theirs(idx)[0][:, 0], reference(idx)[0][:, 0])  # position 0 sees the future


@pytest.mark.parametrize("part, key, value", [("layernorm", "norm", "rmsnorm"), ("mlp", "mlp", "swiglu")])
def test_a_learner_part_the_variant_does_not_use_is_refused(part, key, value):
    raw = params_template()
    raw["impl"][part], raw["model"][key] = "mine", value
    with pytest.raises(SMLError, match=rf"^impl\.{part} = 'mine': must be 'reference' with model\.{key} = '{value}'"):
        parse_params(raw)


def test_a_model_trained_with_other_parts_is_refused(solved):
    mine = load_mine(ImplConfig(**{**vars(REFERENCE), "heads": "mine"}), solved)
    check_model_impl({part: "reference" for part in MODEL_PARTS} | {"heads": "mine"}, mine, Path("m"))
    check_model_impl(None, None, Path("m"))  # a model.json from before impl: all reference
    check_model_impl(dict.fromkeys(MODEL_PARTS, "reference"), mine, Path("m"))  # no learner code in it: runs
    with pytest.raises(SMLError, match=r"^m was trained with your mine/heads\.py \(impl\.heads: mine\) and is loaded"
                                       r" with SML's heads: set impl\.heads: mine in params\.yaml \(in code: "
                                       r"load_model\(\.\.\., mine=load_mine\(load_params\(\)\.impl\)\)\), or retrain"):
        check_model_impl({"heads": "mine"}, None, Path("m"))


def test_a_garbled_impl_in_model_json_is_one_line(tmp_path):
    import dataclasses
    import json

    from sml.run.checkpoint import model_info

    (tmp_path / "model.json").write_text(json.dumps({"model": dataclasses.asdict(config("rope")), "vocab_size": 50,
                                                     "tokenizer_sha256": "0" * 64, "impl": "mine"}))
    with pytest.raises(SMLError, match=r"model\.json: not a readable model description \(impl 'mine' is not"):
        model_info(tmp_path)


def test_a_checkpoint_resumes_only_with_the_same_learner_files(solved):
    from sml.config import load_params
    from sml.run.checkpoint import fingerprint_difference, run_fingerprint
    from tests.conftest import TEST_PARAMS

    p, meta = load_params(TEST_PARAMS), {"train": {"tokens": 10}, "val": {"tokens": 2}}
    mine = load_mine(ImplConfig(**{**vars(REFERENCE), "attention": "mine"}), solved)
    before = run_fingerprint(p.model, p.train, "0" * 64, meta, {})
    after = run_fingerprint(p.model, p.train, "0" * 64, meta, {}, mine)
    assert fingerprint_difference(before, after).startswith("impl.attention: null -> ")  # another run: starts over


def only(part: str) -> ImplConfig:
    return ImplConfig(**{**vars(REFERENCE), part: "mine"})


# ---- training: batches, loss, clipping, AdamW and the schedule in the trainer ------------------

def test_the_learners_training_functions_train_as_the_reference_does_and_resume_exactly(solved, data, tmp_path):  # noqa: F811
    """The same run (the same batches, dropout masks and steps), to float rounding; resumed, bit for bit."""
    import os
    import signal

    from sml.run.checkpoint import load_checkpoint
    from sml.train import Interrupted
    from tests.test_train import run

    mine = load_mine(only("training"), solved)
    calls = {name: 0 for name in ("get_batch", "cross_entropy", "clip_grad_norm", "adamw_step", "lr_at")}

    def counted(name):
        def call(*args):
            calls[name] += 1
            return getattr(mine, name)(*args)
        return call

    counting = dataclasses.replace(mine, **{name: counted(name) for name in calls})
    reference, _ = run(data, tmp_path / "reference")
    theirs, text = run(data, tmp_path / "mine", mine=counting)
    assert all(calls.values()), calls  # each of the learner's functions ran
    assert theirs["val_loss"] == pytest.approx(reference["val_loss"], abs=1e-4)
    weights = [load_checkpoint(tmp_path / d / "model/model.pt") for d in ("reference", "mine")]
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], atol=1e-4, rtol=1e-3, msg=name)

    def interrupt(step):  # a real Ctrl-C, in the middle of the run
        if step == 17:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        run(data, tmp_path / "resumed", mine=mine, on_step=interrupt)
    run(data, tmp_path / "resumed", mine=mine)
    resumed = load_checkpoint(tmp_path / "resumed/model/model.pt")
    assert all(torch.equal(resumed[k], weights[1][k]) for k in resumed)  # WrittenAdamW's state resumed


def test_the_learners_get_batch_reads_the_token_file_as_it_is(solved):
    import numpy as np

    from sml.batches import RandomWindows

    mine = load_mine(only("training"), solved)
    tokens = np.arange(1000, dtype=np.uint16) * 7
    ours = RandomWindows(tokens, 16, 4, 0, torch.device("cpu"))
    theirs = RandomWindows(tokens, 16, 4, 0, torch.device("cpu"), mine.get_batch)
    for _ in range(3):
        for a, b in zip(ours.next(), theirs.next(), strict=True):
            assert b.dtype == torch.int64 and torch.equal(a, b)


# ---- bpe: merges, encoding and decoding in the tokenizer --------------------------------------

def test_the_learners_bpe_learns_encodes_and_decodes_as_the_tokenizer_does(solved, tmp_path):
    from sml.data.encode import encode_corpus
    from sml.tokenizer import Tokenizer
    from tests.conftest import MIXED, SONNET

    mine = load_mine(only("bpe"), solved)
    text = SONNET * 2 + MIXED
    ours = Tokenizer.train(text, 330, "gpt4")
    theirs = Tokenizer.train(text, 330, "gpt4", learn=mine.learn_merges)
    assert theirs.merges == ours.merges and len(ours.merges) == 330 - 257
    theirs.use(mine.encode_chunk, mine.decode)
    sample = MIXED + "<|endoftext|>Ünïcödé, 数字 123 🙂"
    ids = ours.encode(sample, special="allow")
    assert theirs.encode(sample, special="allow") == ids
    assert theirs.decode(ids) == ours.decode(ids) == sample
    assert theirs.decode(ids[:-1]) == ours.decode(ids[:-1])  # a cut character: U+FFFD either way

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text(text, encoding="utf-8")
    (corpus / "val.txt").write_text(MIXED, encoding="utf-8")
    meta = [encode_corpus(corpus, ours, tmp_path / who, workers=2, range_bytes=1 << 10,
                          mine_bpe=mine.files["bpe"] if who == "mine" else None) for who in ("ours", "mine")]
    assert meta[1]["backend"].startswith("python (") and meta[1]["backend"].endswith("mine/bpe.py)")
    assert meta[0]["sha256"] == meta[1]["sha256"]  # the same token files, from two worker processes


# ---- micrograd: the MLP of the lesson, made of the learner's Value ----------------------------

def test_the_learners_value_trains_the_two_moons_mlp_as_the_reference_does(solved):
    from sml.micrograd import MLP
    from sml.micrograd.moons import make_moons, train

    mine = load_mine(only("micrograd"), solved)
    X, y = make_moons(30, seed=0)
    ours, theirs = MLP(2, [4, 4, 1], seed=0), MLP(2, [4, 4, 1], seed=0, value=mine.Value)
    accuracies = [train(model, X, y, steps=15) for model in (ours, theirs)]
    assert type(theirs.parameters()[0]) is mine.Value
    assert accuracies[0] == accuracies[1]
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert b.data == pytest.approx(a.data, rel=1e-9, abs=1e-12)


def plain_pytorch_loss(model: GPT, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The model's loss composed from PyTorch's own calls, in the order SML made them before the
    parts record existed (one view and permute for q, k, v; RoPE from tables on q and k at once)."""
    cfg, (B, T), C, nh = model.cfg, idx.shape, model.cfg.n_embd, model.cfg.n_head
    x = F.embedding(idx, model.wte.weight) + (model.wpe.weight[:T] if model.wpe is not None else 0)
    hs = C // nh
    inv_freq = 10000.0 ** (-torch.arange(0, hs, 2).float() / hs)
    angles = torch.outer(torch.arange(cfg.block_size).float(), inv_freq)[:T]  # (T, hs/2)
    cos = angles.cos().repeat_interleave(2, dim=-1)
    sin = torch.stack((-angles.sin(), angles.sin()), dim=-1).flatten(-2)
    for block in model.blocks:
        a = block.attn
        h = F.layer_norm(x, (C,), block.norm1.weight, block.norm1.bias, block.norm1.eps)
        qkv = F.linear(h, a.qkv.weight, a.qkv.bias).view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if cfg.positions == "rope":
            pair = qkv[:2]
            q, k = (pair * cos + pair.unflatten(-1, (-1, 2)).flip(-1).flatten(-2) * sin).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, a.proj.weight, a.proj.bias)
        h = F.layer_norm(x, (C,), block.norm2.weight, block.norm2.bias, block.norm2.eps)
        x = x + F.linear(F.gelu(F.linear(h, block.mlp.fc.weight, block.mlp.fc.bias)),
                         block.mlp.proj.weight, block.mlp.proj.bias)
    x = F.layer_norm(x, (C,), model.norm_f.weight, model.norm_f.bias, model.norm_f.eps)
    logits = F.linear(x, model.lm_head.weight)
    return F.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(B * T))


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_the_reference_parts_compute_what_plain_pytorch_does_bit_for_bit(positions):
    """The seam costs nothing: with SML's own parts the loss and every gradient are PyTorch's,
    bitwise, as they were when the model called PyTorch directly."""
    torch.manual_seed(0)
    model = GPT(config(positions), 50)
    idx, targets = torch.randint(0, 50, (3, 12)), torch.randint(0, 50, (3, 12))
    loss = model(idx, targets)[1]
    grads = torch.autograd.grad(loss, list(model.parameters()))
    plain = plain_pytorch_loss(model, idx, targets)
    assert torch.equal(loss, plain)
    for got, want in zip(grads, torch.autograd.grad(plain, list(model.parameters())), strict=True):
        assert torch.equal(got, want)


def test_each_learner_function_the_model_trainer_or_sampler_runs_has_its_field_in_the_parts_record():
    from sml.learn.mine import Mine
    from sml.parts import Parts

    handed_over = {"Value", "learn_merges", "encode_chunk", "decode",  # micrograd's and the tokenizer's
                   "render", "inputs_and_targets"}  # chat's: the conversations stage and evaluate_chat
    learner = {f.name for f in dataclasses.fields(Mine)} - {"sha256", "files", "graded"}
    assert learner - handed_over == {f.name for f in dataclasses.fields(Parts)}
    assert set(Mine(attention=len, Value=int).replaced()) == {"attention"}


def test_a_nan_loss_with_a_learners_part_names_the_part_and_its_grade_first(data, tmp_path):  # noqa: F811
    from sml.run.trainer import TrainFiles, train
    from sml.train import NonFiniteLoss
    from tests.test_train import MODEL, TRAIN

    root = project(tmp_path, attention=SOLUTIONS / "attention.py")
    source = (root / "mine" / "attention.py").read_text()
    (root / "mine" / "attention.py").write_text(source + "\n\n_theirs = attention\n\n\n"
                                                "def attention(*args, **kwargs):\n"
                                                "    return _theirs(*args, **kwargs) * float('nan')\n")
    mine = load_mine(ImplConfig(**{**vars(REFERENCE), "attention": "mine"}), root)
    files = TrainFiles(data / "tokens", data / "tokenizer" / "tokenizer.json", tmp_path / "ckpt" / "checkpoint.pt",
                       tmp_path / "model", tmp_path / "log.tsv", tmp_path / "metrics.json")
    import io

    with pytest.raises(NonFiniteLoss, match=r"^mine/attention.py is in use \(impl.attention: mine\) and fails a check: "
                                            r".*; loss is nan at step 5 .*Lower train.lr"):
        train(MODEL, dataclasses.replace(TRAIN, max_iters=10), files, out=io.StringIO(), mine=mine)
