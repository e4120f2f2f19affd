"""The DVC pipeline in a throwaway git repo on a tiny corpus: what reruns after what change.

The repository is built and reproduced once per test run (``built``, every stage for real);
each test changes its own copy (``repo``). What reruns after a change is read from ``dvc
status`` where running the stage would show nothing more: DVC reruns exactly the stages it
reports changed, and those whose inputs then change. A stage runs for real where the test is
about what it does (the sample after a temperature change, train resuming, an experiment).
"""

import contextlib
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

from tests.conftest import ROOT, built_once, command, local_sources, params_template

pytestmark = pytest.mark.e2e
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


def stale(repo: Path) -> dict[str, list[str]]:
    """What `dvc status` says would rerun: stage -> what changed (params keys, or dependency paths).
    Asked through DVC's Python API, the same call as the command's, without starting a process."""
    from dvc.repo import Repo

    with contextlib.chdir(repo), Repo() as dvc:  # (stages are named relative to where one stands)
        status = dvc.status()
    changed = {}
    for stage, reasons in status.items():
        for reason in reasons:
            for path, what in reason.get("changed deps", {}).items():
                changed.setdefault(stage, []).extend(what if isinstance(what, dict) else [path])
    return {stage: sorted(what) for stage, what in changed.items()}


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> tuple[Path, str]:
    """A git + DVC repo holding SML's pipeline, on a tiny local corpus of two files, after one
    whole `dvc repro` (committed: an experiment needs a commit); and what that repro printed."""
    repo = built_once(tmp_path_factory, "pipeline", build_repository) / "repo"
    return repo, (repo.parent / "repro.txt").read_text(encoding="utf-8")


def build_repository(root: Path) -> None:
    """Lay out the repository under ``root`` (its corpus beside it), reproduce it and commit."""
    from tests.conftest import MIXED, SONNET

    repo = root / "repo"
    repo.mkdir(parents=True)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    for package in ("sml", "stages", "mine"):  # mine/: the learner's stubs, deps of the model's stages
        shutil.copytree(ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    corpus = [root / "tiny.txt", root / "stories.jsonl.gz"]  # two sources, two formats
    corpus[0].write_text(SONNET * 3 + MIXED, encoding="utf-8")
    stories = [{"text": f"Story {i}. {SONNET[i * 20 : i * 20 + 300]}"} for i in range(20)]
    corpus[1].write_bytes(gzip.compress("".join(json.dumps(s) + "\n" for s in stories).encode()))
    talks = [{"messages": [{"role": "user", "content": f"Line {i}?"},
                           {"role": "assistant", "content": SONNET[i * 30 : i * 30 + 60]}]} for i in range(20)]
    (root / "chats.jsonl").write_text("".join(json.dumps(t) + "\n" for t in talks), encoding="utf-8")
    (repo / "params.yaml").write_text(yaml.safe_dump(pipeline_params(corpus), sort_keys=False))
    run(["git", "init", "-q"], repo)
    run([*DVC, "init", "-q"], repo)
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    (root / "repro.txt").write_text(run([*DVC, "repro"], repo), encoding="utf-8")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)


@pytest.fixture
def repo(built, tmp_path) -> Path:
    """This test's own copy of the built repository (git, DVC's cache and state, every output)."""
    copy = tmp_path / "repo"
    shutil.copytree(built[0], copy, symlinks=True)
    return copy


def pipeline_params(corpus: list[Path]) -> dict:
    """The throwaway repo's params.yaml: the suite's own, on the two sources, with a preset."""
    params = params_template()
    params["data"].update(sources=local_sources(corpus[0]) + local_sources(*corpus[1:], fmt="jsonl"))
    params["tokenizer"]["vocab_size"] = 320
    params["finetune"].update(sources=local_sources(corpus[0].with_name("chats.jsonl"), fmt="jsonl"))
    params["presets"] = {"tiny": {"train.lr": 0.004, "model.n_embd": 16}}
    return params


