"""The README's promises, as a newcomer meets them.

- `make quick` then `make test` passes, in either order: `make quick` leaves the `cpu`
  preset's values in params.yaml (it is a `dvc exp run -S ...`), and no test may depend on
  them. The suite's readers of params.yaml run again here on a copy of the repository whose
  params.yaml DVC itself has rewritten the way `make quick` does; all but the slow modules
  that run the stages (pipeline, faults, distributed), whose own params files are shown to be
  the very same either way.
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
from tests.conftest import PARAMS, ROOT, params_template

TESTS = ROOT / "tests"
# The modules that read the working copy's params.yaml (through tests/conftest.py).
READERS = sorted(p.name for p in TESTS.glob("test_*.py")
                 if p.name != Path(__file__).name and re.search(r"\b(PARAMS|params_template)\b", p.read_text()))
# The slow modules that run the stages write their own params.yaml from the template: they are
# shown to get the very same one either way (test_the_slow_tests_get_the_same_params_...).
SLOW = {"test_pipeline.py", "test_faults.py", "test_distributed.py"}
RERUN = [name for name in READERS if name not in SLOW]


def make_quick_params(path: Path) -> None:
    """Do to ``path`` what `make quick` does to params.yaml, with DVC's own code for -S."""
    from dvc.utils.hydra import apply_overrides

    apply_overrides(str(path), set_args(load_preset(path, "cpu")))


def test_make_quick_changes_only_the_preset_values_in_params_yaml(tmp_path):
    copy = tmp_path / "params.yaml"
    shutil.copy(PARAMS, copy)
    before = copy.read_text(encoding="utf-8").splitlines()
    make_quick_params(copy)
    after = copy.read_text(encoding="utf-8").splitlines()
    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    keys = {line[1:].split(":")[0].strip() for line in changed}
    preset_keys = {key.split(".")[1] for key in load_preset(PARAMS, "cpu")}
    assert keys <= preset_keys, changed  # nothing but values of the preset's keys moved


def test_every_test_module_reads_params_yaml_through_conftest():
    for path in TESTS.glob("*.py"):
        if path.name != "conftest.py":
            assert not re.search(r"ROOT\s*/\s*[\"']params\.yaml", path.read_text()), path.name
    assert {"test_config.py", "test_train.py", "test_pipeline.py", "test_stages.py"} <= set(READERS)


def test_the_suite_passes_after_make_quick(tmp_path):
    repo = tmp_path / "clone"
    for name in ("sml", "stages", "tests", "mine"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("params.yaml", "dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml", ".dvc/config"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    make_quick_params(repo / "params.yaml")
    quick = load_preset(PARAMS, "cpu")
    assert f"max_iters: {quick['train.max_iters']}" in (repo / "params.yaml").read_text(encoding="utf-8")
    assert f"time_budget_s: {quick['train.time_budget_s']}" in (repo / "params.yaml").read_text(encoding="utf-8")
    # `python -m` puts the copy first on sys.path: its sml, stages and tests are the ones run.
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *(
        f"tests/{name}" for name in RERUN)], cwd=repo, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout) and "failed" not in result.stdout


def test_the_slow_tests_get_the_same_params_after_make_quick(tmp_path):
    from tests.test_distributed import distributed_params
    from tests.test_faults import tiny_params
    from tests.test_pipeline import pipeline_params

    corpus = [tmp_path / "tiny.txt", tmp_path / "stories.jsonl"]
    corpus[0].write_text("a tiny corpus\n", encoding="utf-8")
    corpus[1].write_text('{"text": "a story"}\n', encoding="utf-8")
    quick = tmp_path / "params.yaml"
    shutil.copy(PARAMS, quick)
    make_quick_params(quick)
    after = yaml.safe_load(quick.read_text(encoding="utf-8"))
    assert after["train"]["max_iters"] == load_preset(PARAMS, "cpu")["train.max_iters"]
    assert pipeline_params(after, corpus) == pipeline_params(params_template(), corpus)
    assert tiny_params(corpus[0], 300, after) == tiny_params(corpus[0], 300, params_template())
    assert distributed_params(after, nproc=2) == distributed_params(params_template(), nproc=2)
    assert after != params_template()  # the preset did change something: the three above could differ


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """A directory laid out like the repository after `make quick`, with a tiny model in it."""
    import dataclasses
    import io

    from sml.config import load_params
    from sml.encode import encode_corpus
    from sml.sources import Source, build_corpus
    from sml.tokenizer import Tokenizer
    from sml.train import TrainFiles, train
    from tests.conftest import MIXED, SONNET

    monkeypatch.chdir(tmp_path)
    source = Path("source.txt")
    source.write_text(SONNET * 6 + MIXED, encoding="utf-8")
    build_corpus([Source(source, "text", "data.sources[0]")], [], Path("data/corpus"), val_fraction=0.1)
    Tokenizer.train(Path("data/corpus/train.txt").read_text(encoding="utf-8"), 300, "gpt4").save("artifacts/tokenizer")
    tok = Tokenizer.load("artifacts/tokenizer/tokenizer.json")
    encode_corpus(Path("data/corpus"), tok, Path("data/tokens"))
    p = load_params(PARAMS)
    model = dataclasses.replace(p.model, n_layer=1, n_head=2, n_embd=32, block_size=32)
    cfg = dataclasses.replace(p.train, device="cpu", dtype="float32", compile=False, batch_size=4, max_iters=10,
                              warmup_iters=2, eval_interval=10, eval_iters=2, log_interval=5,
                              checkpoint_interval=10, patience=0, nproc=1, deterministic=False, time_budget_s=0.0)
    train(model, cfg, TrainFiles(Path("data/tokens"), Path("artifacts/tokenizer/tokenizer.json"),
                                 Path("artifacts/checkpoint/checkpoint.pt"), Path("artifacts/model"),
                                 Path("artifacts/train_log.tsv"), Path("artifacts/train_metrics.json")),
          out=io.StringIO())
    return tmp_path


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
