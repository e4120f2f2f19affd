"""The DVC pipeline in a throwaway git repo on a tiny corpus: what reruns after what change."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, local_sources, params_template

DVC = [sys.executable, "-m", "dvc"]


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "SML_DATA_MIRROR": "",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    # Stage commands say `python`: make it this interpreter, with SML installed.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def ran(output: str) -> list[str]:
    """The stages a `dvc repro` output says it ran."""
    return re.findall(r"Running stage '(\w+)'", output)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git + DVC repo holding SML's pipeline, pointed at a tiny local corpus of two files."""
    from tests.conftest import MIXED, SONNET

    repo = tmp_path_factory.mktemp("repo")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    for package in ("sml", "stages", "mine"):  # mine/: the learner's stubs, deps of the model's stages
        shutil.copytree(ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    corpus = [repo.parent / "tiny.txt", repo.parent / "stories.jsonl.gz"]  # two sources, two formats
    corpus[0].write_text(SONNET * 3 + MIXED, encoding="utf-8")
    stories = [{"text": f"Story {i}. {SONNET[i * 20 : i * 20 + 300]}"} for i in range(20)]
    corpus[1].write_bytes(gzip.compress("".join(json.dumps(s) + "\n" for s in stories).encode()))
    params = pipeline_params(params_template(), corpus)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], repo)
    run([*DVC, "init", "-q"], repo)
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    return repo


def pipeline_params(template: dict, corpus: list[Path]) -> dict:
    """The throwaway repo's params.yaml: the template's keys, every value the tests rely on set here.

    tests/test_readme.py checks that a template after `make quick` gives the same result.
    """
    params = {section: dict(keys) for section, keys in template.items() if section != "presets"}
    params["data"].update(sources=local_sources(corpus[0]) + local_sources(*corpus[1:], fmt="jsonl"),
                          val_sources=[], val_fraction=0.1)
    params["tokenizer"].update(vocab_size=320, train_bytes=1 << 30)
    params["model"].update(n_layer=1, n_head=2, n_embd=32, block_size=32, dropout=0.1)
    params["train"].update(device="cpu", lr=1e-3, min_lr=1e-4, max_iters=20, batch_size=4, eval_interval=10,
                           eval_iters=2, log_interval=5, checkpoint_interval=10, warmup_iters=2, patience=0,
                           nproc=1, deterministic=False, time_budget_s=0, dtype="float32")
    params["evaluate"].update(device="cpu", prompts=["ROMEO:"], max_new_tokens=20, max_tokens=1_000_000)
    params["sample"].update(device="cpu", prompts=["ROMEO:", ""], max_new_tokens=20, temperature=0.8)
    params["plot"]["layer"] = 0
    params["presets"] = {"tiny": {"train.lr": 0.004, "model.n_embd": 16}}
    return params