def set_param(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params[section][key] != value, f"{section}.{key} is {value} already: the test would change nothing"
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


ALL = ["parts", "download", "train_bpe", "encode", "train", "evaluate", "sample", "plot", "conversations", "finetune",
       "evaluate_chat"]
READ_THE_MODEL = ["evaluate", "sample", "plot", "finetune", "evaluate_chat"]
NEW_TOKENIZER = ["train", "evaluate", "sample", "plot", "conversations", "finetune", "evaluate_chat"]  # and its model


def test_repro_runs_every_stage_then_nothing(built, repo):
    output = built[1]
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
    assert ran(run([*DVC, "repro"], repo)) == []  # in a copy too: DVC goes by content, not by path
    assert "up to date" in run([*DVC, "status"], repo)


def test_vocab_size_reruns_train_bpe_and_what_follows_never_download(repo):
    set_param(repo, "tokenizer", "vocab_size", 330)
    assert stale(repo) == {"train_bpe": ["tokenizer.vocab_size"]}
    assert ran(run([*DVC, "repro", "encode"], repo)) == ["train_bpe", "encode"]
    assert '"vocab_size": 330' in (repo / "data/tokens/meta.json").read_text()
    assert list(stale(repo)) == NEW_TOKENIZER  # a new tokenizer: everything after it


def test_val_fraction_reruns_everything_the_tokenizer_learns_from_the_train_text_alone(repo):
    set_param(repo, "data", "val_fraction", 0.2)
    assert stale(repo) == {"download": ["data.val_fraction"]}
    assert ran(run([*DVC, "repro", "encode"], repo)) == ["download", "train_bpe", "encode"]
    assert list(stale(repo)) == NEW_TOKENIZER


def test_sample_temperature_reruns_only_sample(repo):
    set_param(repo, "sample", "temperature", 0.5)
    assert ran(run([*DVC, "repro"], repo)) == ["sample"]
    assert "temperature 0.5" in (repo / "artifacts/samples.md").read_text()


def test_train_lr_reruns_train_and_what_reads_the_model(repo):
    set_param(repo, "train", "lr", 0.002)
    assert stale(repo) == {"train": ["train"], "finetune": ["train"]}  # fine-tuning runs with train's settings
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]  # the rerun itself: the experiment below
    assert [name for name, spec in stages.items() if "artifacts/model" in spec["deps"]] == READ_THE_MODEL
    shown = run([*DVC, "metrics", "show"], repo)
    for metric in ("val_bits_per_char", "tokens_per_s", "val.bits_per_char", "bigram_val.nats_per_token",
                   "samples.distinct_2"):
        assert metric in shown, metric
    assert "loss.png" in run([*DVC, "plots", "show", "--json"], repo)


def test_a_preset_runs_as_a_dvc_experiment_that_exp_show_lists(repo):
    output = run([sys.executable, "-m", "stages.experiment", "tiny", "--name", "tiny-run"], repo)
    assert "-S train.lr=0.004 -S model.n_embd=16" in output
    assert ran(output) == ["train", *READ_THE_MODEL]  # a change to train: it and what reads the model rerun
    shown = run([*DVC, "exp", "show", "--no-pager", "--csv"], repo)
    row = next(line for line in shown.splitlines() if line.startswith("tiny-run,"))
    assert ",0.004," in row and ",16," in row
    header = shown.splitlines()[0].split(",")
    for metric in ("val_bits_per_char", "val.bits_per_char", "samples.distinct_2", "finetune.val_bits_per_char",
                   "chat.val_bits_per_char", "chat.ends_with_end"):
        assert float(row.split(",")[header.index(metric)]) >= 0, metric  # a number, not "!"
    assert "val_bits_per_char" in run([*DVC, "metrics", "diff", "HEAD", "tiny-run"], repo)
    table = run([sys.executable, "-m", "stages.show"], repo).splitlines()  # make show
    assert table[0].startswith("experiment  val bits/char  train bits/char  best step  train s")
    line = next(line for line in table if line.startswith("tiny-run"))
    assert re.search(r"tiny-run +\d+\.\d{4} +\d+\.\d{4} +\d+ +\d+\.\d  preset tiny$", line), line


def here(repo: Path, monkeypatch, module: str, *args: str):
    """``python -m <module> ARGS`` in ``repo``, in this process (torch is imported already)."""
    monkeypatch.chdir(repo)
    return command(module, *args)


def test_sample_streams_one_prompt_from_the_command_line(repo, monkeypatch):
    before = (repo / "artifacts/samples.md").read_text()
    greedy = ["--prompt", "ROMEO:", "--temperature", "0", "--max-new-tokens", "12"]
    output = here(repo, monkeypatch, "stages.sample", *greedy).stdout  # (the stage's process: the tests above)
    assert output.startswith("ROMEO:") and len(output) > len("ROMEO:")
    again = here(repo, monkeypatch, "stages.sample", *greedy)
    assert again.returncode == 0 and again.stdout == output  # greedy is deterministic
    empty = here(repo, monkeypatch, "stages.sample", "--prompt", "", "--max-new-tokens", "5")
    assert "(empty prompt: starting from <|endoftext|>)" in empty.stdout + empty.stderr
    # A prompt that is not UTF-8 (a shell's $'ROMEO\xff:' arrives as a lone surrogate): U+FFFD, no traceback.
    odd = here(repo, monkeypatch, "stages.sample", "--prompt", "ROMEO\udcff:", "--max-new-tokens", "5")
    assert odd.returncode == 0 and odd.stdout.startswith("ROMEO\ufffd:")  # (a traceback: exit 2)
    assert (repo / "artifacts/samples.md").read_text() == before  # --prompt writes no file


