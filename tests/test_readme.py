"""The README's promises, as a newcomer meets them.

- `make quick` then `make test` passes, in either order, and after a hand edit of params.yaml:
  `make quick` leaves the `cpu` preset's values in params.yaml (it is a `dvc exp run -S ...`).
  The suite reads its own tests/params.yaml; tests/conftest.py's guard stops any test that
  reads the user's params.yaml without being marked `working_copy`, and the marked ones run
  again here on a copy of the repository whose params.yaml DVC itself has rewritten the way
  `make quick` does, then edited by hand.
- That rewrite changes only the preset's values (params.yaml is laid out the way DVC writes).
- The README's Python code runs as written.
"""

import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sml.config import load_preset
from stages.experiment import set_args
from tests.conftest import ROOT, WORKING_PARAMS, WorkingCopyTouched, params_template


def make_quick_params(path: Path) -> None:
    """Do to ``path`` what `make quick` does to params.yaml, with DVC's own code for -S."""
    from dvc.utils.hydra import apply_overrides

    apply_overrides(str(path), set_args(load_preset(path, "cpu")))


@pytest.mark.working_copy
def test_make_quick_changes_only_the_preset_values_in_params_yaml(tmp_path):
    copy = tmp_path / "params.yaml"
    shutil.copy(WORKING_PARAMS, copy)
    before = copy.read_text(encoding="utf-8").splitlines()
    make_quick_params(copy)
    after = copy.read_text(encoding="utf-8").splitlines()
    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    keys = {line[1:].split(":")[0].strip() for line in changed}
    preset_keys = {key.split(".")[1] for key in load_preset(WORKING_PARAMS, "cpu")}
    assert keys <= preset_keys, changed  # nothing but values of the preset's keys moved


def test_the_guard_keeps_an_unmarked_test_off_the_working_copy(tmp_path):
    """What tests/conftest.py promises, for this test as for any other test without the mark."""
    assert Path.cwd() != ROOT and not Path("params.yaml").exists()  # relative paths miss the repository
    with pytest.raises(WorkingCopyTouched, match="reads the working copy's params.yaml"):
        WORKING_PARAMS.read_text(encoding="utf-8")
    with pytest.raises(WorkingCopyTouched, match="in the repository root"):
        subprocess.run([sys.executable, "-m", "stages.sample", "--help"], cwd=ROOT, capture_output=True)
    with pytest.raises(WorkingCopyTouched, match="passes the working copy's params.yaml"):
        subprocess.run([sys.executable, "-m", "stages.fit", "--params", str(WORKING_PARAMS)], cwd=tmp_path)
    probe = ROOT / "artifacts" / "guard-probe.txt"
    try:
        with pytest.raises(WorkingCopyTouched, match="writes .* into the repository"):
            probe.write_text("a test must not write here")
    finally:
        probe.unlink(missing_ok=True)
    assert params_template()["model"]["n_layer"] == 1  # the suite's own params are there to read


@pytest.mark.e2e
@pytest.mark.working_copy
def test_the_working_copy_tests_pass_after_make_quick_and_a_hand_edit(tmp_path, request):
    """The only tests that read the user's params.yaml, on a copy after `make quick` and an edit."""
    marked = [item.nodeid for item in request.session.items
              if item.get_closest_marker("working_copy") and item.nodeid != request.node.nodeid]
    assert marked  # (this module's own first test, at least; with none, pytest would run everything)
    repo = tmp_path / "clone"
    for name in ("sml", "stages", "tests", "mine"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("params.yaml", "pyproject.toml"):  # pyproject.toml: pytest's settings
        shutil.copy(ROOT / name, repo / name)
    params = repo / "params.yaml"
    make_quick_params(params)
    quick = load_preset(WORKING_PARAMS, "cpu")
    text = params.read_text(encoding="utf-8")
    assert f"max_iters: {quick['train.max_iters']}" in text and f"n_layer: {quick['model.n_layer']}" in text
    edited = re.sub(r"(?m)^(  n_layer: )\d+", r"\g<1>3", re.sub(r"(?m)^(  lr: )\S+", r"\g<1>2.5e-3", text))
    assert edited != text
    params.write_text(edited, encoding="utf-8")
    # `python -m` puts the copy first on sys.path: its sml, stages and tests are the ones run.
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n0", *marked], cwd=repo,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(rf"\b{len(marked)} passed", result.stdout), (marked, result.stdout[-2000:])


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """A directory laid out like the repository after `make quick`, with a tiny model in it."""
    import dataclasses
    import io

    from sml.config import load_params
    from sml.data.encode import encode_corpus
    from sml.data.sources import Source, build_corpus
    from sml.run.trainer import TrainFiles, train
    from sml.tokenizer import Tokenizer
    from tests.conftest import MIXED, SONNET, TEST_PARAMS

    monkeypatch.chdir(tmp_path)
    source = Path("source.txt")
    source.write_text(SONNET * 6 + MIXED, encoding="utf-8")
    build_corpus([Source(source, "text", "data.sources[0]")], [], Path("data/corpus"), val_fraction=0.1)
    Tokenizer.train(Path("data/corpus/train.txt").read_text(encoding="utf-8"), 300, "gpt4").save("artifacts/tokenizer")
    tok = Tokenizer.load("artifacts/tokenizer/tokenizer.json")
    encode_corpus(Path("data/corpus"), tok, Path("data/tokens"))
    p = load_params(TEST_PARAMS)
    model = dataclasses.replace(p.model, n_layer=1, n_head=2, n_embd=32, block_size=32)
    cfg = dataclasses.replace(p.train, device="cpu", dtype="float32", compile=False, batch_size=4, max_iters=10,
                              warmup_iters=2, eval_interval=10, eval_iters=2, log_interval=5,
                              checkpoint_interval=10, patience=0, nproc=1, deterministic=False, time_budget_s=0.0)
    train(model, cfg, TrainFiles(Path("data/tokens"), Path("artifacts/tokenizer/tokenizer.json"),
                                 Path("artifacts/checkpoint/checkpoint.pt"), Path("artifacts/model"),
                                 Path("artifacts/train_log.tsv"), Path("artifacts/train_metrics.json")),
          out=io.StringIO())
    return tmp_path


@pytest.mark.e2e
def test_the_readme_python_runs_as_written(trained, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2  # the tokenizer, and the trained model
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "ROMEO:" in printed and re.search(r"\d+\.\d+ bits/char", printed)


def test_the_readme_own_data_example_is_a_valid_data_section():
    """README, "Your own data": the YAML shown must be what params.yaml accepts."""
    from sml.config import parse_params

    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert blocks, "README has no YAML example"
    example = yaml.safe_load(blocks[0])
    raw = params_template()
    raw["data"] = {**raw["data"], **example["data"]}  # the example gives every key but special_in_text
    assert set(example["data"]) | {"special_in_text"} == set(raw["data"])
    data = parse_params(raw).data
    assert [s.format for s in data.sources] == ["jsonl", "text"] and data.val_sources == ()
