"""Stage commands as a user runs them: one-line errors, and a light train_bpe start-up."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, SONNET, params_template


def run_stage(stage: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m stages.<stage> ARGS`` in ``cwd`` (by default the suite's own empty directory)."""
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"},
    )


@pytest.fixture
def params_file(tmp_path, corpus_file):
    params = params_template()
    params["tokenizer"]["vocab_size"] = 300
    params["data"]["val_fraction"] = 0.1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("stage", ["download", "train_bpe", "encode"])
def test_bad_params_print_one_line_and_exit_1(tmp_path, params_file, stage):
    text = params_file.read_text().replace("vocab_size: 300", "vocab_size: lots")
    text = text.replace("val_fraction: 0.1", "val_fraction: 2")
    params_file.write_text(text)
    result = run_stage(stage, "--params", str(params_file))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {params_file}: ")
    assert "vocab_size = 'lots'" in lines[0] or "val_fraction = 2" in lines[0]


@pytest.mark.e2e
def test_missing_inputs_name_the_file_and_the_stage_to_run(tmp_path, params_file):
    result = run_stage("encode", "--corpus", str(tmp_path / "none.txt"),
                       "--tokenizer", str(tmp_path / "tok"), "--params", str(params_file))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'tok' / 'tokenizer.json'}: no such tokenizer" \
        " file; rerun the train_bpe stage (dvc repro train_bpe, or python -m stages.train_bpe)"