def test_a_finished_run_reruns_after_any_train_change_and_after_repro_f(repo):
    """Once stuck: DVC deletes train's outputs, the checkpoint is already at max_iters, and
    the stage must still write every output (and leave no temporary file in them)."""
    (repo / "artifacts/model/.model.pt.k1ll3d.tmp").write_bytes(b"half a file")  # a kill -9 left it
    set_param(repo, "train", "log_interval", 10)  # not in the fingerprint: the checkpoint resumes
    output = run([*DVC, "repro", "train"], repo)
    assert ran(output) == ["train"] and "resuming at step 20" in output
    assert not list((repo / "artifacts").rglob("*.tmp"))
    output = run([*DVC, "repro", "--force", "--single-item", "train"], repo)  # what `dvc repro -f` does to train
    assert ran(output) == ["train"] and "resuming at step 20" in output
    for out in ("model/model.pt", "model/model.json", "train_log.tsv", "train_metrics.json"):
        assert (repo / "artifacts" / out).is_file(), out


def test_a_plot_layer_past_the_model_draws_the_last_layer_and_says_so(repo, monkeypatch):
    set_param(repo, "plot", "layer", 99)
    done = here(repo, monkeypatch, "stages.plot")
    assert done.returncode == 0, done.stderr
    assert "plot: plot.layer = 99, but the model has 1 layers (0..0): drawing layer 0" in done.stdout


def test_a_change_in_evaluate_or_plot_reruns_that_stage_alone(repo):
    set_param(repo, "evaluate", "max_new_tokens", 12)
    set_param(repo, "plot", "layer", 1)
    assert stale(repo) == {"evaluate": ["evaluate"], "plot": ["plot"]}


def test_a_stub_edited_while_its_part_is_the_reference_retrains_nothing(repo):
    """The model's stages depend on the part records (stages/parts.py), not on mine/: a stub no
    part runs can change at will; once its part is the learner's, its file decides."""
    with (repo / "mine" / "attention.py").open("a", encoding="utf-8") as stub:
        stub.write("\n# a note to myself\n")
    assert set(stale(repo)) == {"parts"}
    assert ran(run([*DVC, "repro"], repo)) == ["parts"]  # every record as it was: nothing after it reruns
    shutil.copy(ROOT / "tests" / "solutions" / "attention.py", repo / "mine" / "attention.py")
    set_param(repo, "impl", "attention", "mine")
    run([*DVC, "repro", "parts"], repo)
    assert set(stale(repo)) == {"train", "evaluate", "sample", "plot", "finetune", "evaluate_chat"}
    assert "artifacts/parts/attention.json" in stale(repo)["train"]


def test_the_learners_parts_train_to_the_references_loss_and_sample(built, repo, monkeypatch):
    """Every impl key set to mine, with correct parts in mine/: the same run as the reference's (the
    tokenizer, the token files, the model and its loss), and the micrograd lesson runs with theirs."""
    from sml.learn.mine import MODEL_PARTS, PARTS

    reference = json.loads((built[0] / "artifacts/train_metrics.json").read_text())["val_loss"]  # dropout 0
    for part in PARTS:
        shutil.copy(ROOT / "tests" / "solutions" / f"{part}.py", repo / "mine" / f"{part}.py")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["impl"] = dict.fromkeys(PARTS, "mine")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = run([*DVC, "repro", "sample"], repo)
    assert ran(output) == ["parts", "train_bpe", "encode", "train", "sample"]
    assert "merges (mine/bpe.py)" in output and "python (mine/bpe.py) backend" in output
    assert abs(json.loads((repo / "artifacts/train_metrics.json").read_text())["val_loss"] - reference) < 1e-4
    assert json.loads((repo / "artifacts/model/model.json").read_text())["impl"] == dict.fromkeys(MODEL_PARTS,
                                                                                                 "mine")
    assert "## Prompt 1: 'ROMEO:'" in (repo / "artifacts/samples.md").read_text()
    lesson = here(repo, monkeypatch, "stages.micrograd", "--points", "20", "--hidden", "4", "--steps", "5").stdout
    assert "MLP 2-4-4-1 (mine/micrograd.py's Value)" in lesson and "training accuracy" in lesson
    params["impl"]["attention"] = "reference"  # the model's record and the params disagree: refused
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = here(repo, monkeypatch, "stages.sample")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: artifacts/model was trained with your mine/attention.py"
                                            " (impl.attention: mine) and is loaded with SML's attention: set"
                                            " impl.attention: mine in params.yaml")
