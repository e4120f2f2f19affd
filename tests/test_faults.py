"""Fault injection: every artifact a stage reads, damaged every way, and kill -9 mid-run; and
(``FAULT_CLASSES``) where each class of bad input from learners and strangers is tested.

Each damaged case asserts what a user would: the stage exits 1 with one line that names
the file and says what to do, or (for damage no check can see, listed in UNDETECTABLE with
the reason) it succeeds; never a traceback (exit 2: ``stages.common.stage``'s "internal
error"), and the damaged file is left as it was for the user to look at.
"""

import contextlib
import dataclasses
import importlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import MIXED, ROOT, SONNET, built_once, command, local_sources, params_template

STAGES = ("download", "train_bpe", "encode", "train", "evaluate", "sample", "plot", "conversations", "finetune",
          "evaluate_chat")

# What reads each artifact (the stages after the one that writes it).
READERS = {
    "data/corpus/train.txt": ["train_bpe", "encode", "evaluate"],
    "data/corpus/val.txt": ["encode"],
    "artifacts/tokenizer/tokenizer.json": ["encode", "train", "evaluate", "sample", "plot", "conversations",
                                           "finetune", "evaluate_chat"],
    "data/tokens/train.bin": ["train", "evaluate"],
    "data/tokens/val.bin": ["train", "evaluate"],
    "data/tokens/meta.json": ["train", "evaluate"],
    "artifacts/checkpoint/checkpoint.pt": ["train"],
    "artifacts/model/model.pt": ["evaluate", "sample", "plot", "finetune", "evaluate_chat"],
    "artifacts/model/model.json": ["evaluate", "sample", "plot", "finetune", "evaluate_chat"],
    "artifacts/train_log.tsv": ["plot"],
    "data/chat/conversations/val.jsonl": ["evaluate_chat"],
    "data/chat/tokenizer/tokenizer.json": ["finetune"],
    "data/chat/tokens/train.bin": ["finetune"],
    "data/chat/tokens/val.bin": ["finetune"],
    "data/chat/tokens/train.learn.bin": ["finetune"],
    "data/chat/tokens/val.learn.bin": ["finetune"],
    "data/chat/tokens/meta.json": ["finetune"],
    "artifacts/finetune_checkpoint/checkpoint.pt": ["finetune"],
    "artifacts/chat_model/model.pt": ["evaluate_chat"],
    "artifacts/chat_model/model.json": ["evaluate_chat"],
    "artifacts/chat_model/tokenizer.json": ["evaluate_chat"],
}
DAMAGE = ("emptied", "truncated", "garbled", "swapped", "deleted")

# Damage that leaves a valid file of the right kind: nothing in the file itself can tell.
# DVC can: the file's hash no longer matches dvc.lock, so `dvc repro` reruns the stage that
# writes it before any reader sees it.
UNDETECTABLE = {
    ("data/corpus/train.txt", "garbled", "train_bpe"): "still UTF-8 text: a tokenizer of other text",
    ("data/corpus/train.txt", "garbled", "encode"): "still UTF-8 text: other token ids",
    ("data/corpus/train.txt", "garbled", "evaluate"): "same size: only its words are read, for the known-word share",
    ("data/corpus/train.txt", "swapped", "train_bpe"): "another corpus is a corpus",
    ("data/corpus/train.txt", "swapped", "encode"): "another corpus is a corpus",
    ("data/corpus/train.txt", "truncated", "train_bpe"): "a shorter corpus is a corpus",
    ("data/corpus/train.txt", "truncated", "encode"): "a shorter corpus is a corpus",
    ("data/corpus/val.txt", "garbled", "encode"): "still UTF-8 text: other token ids",
    ("data/corpus/val.txt", "swapped", "encode"): "another val text is a val text",
    ("data/corpus/val.txt", "truncated", "encode"): "a shorter val text is a val text",
    ("artifacts/train_log.tsv", "swapped", "plot"): "another run's log of as many steps is a valid log",
    ("artifacts/tokenizer/tokenizer.json", "swapped", "encode"): "another tokenizer is a tokenizer; train"
                                                                 " then sees the vocabulary differ from the model's",
    ("artifacts/tokenizer/tokenizer.json", "swapped", "conversations"): "another tokenizer is a tokenizer; finetune"
                                                                        " then refuses it beside the model's",
    ("data/chat/conversations/val.jsonl", "swapped", "evaluate_chat"): "other conversations are conversations",
}
# Handled by design: the stage says what it does, and what it replaces was never this run's.
ON_PURPOSE = {
    ("artifacts/checkpoint/checkpoint.pt", "swapped", "train"): "another run's checkpoint: 'not resuming ...',"
                                                                 " and the run starts at step 0",
    ("artifacts/checkpoint/checkpoint.pt", "deleted", "train"): "no checkpoint: the run starts at step 0",
    ("artifacts/finetune_checkpoint/checkpoint.pt", "swapped", "finetune"): "another run's checkpoint: 'not"
                                                                             " resuming ...', step 0",
    ("artifacts/finetune_checkpoint/checkpoint.pt", "deleted", "finetune"): "no checkpoint: step 0",
}