@pytest.mark.e2e
def test_train_bpe_imports_neither_torch_nor_numpy(tmp_path, params_file, corpus_file):
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['train_bpe', '--corpus', {str(corpus_file)!r}, '--out', "
        f"{str(tmp_path / 'tok')!r}, '--params', {str(params_file)!r}]\n"
        "try:\n    runpy.run_module('stages.train_bpe', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "vocab 300 tokens" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "tok" / "tokenizer.json").exists() and (tmp_path / "tok" / "vocab.txt").exists()


@pytest.mark.e2e
def test_help_says_what_an_option_falls_back_to_and_lists_the_presets(tmp_path):
    params = params_template()
    params["presets"]["small"] = {"model.n_layer": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    shown = run_stage("sample", "--help", cwd=tmp_path).stdout  # the params.yaml where it runs
    for key in ("temperature", "top_k", "top_p", "max_new_tokens", "seed"):
        assert f"sample.{key} in params.yaml: {params['sample'][key]}" in shown, key
    shown = run_stage("experiment", "--help", cwd=tmp_path).stdout
    assert "params.yaml: small, tiny." in shown


def project_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """Every sml/ and stages/ module that ``module`` imports, directly or not (read from the source)."""
    import ast

    seen = set() if seen is None else seen
    if module in seen:
        return seen
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    if not path.exists():
        return seen
    seen.add(module)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in ("sml", "stages"):
                project_imports(name, seen)
    return seen


def docstring_only(path: Path) -> bool:
    """A package's __init__.py that holds only its docstring (no code a stage could run)."""
    import ast

    body = ast.parse(path.read_text(encoding="utf-8")).body
    return path.name == "__init__.py" and all(isinstance(n, ast.Expr) for n in body)


@pytest.mark.parametrize("stage", yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
def test_every_module_a_stage_imports_is_one_of_its_dependencies(stage):
    """Otherwise a change to that module would not rerun the stage: DVC only sees deps."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    module = spec["cmd"].split()[2]  # python -m stages.X ...
    deps = [str(d) for d in spec["deps"]]
    files = {str((ROOT / (m.replace(".", "/") + ".py")).relative_to(ROOT))
             if (ROOT / (m.replace(".", "/") + ".py")).exists()
             else str((ROOT / m.replace(".", "/") / "__init__.py").relative_to(ROOT))
             for m in project_imports(module)}
    # The learner's harness (sml/learn/) is in the part records a stage depends on (stages/parts.py).
    manifest = any(d.startswith("artifacts/parts/") for d in deps)
    missing = sorted(f for f in files if f not in deps and not any(f.startswith(d.rstrip("/") + "/") for d in deps)
                     and not docstring_only(ROOT / f) and not (manifest and f.startswith("sml/learn/")))
    assert not missing, f"dvc.yaml: stage {stage} imports {missing} but does not list them in deps"


def test_an_unexpected_error_is_one_line_and_exit_2_and_sml_debug_shows_the_traceback(tmp_path):
    """A bug (here a KeyError, as a slip in SML would raise) must not pass for a handled
    error: exit 2, one line that says so, and the traceback on request."""
    import typer
    from typer.testing import CliRunner

    from stages.common import stage

    @stage
    def main() -> None:
        {}["missing"]

    app = typer.Typer()
    app.command()(main)
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error (a bug in SML, please report it): KeyError")
    assert "SML_DEBUG=1" in lines[0] and "test_stages.py" in lines[0]
    debug = CliRunner().invoke(app, [], env={"SML_DEBUG": "1"})
    assert isinstance(debug.exception, KeyError)  # raised, so its traceback shows


@pytest.mark.e2e
def test_the_first_stages_run_on_several_sources_given_only_through_params(tmp_path):
    """download -> train_bpe -> encode on plain text, gzipped JSON lines and a val source of
    their own, one of them unpinned: the download stage prints the line that pins it."""
    import gzip
    import hashlib
    import json

    from tests.conftest import MIXED, SONNET, local_sources

    (tmp_path / "a.txt").write_text(SONNET * 2, encoding="utf-8")
    stories = [f"Story {i}: {SONNET[: 40 + 7 * i]}" for i in range(30)]
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps({"text": t}) + "\n"
                                                                for t in stories).encode()))
    (tmp_path / "v.txt").write_text(MIXED, encoding="utf-8")
    params = params_template()
    sources = local_sources(tmp_path / "a.txt") + local_sources(tmp_path / "b.jsonl.gz", fmt="jsonl")
    sources[1]["sha256"] = ""  # not pinned yet
    params["data"].update(sources=sources, val_sources=local_sources(tmp_path / "v.txt"))
    params["tokenizer"]["vocab_size"] = 300
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    p = ["--params", str(tmp_path / "params.yaml")]
    corpus, tok, tokens = tmp_path / "corpus", tmp_path / "tok", tmp_path / "tokens"
    done = run_stage("download", "--out", str(corpus), "--downloads", str(tmp_path / "dl"), *p)
    assert done.returncode == 0, done.stderr
    pin = hashlib.sha256((tmp_path / "b.jsonl.gz").read_bytes()).hexdigest()
    assert f"to pin data.sources[1], write under its url in {tmp_path / 'params.yaml'}:  sha256: {pin}" in done.stdout
    assert f"{corpus / 'train.txt'}: 31 documents" in done.stdout
    assert (corpus / "train.txt").read_bytes().decode() == "<|endoftext|>".join([SONNET * 2, *stories])
    assert (corpus / "val.txt").read_bytes().decode() == MIXED
    for stage, args in [("train_bpe", ["--corpus", str(corpus / "train.txt"), "--out", str(tok)]),
                        ("encode", ["--corpus", str(corpus), "--tokenizer", str(tok), "--out", str(tokens)])]:
        done = run_stage(stage, *args, *p)
        assert done.returncode == 0, done.stderr
    meta = json.loads((tokens / "meta.json").read_text())
    assert meta["val"]["chars"] == len(MIXED) and meta["train"]["bytes"] == (corpus / "train.txt").stat().st_size


@pytest.mark.e2e
def test_sample_streams_from_an_imported_gpt2_style_model(tmp_path):
    """python -m stages.hf import, then python -m stages.sample on what it wrote (README, Hugging Face)."""
    pytest.importorskip("transformers")
    from tests.test_hf import gpt2_style_directory

    (tmp_path / "gpt2").mkdir()
    gpt2_style_directory(tmp_path / "gpt2")
    result = run_stage("hf", "import", str(tmp_path / "gpt2"), "--out", str(tmp_path / "sml"))
    assert result.returncode == 0, result.stderr
    params = params_template()
    params["impl"] = {part: "reference" for part in params["impl"]}
    params["sample"] |= {"device": "cpu", "temperature": 0.8, "top_k": 0, "top_p": 1.0, "seed": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage("sample", "--model", str(tmp_path / "sml"), "--tokenizer",
                       str(tmp_path / "sml" / "tokenizer" / "tokenizer.json"), "--prompt", "Shall I",
                       "--max-new-tokens", "8", "--params", str(tmp_path / "params.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Shall I") and len(result.stdout) > len("Shall I\n")


@pytest.mark.e2e
@pytest.mark.parametrize("delay_s", [0.2, 1.2])
def test_ctrl_c_while_a_stage_starts_up_is_one_line_and_exit_130(tmp_path, delay_s):
    """Ctrl-C while Python still imports torch (before the stage's own handling): no traceback."""
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "stages.evaluate", "--params", str(tmp_path / "none.yaml")],
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal
    # (a test runner's worker may ignore SIGINT, and a child would inherit that)
    time.sleep(delay_s)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode in (130, -signal.SIGINT), (process.returncode, err)
    assert err.strip() == "interrupted", err


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers in Linux's /proc")
def test_ctrl_c_while_encode_workers_start_is_one_line_and_the_previous_token_files_stay(tmp_path):
    """A terminal's Ctrl-C reaches every process of the group, encode's workers too, even while
    they import: they leave it to the stage, which says "interrupted" once; the earlier token
    files are kept."""
    import signal
    import time

    from sml.tokenizer import Tokenizer

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text((SONNET + "\n") * 20_000, encoding="utf-8")  # ~12 MB: 2 workers
    (corpus / "val.txt").write_text(SONNET, encoding="utf-8")
    tok = Tokenizer.train(SONNET, 300, "gpt4").save(tmp_path / "tokenizer")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_template()))
    out = tmp_path / "tokens"
    out.mkdir()
    (out / "meta.json").write_text("the previous run's")
    process = subprocess.Popen([sys.executable, "-m", "stages.encode", "--corpus", str(corpus), "--tokenizer",
                                str(tok), "--out", str(out), "--workers", "2"], cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while len(processes_of_group(process.pid, "spawn_main")) < 2 and process.poll() is None:
        time.sleep(0.005)  # until both workers exist: they are still importing, the worst moment
    os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole group
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "interrupted", (process.returncode, err)
    assert (out / "meta.json").read_text() == "the previous run's" and not list(out.glob("*.tmp"))
    time.sleep(0.5)
    assert not processes_of_group(process.pid)  # the workers are gone too


def processes_of_group(pgid: int, command: str = "") -> list[int]:
    """Running processes of group ``pgid`` whose command line holds ``command`` (Linux's /proc;
    a zombie has exited: no init here reaps it)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, pgrp
            if int(fields[2]) == pgid and fields[0] != "Z" and command.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--max-new-tokens", "-5", "--max-new-tokens: sample.max_new_tokens = -5: must be an integer >= 1"),
    ("--max-new-tokens", "100000000", "--max-new-tokens: sample.max_new_tokens = 100000000: must be an integer"),
    ("--top-p", "1.5", "--top-p: sample.top_p = 1.5:"),
])
def test_a_sample_option_out_of_range_is_refused_as_its_param_would_be(params_file, option, value, says):
    from tests.conftest import command

    done = command("stages.sample", option, value, "--params", str(params_file), "--prompt", "x")
    assert done.returncode == 1 and done.stderr.startswith("error: " + says), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_experiment_beside_a_running_dvc_command_is_refused_before_it_touches_params(tmp_path, monkeypatch):
    import zc.lockfile

    from tests.conftest import command

    params = params_template()
    params["presets"] = {"tiny": {"train.lr": 0.004}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = (tmp_path / "params.yaml").read_text()
    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    held = zc.lockfile.LockFile(str(tmp_path / ".dvc" / "tmp" / "lock"))  # as a running `dvc exp run` holds it
    try:
        monkeypatch.chdir(tmp_path)
        done = command("stages.experiment", "tiny")
    finally:
        held.close()
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: another DVC command is running in this repository (.dvc/tmp/lock):"
                                   " experiments run one at a time; wait for it, or queue this one (--queue,"
                                   " then dvc queue start)")
    assert (tmp_path / "params.yaml").read_text() == before


def test_the_experiments_table_marks_runs_on_another_val_text_and_counts_source_lists():
    from sml.run.compare import experiments_table

    text = ("Experiment,rev,typ,train_seconds,best_step,val.bits_per_char,data.sources,train.lr\n"
            ",main,baseline,10.0,250,2.5,\"[{'url': 'a.txt'}]\",0.001\n"
            "lr,1a2b3c4,branch_commit,9.5,300,2.4,\"[{'url': 'a.txt'}]\",0.003\n"
            "stories,5d6e7f8,branch_commit,9.1,250,1.9,\"[{'url': 'a.txt'}, {'url': 'b.txt'}]\",0.001\n")
    table = experiments_table(text).splitlines()
    assert table[2].split()[:2] == ["lr", "2.4000"] and table[2].endswith("train.lr=0.003")
    assert table[3].split()[:2] == ["stories", "1.9000*"] and table[3].endswith("data.sources=(2 files)")
    assert table[-1].startswith("* scored on another val text than its commit")