def set_param(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params[section][key] != value, f"{section}.{key} is {value} already: the test would change nothing"
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


ALL = ["download", "train_bpe", "encode", "train", "evaluate", "sample", "plot"]


def test_repro_runs_every_stage_then_nothing(repo):
    output = run([*DVC, "repro"], repo)
    assert ran(output) == ALL
    assert re.search(r"step +20/20  train \d+\.\d{3} val \d+\.\d{3} bits/char .* s, 0 s left", output)
    assert re.search(r"evaluate: val: scoring all [\d,]+ tokens \.\.\. \d", output)
    for out in ("data/corpus/train.txt", "data/corpus/val.txt", "artifacts/tokenizer/tokenizer.json",
                "artifacts/tokenizer/vocab.txt", "data/tokens/train.bin", "data/tokens/val.bin",
                "data/tokens/meta.json", "artifacts/model/model.pt", "artifacts/train_log.tsv",
                "artifacts/train_metrics.json", "artifacts/checkpoint/checkpoint.pt",
                "artifacts/eval_metrics.json", "artifacts/samples.md", "artifacts/plots/loss.png",
                "artifacts/plots/lr.png", "artifacts/plots/attention.png",
                "artifacts/plots/token_lengths.png"):
        assert (repo / out).is_file(), out
    assert ran(run([*DVC, "repro"], repo)) == []
    assert "up to date" in run([*DVC, "status"], repo)


def test_vocab_size_reruns_train_bpe_and_what_follows_never_download(repo):
    run([*DVC, "repro"], repo)
    set_param(repo, "tokenizer", "vocab_size", 330)
    assert ran(run([*DVC, "repro"], repo)) == ALL[1:]
    assert '"vocab_size": 330' in (repo / "data/tokens/meta.json").read_text()


def test_val_fraction_reruns_everything_the_tokenizer_learns_from_the_train_text_alone(repo):
    run([*DVC, "repro"], repo)
    set_param(repo, "data", "val_fraction", 0.2)
    assert ran(run([*DVC, "repro"], repo)) == ALL


def test_sample_temperature_reruns_only_sample(repo):
    run([*DVC, "repro"], repo)
    set_param(repo, "sample", "temperature", 0.5)
    assert ran(run([*DVC, "repro"], repo)) == ["sample"]
    assert "temperature 0.5" in (repo / "artifacts/samples.md").read_text()


def test_train_lr_reruns_train_and_what_reads_the_model(repo):
    run([*DVC, "repro"], repo)
    set_param(repo, "train", "lr", 0.002)
    assert ran(run([*DVC, "repro"], repo)) == ["train", "evaluate", "sample", "plot"]
    shown = run([*DVC, "metrics", "show"], repo)
    for metric in ("val_bits_per_char", "tokens_per_s", "val.bits_per_char", "bigram_val.nats_per_token",
                   "samples.distinct_2"):
        assert metric in shown, metric
    assert "loss.png" in run([*DVC, "plots", "show", "--json"], repo)


def test_a_preset_runs_as_a_dvc_experiment_that_exp_show_lists(repo):
    run([*DVC, "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
    output = run([sys.executable, "-m", "stages.experiment", "tiny", "--name", "tiny-run"], repo)
    assert "-S train.lr=0.004 -S model.n_embd=16" in output
    assert ran(output) == ["train", "evaluate", "sample", "plot"]
    shown = run([*DVC, "exp", "show", "--no-pager", "--csv"], repo)
    row = next(line for line in shown.splitlines() if line.startswith("tiny-run,"))
    assert ",0.004," in row and ",16," in row
    header = shown.splitlines()[0].split(",")
    for metric in ("val_bits_per_char", "val.bits_per_char", "samples.distinct_2"):
        assert float(row.split(",")[header.index(metric)]) > 0, metric  # a number, not "!"
    assert "val_bits_per_char" in run([*DVC, "metrics", "diff", "HEAD", "tiny-run"], repo)
    table = run([sys.executable, "-m", "stages.show"], repo).splitlines()  # make show
    assert table[0].startswith("experiment  val bits/char  train bits/char  best step  train s")
    line = next(line for line in table if line.startswith("tiny-run"))
    assert re.search(r"tiny-run +\d+\.\d{4} +\d+\.\d{4} +\d+ +\d+\.\d  preset tiny$", line), line


def test_sample_streams_one_prompt_from_the_command_line(repo):
    run([*DVC, "repro"], repo)
    before = (repo / "artifacts/samples.md").read_text()
    output = run([sys.executable, "-m", "stages.sample", "--prompt", "ROMEO:", "--temperature", "0",
                  "--max-new-tokens", "12"], repo)
    assert output.startswith("ROMEO:") and len(output) > len("ROMEO:")
    again = run([sys.executable, "-m", "stages.sample", "--prompt", "ROMEO:", "--temperature", "0",
                 "--max-new-tokens", "12"], repo)
    assert again == output  # greedy is deterministic
    assert "(empty prompt: starting from <|endoftext|>)" in run(
        [sys.executable, "-m", "stages.sample", "--prompt", "", "--max-new-tokens", "5"], repo)
    assert (repo / "artifacts/samples.md").read_text() == before  # --prompt writes no file
    # A prompt that is not UTF-8 (a shell's $'ROMEO\xff:'): read as U+FFFD, never a traceback.
    odd = run([sys.executable, "-m", "stages.sample", "--prompt", "ROMEO\udcff:", "--max-new-tokens", "5"], repo)
    assert odd.startswith("ROMEO\ufffd:") and "Traceback" not in odd


def test_a_finished_run_reruns_after_any_train_change_and_after_repro_f(repo):
    """Once stuck: DVC deletes train's outputs, the checkpoint is already at max_iters, and
    the stage must still write every output (and leave no temporary file in them)."""
    run([*DVC, "repro"], repo)
    (repo / "artifacts/model/.model.pt.k1ll3d.tmp").write_bytes(b"half a file")  # a kill -9 left it
    set_param(repo, "train", "log_interval", 10)  # not in the fingerprint: the checkpoint resumes
    output = run([*DVC, "repro"], repo)
    assert "train" in ran(output) and "resuming at step 20" in output
    assert not list((repo / "artifacts").rglob("*.tmp"))
    set_param(repo, "evaluate", "max_new_tokens", 12)  # a change in each of the last two sections too
    set_param(repo, "plot", "layer", 1)
    assert ran(run([*DVC, "repro"], repo)) == ["evaluate", "plot"]
    output = run([*DVC, "repro", "-f"], repo)
    assert ran(output) == ALL
    assert "up to date" in run([*DVC, "status"], repo)


def test_the_learners_parts_train_to_the_references_loss_and_sample(repo):
    """Every impl key set to mine, with correct parts in mine/: the same run as the reference's (the
    tokenizer, the token files, the model and its loss), and the micrograd lesson runs with theirs."""
    from sml.parts import MODEL_PARTS, PARTS

    shipped = (repo / "params.yaml").read_text()
    params = yaml.safe_load(shipped)
    params["model"]["dropout"] = 0.0  # the learner's attention draws its dropout masks another way
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        run([*DVC, "repro", "train"], repo)
        reference = json.loads((repo / "artifacts/train_metrics.json").read_text())["val_loss"]
        for part in PARTS:
            shutil.copy(ROOT / "tests" / "solutions" / f"{part}.py", repo / "mine" / f"{part}.py")
        params["impl"] = dict.fromkeys(PARTS, "mine")
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        output = run([*DVC, "repro", "sample"], repo)
        assert ran(output) == ["train_bpe", "encode", "train", "sample"]
        assert "merges (mine/bpe.py)" in output and "python (mine/bpe.py) backend" in output
        assert abs(json.loads((repo / "artifacts/train_metrics.json").read_text())["val_loss"] - reference) < 1e-4
        assert json.loads((repo / "artifacts/model/model.json").read_text())["impl"] == dict.fromkeys(MODEL_PARTS,
                                                                                                     "mine")
        assert "## Prompt 1: 'ROMEO:'" in (repo / "artifacts/samples.md").read_text()
        lesson = run([sys.executable, "-m", "stages.micrograd", "--points", "20", "--hidden", "4", "--steps", "5"],
                     repo)
        assert "MLP 2-4-4-1 (mine/micrograd.py's Value)" in lesson and "training accuracy" in lesson
        params["impl"]["attention"] = "reference"  # the model's record and the params disagree: refused
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        result = subprocess.run([sys.executable, "-m", "stages.sample"], cwd=repo, capture_output=True, text=True)
        assert result.returncode == 1
        assert result.stderr.strip() == ("error: artifacts/model was trained with impl.attention = 'mine', but"
                                         " params.yaml says 'reference': set it back, or retrain (dvc repro train)")
    finally:
        (repo / "params.yaml").write_text(shipped)
        for part in PARTS:
            shutil.copy(ROOT / "mine" / f"{part}.py", repo / "mine" / f"{part}.py")