def invoke(stage: str, *args: str):
    """``python -m stages.<stage> ARGS`` in this process."""
    return command(f"stages.{stage}", *args)


def tiny_params(corpus: Path, vocab_size: int) -> dict:
    """A tiny run's params.yaml: the suite's own, on ``corpus``, with every value the tests rely on set."""
    raw = params_template()
    raw["data"].update(sources=local_sources(corpus), val_sources=[], val_fraction=0.1)
    raw["tokenizer"].update(vocab_size=vocab_size, train_bytes=1 << 30)
    raw["model"].update(n_layer=1, n_head=2, n_embd=32, block_size=32, dropout=0.1)
    raw["train"].update(device="cpu", dtype="float32", compile=False, deterministic=False, nproc=1, batch_size=4,
                        max_iters=12, warmup_iters=2, lr=1e-3, min_lr=1e-4, eval_interval=4, eval_iters=2,
                        log_interval=4, checkpoint_interval=4, patience=0, time_budget_s=0)
    raw["evaluate"].update(device="cpu", prompts=["ROMEO:"], max_new_tokens=8, max_tokens=1_000_000)
    raw["sample"].update(device="cpu", prompts=["ROMEO:"], max_new_tokens=8)
    chats = {"url": str(corpus.with_name("chats.jsonl")), "sha256": "", "format": "jsonl"}  # make_run writes it
    raw["finetune"].update(sources=[chats], val_sources=[],
                           val_fraction=0.25, max_iters=8, warmup_iters=2, eval_interval=4, eval_iters=2,
                           log_interval=4, checkpoint_interval=4, patience=0, time_budget_s=0)
    raw["chat"].update(device="cpu", max_new_tokens=8, eval_conversations=2)
    return raw


def make_run(root: Path, text: str, vocab_size: int) -> Path:
    """A whole tiny pipeline's outputs under ``root``, made by the stage commands themselves."""
    root.mkdir(parents=True)
    corpus = root / "source.txt"
    corpus.write_text(text, encoding="utf-8")
    talks = [{"messages": [{"role": "user", "content": text[i * 40 : i * 40 + 20]},
                           {"role": "assistant", "content": text[i * 40 + 20 : i * 40 + 60]}]} for i in range(8)]
    (root / "chats.jsonl").write_text("".join(json.dumps(t) + "\n" for t in talks), encoding="utf-8")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(corpus, vocab_size)), encoding="utf-8")
    with contextlib.chdir(root):
        for stage in STAGES:
            result = invoke(stage)
            assert result.returncode == 0, (stage, result.stdout, result.stderr)
    # best.pt is what the run exports: keep the case where it and the last step differ for later
    return root


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    def build(base: Path) -> None:
        make_run(base / "a", SONNET * 6 + MIXED, 300)
        make_run(base / "b", (SONNET[::-1] + MIXED) * 4, 280)  # another run, to swap files with

    base = built_once(tmp_path_factory, "faults", build)
    return base / "a", base / "b"


def damage(path: Path, how: str, other: Path) -> None:
    data = path.read_bytes()
    if how == "emptied":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2 + 1])
    elif how == "garbled":  # 16 bytes in the middle changed, the length kept
        middle = len(data) // 2
        noise = bytes((b + 97) % 256 for b in data[middle : middle + 16])
        path.write_bytes(data[:middle] + noise + data[middle + 16 :])
    elif how == "swapped":
        shutil.copy(other, path)
    elif how == "deleted":
        path.unlink()


CASES = [(a, how, stage) for a, stages in READERS.items() for how in DAMAGE for stage in stages]


