"""sml/parts.py: the learner's parts in the model and the sampler, graded before they run."""

import shutil
from pathlib import Path

import pytest
import torch

from sml.config import ImplConfig, ModelConfig, parse_params
from sml.errors import SMLError
from sml.generate import generate
from sml.model import GPT
from sml.parts import MODEL_PARTS, PARTS, check_model_impl, load_mine
from tests.conftest import ROOT, params_template

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


def config(positions: str) -> ModelConfig:
    return ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=12, dropout=0.0, bias=True, positions=positions,
                       norm="layernorm", mlp="gelu", tie_weights=True, attention="sdpa")


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope"])
def test_a_model_of_correct_learner_parts_computes_the_reference_logits(solved, positions):
    mine = load_mine(ALL_MINE, solved)
    torch.manual_seed(0)
    reference = GPT(config(positions), 50).eval()
    theirs = GPT(config(positions), 50, mine).eval()
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
    reference, theirs = GPT(config("rope"), 50), GPT(config("rope"), 50, mine)
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
    with pytest.raises(SMLError, match=r"^m was trained with impl\.heads = 'mine', but params\.yaml says"
                                       r" 'reference': set it back, or retrain \(dvc repro train\)$"):
        check_model_impl({"heads": "mine"}, None, Path("m"))


def test_a_garbled_impl_in_model_json_is_one_line(tmp_path):
    import dataclasses
    import json

    from sml.checkpoint import model_info

    (tmp_path / "model.json").write_text(json.dumps({"model": dataclasses.asdict(config("rope")), "vocab_size": 50,
                                                     "tokenizer_sha256": "0" * 64, "impl": "mine"}))
    with pytest.raises(SMLError, match=r"model\.json: not a readable model description \(impl 'mine' is not"):
        model_info(tmp_path)


def test_a_checkpoint_resumes_only_with_the_same_learner_files(solved):
    from sml.checkpoint import fingerprint_difference, run_fingerprint
    from sml.config import load_params
    from tests.conftest import PARAMS

    p, meta = load_params(PARAMS), {"train": {"tokens": 10}, "val": {"tokens": 2}}
    mine = load_mine(ImplConfig(**{**vars(REFERENCE), "attention": "mine"}), solved)
    before = run_fingerprint(p.model, p.train, "0" * 64, meta, {})
    after = run_fingerprint(p.model, p.train, "0" * 64, meta, {}, mine)
    assert fingerprint_difference(before, after).startswith("impl.attention: null -> ")  # another run: starts over