@pytest.mark.e2e
@pytest.mark.parametrize(("artifact", "how", "stage"), CASES, ids=["-".join(c) for c in CASES])
def test_a_damaged_artifact_is_one_line_or_harmless(runs, tmp_path, artifact, how, stage):
    original, other = runs
    case = tmp_path / "run"
    shutil.copytree(original, case, symlinks=True)
    target = case / artifact
    damage(target, how, other / artifact)
    before = target.read_bytes() if target.exists() else None
    with contextlib.chdir(case):
        result = invoke(stage)
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (0, 1), f"exit {result.returncode}: {result.stderr}{result.stdout}"
    if (artifact, how, stage) in ON_PURPOSE:
        assert result.returncode == 0 and "starting at step 0" in result.stdout + result.stderr or how == "deleted"
        return
    if result.returncode == 0:
        assert (artifact, how, stage) in UNDETECTABLE, f"{how} {artifact} accepted silently by {stage}"
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        named = Path(artifact).name in lines[0] or Path(artifact).parent.name in lines[0]
        assert named, f"the message does not name {artifact}: {lines[0]}"
        if artifact.startswith(("data/chat/tokens/", "data/chat/tokenizer/")):  # not "rerun the encode stage"
            assert "rerun the conversations stage" in lines[0], lines[0]
    assert (target.read_bytes() if target.exists() else None) == before  # left for the user to look at


def test_damage_cases_cover_every_reader():
    """The table above is the suite's scope: every artifact each stage reads is in it."""
    assert len(CASES) == sum(len(s) for s in READERS.values()) * len(DAMAGE)
    assert {s for stages in READERS.values() for s in stages} == set(STAGES) - {"download"}


@pytest.mark.e2e
def test_a_damaged_checkpoint_is_kept_and_the_rerun_after_deleting_it_trains(runs, tmp_path):
    case = tmp_path / "run"
    shutil.copytree(runs[0], case)
    damage(case / "artifacts/checkpoint/checkpoint.pt", "garbled", None)
    with contextlib.chdir(case):
        first = invoke("train")
        assert first.returncode == 1 and "delete artifacts/checkpoint to start the run over" in first.stderr
        shutil.rmtree("artifacts/checkpoint")  # what the message says
        again = invoke("train")
    assert again.returncode == 0, again.stderr


@pytest.mark.e2e
def test_kill_9_at_random_moments_then_a_rerun_ends_as_an_uninterrupted_run(tmp_path):
    """Killed outright, a run resumes from its last checkpoint and ends with exactly the
    weights of a run never killed; no temporary file is left in any output."""
    corpus = tmp_path / "source.txt"
    corpus.write_text(SONNET * 6 + MIXED, encoding="utf-8")
    raw = tiny_params(corpus, 300)
    raw["train"].update(max_iters=200, checkpoint_interval=7, log_interval=5, eval_interval=50)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for root in (straight, killed):
        root.mkdir()
        (root / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
        with contextlib.chdir(root):
            for stage in ("download", "train_bpe", "encode"):
                assert invoke(stage).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-m", "stages.train"], cwd=straight, env=env,
                          capture_output=True, timeout=300).returncode == 0
    rng = random.Random(7)
    kills, saved = 0, killed / "artifacts/checkpoint/checkpoint.json"
    for _ in range(3):
        last = max(_step_of(saved), 0) if saved.exists() else 0
        proc = subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=killed, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait for this attempt's first new checkpoint (so it got somewhere, at any machine's
        # speed), then kill it a random moment later: between steps, or inside a write.
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not (
                saved.exists() and _step_of(saved) > last):
            time.sleep(0.01)
        time.sleep(rng.random() * 0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills == 3, "the run finished before it could be killed: make it longer"
    done = subprocess.run([sys.executable, "-m", "stages.train"], cwd=killed, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    from sml.run.checkpoint import load_checkpoint

    a = load_checkpoint(straight / "artifacts/model/model.pt")
    b = load_checkpoint(killed / "artifacts/model/model.pt")
    assert all(a[k].equal(b[k]) for k in a)
    assert not list(killed.rglob("*.tmp")), list(killed.rglob("*.tmp"))
    logs = [(root / "artifacts/train_log.tsv").read_text().splitlines() for root in (straight, killed)]
    assert [r.split("\t")[:4] for r in logs[0]] == [r.split("\t")[:4] for r in logs[1]]  # step .. val_loss


@pytest.mark.parametrize("dataclass_field", dataclasses.fields(importlib.import_module("sml.config").TrainConfig),
                         ids=lambda f: f.name)
def test_every_train_key_is_deliberately_resumable_or_in_the_fingerprint(dataclass_field):
    from sml.config import load_params
    from sml.run.checkpoint import RESUMABLE, run_fingerprint
    from tests.conftest import TEST_PARAMS

    p = load_params(TEST_PARAMS)
    meta = {"train": {"tokens": 10}, "val": {"tokens": 2}}
    fingerprint = run_fingerprint(p.model, p.train, "0" * 64, meta, {})
    in_fingerprint = dataclass_field.name in fingerprint["train"]
    assert in_fingerprint != (dataclass_field.name in RESUMABLE), (
        f"train.{dataclass_field.name}: add it to checkpoint.RESUMABLE (changing it keeps the run) or leave"
        " it in the fingerprint (changing it starts over), deliberately")
    json.dumps(fingerprint)  # plain data, as checkpoint.json stores it


def _step_of(checkpoint_json: Path) -> int:
    """The step a checkpoint.json records (-1 while it is being replaced: read it again)."""
    try:
        return json.loads(checkpoint_json.read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


# Bad input from learners and strangers (issue 26), class by class, and the tests that show
# each ends in one line that names it (exit 1), loses nothing and never hangs. Each test
# lives beside the code it exercises; this list says where, and fails when one is renamed
# or removed without a replacement named here.
FAULT_CLASSES = {
    "learner file: syntax error": "test_grading::test_a_file_that_does_not_load_fails_in_one_line_with_its_line_number",
    "learner file: raise, sys.exit or endless loop at import or in a check":
        "test_grading::test_a_part_that_exits_or_never_returns_fails_in_words_and_cannot_run",
    "learner file: refused by the pipeline before any work":
        "test_grading::test_the_pipeline_refuses_a_part_that_cannot_run_before_any_work",
    "learner file: raise or sys.exit in forward, mid-run":
        "test_grading::test_an_error_raised_in_the_learners_file_mid_run_is_theirs_exit_1",
    "learner file: NaN": "test_parts::test_a_nan_loss_with_a_learners_part_names_the_part_and_its_grade_first",
    "learner file: wrong dtype": "test_grading::test_a_part_that_returns_float64_is_told_so_in_words",
    "learner file: wrong shape (and every classic mistake)": "test_grading::test_a_classic_mistake_is_caught_and_named",
    "a new run keeps the previous best model until it has its own":
        "test_train::test_a_run_that_starts_over_keeps_the_previous_best_until_it_has_its_own",
    "hf import: config out of range or inconsistent, tensors wrong, missing or not finite":
        "test_hf::test_a_strangers_directory_is_one_line_naming_what_is_wrong_and_nothing_is_written",
    "hf import: index files": "test_hf::test_an_index_file_reads_nothing_outside_its_directory",
    "hf import and export: overwrites": "test_hf::test_import_and_export_never_write_over_other_files",
    "hf import: a pickle only": "test_hf::test_a_directory_with_only_a_pickle_says_so",
    "hf import: a symbolic link loop": "test_hf::test_a_symbolic_link_loop_is_named_as_one",
    "a place that cannot be written (--out in a file, a full disk)":
        "test_hf::test_a_place_that_cannot_be_written_is_one_line_and_the_earlier_import_stays",
    "hf export of a learner's model":
        "test_hf::test_a_model_trained_with_a_learners_part_is_not_exported_and_an_imported_one_runs_with_any",  # noqa: E501
    "text without punctuation in bounded pieces":
        "test_pretokenize::test_text_without_punctuation_streams_in_bounded_pieces",
    "one endless line in bounded pieces": "test_pretokenize::test_one_endless_line_streams_in_bounded_pieces",
    "blocks cut anywhere give the whole text's ids":
        "test_pretokenize::test_streaming_blocks_cut_anywhere_gives_the_ids_of_the_whole_text",
    "one endless line read in blocks by encode":
        "test_encode::test_one_endless_line_is_read_in_blocks_and_gives_the_ids_of_the_whole_text",
    "one endless line read and sampled in parts":
        "test_corpus::test_one_endless_line_is_read_in_parts_and_sampled_in_whole_words",
    "duplicate sources": "test_sources::test_a_file_given_twice_as_a_source_is_refused_in_one_line",
    "a failed encode keeps the previous token files":
        "test_encode::test_a_corpus_that_fails_half_way_leaves_the_previous_token_files_and_meta",
    "Ctrl-C while a stage starts up": "test_stages::test_ctrl_c_while_a_stage_starts_up_is_one_line_and_exit_130",
    "Ctrl-C while encode's workers start":
        "test_stages::test_ctrl_c_while_encode_workers_start_is_one_line_and_the_previous_token_files_stay",
    "sample options out of range": "test_stages::test_a_sample_option_out_of_range_is_refused_as_its_param_would_be",
    "an experiment beside a running DVC command":
        "test_stages::test_an_experiment_beside_a_running_dvc_command_is_refused_before_it_touches_params",
}


@pytest.mark.parametrize("fault", FAULT_CLASSES)
def test_every_class_of_bad_input_has_its_tests(fault):
    module, name = FAULT_CLASSES[fault].split("::")
    assert callable(getattr(importlib.import_module(f"tests.{module}"), name, None)), (fault, FAULT_CLASSES[fault])
