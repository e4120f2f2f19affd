"""The grader (make grade): stubs are "to do", correct parts pass, each classic mistake is named."""

import shutil
import subprocess
import sys

import pytest

from sml.learn.core import grade, load, parts
from sml.learn.mine import PARTS as NAMES
from tests.conftest import ROOT, command

SOLUTIONS = ROOT / "tests" / "solutions"
BROKEN = sorted(p for p in (SOLUTIONS / "broken").glob("*__*.py") if p.name != "__init__.py")
PARTS = {p.name: p for p in parts()}


def test_every_part_has_a_stub_a_solution_and_its_chapter():
    assert list(PARTS) == list(NAMES)
    learn = (ROOT / "LEARN.md").read_text(encoding="utf-8")
    for part in PARTS.values():
        assert (ROOT / "mine" / part.file).exists(), part.name
        assert (SOLUTIONS / part.file).exists(), part.name
        assert part.chapter.removeprefix("LEARN.md, ") in learn, part.chapter
        assert part.checks


@pytest.mark.e2e
def test_with_every_stub_unwritten_make_grade_reports_all_to_do(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sml.learn", "--dir", str(ROOT / "mine")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("[ ]") == len(NAMES), done.stdout
    assert f"0 pass, 0 fail, {len(NAMES)} to do." in done.stdout
    assert "Next: LEARN.md, 1." in done.stdout


@pytest.mark.parametrize("name", NAMES)
def test_a_stub_is_to_do_naming_what_to_write(name):
    result = grade(PARTS[name], ROOT / "mine" / PARTS[name].file)
    assert result.status == "todo", result
    assert f"in mine/{name}.py" in result.message


@pytest.mark.parametrize("name", NAMES)
def test_a_correct_part_passes_every_check(name):
    result = grade(PARTS[name], SOLUTIONS / PARTS[name].file)
    assert result.status == "pass", result.message
    assert result.passed == len(PARTS[name].checks)


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_a_classic_mistake_is_caught_and_named(path):
    part = PARTS[path.stem.split("__")[0]]
    result = grade(part, path)
    assert result.status == "fail", (path.name, result)
    assert load(path).EXPECT in result.message, (path.name, result.message)


def test_the_mistakes_the_issue_names_each_have_a_broken_version():
    stems = {p.stem for p in BROKEN}
    for stem in ("attention__no_causal_mask", "attention__no_scaling", "block__residual_dropped",
                 "training__targets_not_shifted", "sampling__top_k_keeps_one_more"):
        assert stem in stems


def test_make_grade_part_grades_that_part_and_exits_1_on_a_failure(tmp_path):
    shutil.copy(SOLUTIONS / "attention.py", tmp_path / "attention.py")
    done = command("sml.learn", "attention", "--dir", str(tmp_path))
    assert done.returncode == 0 and "[x]" in done.stdout and "1 pass, 0 fail, 0 to do" in done.stdout, done.stdout
    shutil.copy(SOLUTIONS / "broken" / "attention__no_causal_mask.py", tmp_path / "attention.py")
    done = command("sml.learn", "attention", "--dir", str(tmp_path))
    assert done.returncode == 1 and "[!]" in done.stdout and "the causal mask is missing" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_file_that_does_not_load_fails_in_one_line_with_its_line_number(tmp_path):
    (tmp_path / "attention.py").write_text("def attention(q, k, v, mask=None):\n    return q @\n")
    result = grade(PARTS["attention"], tmp_path / "attention.py")
    assert result.status == "fail" and "does not load: SyntaxError" in result.message and not result.runs
    assert result.message.count("line 2") == 1  # said once


@pytest.mark.parametrize(("source", "says"), [
    ("import sys\nsys.exit(0)\n", "does not load: it calls sys.exit(0)"),
    ("def attention(q, k, v, mask=None, dropout_p=0.0):\n    raise SystemExit('done')\n", "it calls sys.exit('done')"),
    ("def attention(q, k, v, mask=None, dropout_p=0.0):\n    while True:\n        pass\n",
     "did not finish within 0.5 s (attention.py, line"),
])
def test_a_part_that_exits_or_never_returns_fails_in_words_and_cannot_run(tmp_path, source, says):
    (tmp_path / "attention.py").write_text(source)
    result = grade(PARTS["attention"], tmp_path / "attention.py", limit_s=0.5)
    assert result.status == "fail" and says in result.message and not result.runs, result.message


HEAD = "def attention(q, k, v, mask=None, dropout_p=0.0):\n"


@pytest.mark.parametrize("source", [HEAD + "    return q @\n", HEAD + "    while True:\n        pass\n"])
def test_the_pipeline_refuses_a_part_that_cannot_run_before_any_work(tmp_path, monkeypatch, source):
    from sml.config import ImplConfig
    from sml.learn import core
    from sml.learn.mine import load_mine
    from sml.run.errors import SMLError

    shutil.copytree(ROOT / "mine", tmp_path / "mine")
    (tmp_path / "mine" / "attention.py").write_text(source)
    monkeypatch.setattr(core, "CHECK_LIMIT_S", 0.5)
    impl = ImplConfig(**{**dict.fromkeys(NAMES, "reference"), "attention": "mine"})
    with pytest.raises(SMLError, match=r"^mine/attention.py: .*line \d.*; fix it \(make grade PART=attention\)"):
        load_mine(impl, tmp_path)


@pytest.mark.parametrize(("body", "says"), [
    ("    return 1 / 0\n", "line 2, in attention: ZeroDivisionError: division by zero"),
    ("    import sys\n    sys.exit(0)\n", "line 3, in attention: calls sys.exit(0)"),
])
def test_an_error_raised_in_the_learners_file_mid_run_is_theirs_exit_1(tmp_path, capsys, body, says):
    """Once graded and running, a part that raises (or exits) is named as the learner's, not SML's bug."""
    from stages.common import stage

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "attention.py").write_text("def attention(q, k, v, mask=None, dropout_p=0.0):\n" + body)
    module = load(tmp_path / "mine" / "attention.py")
    with pytest.raises(SystemExit) as exited:
        stage(lambda: module.attention(None, None, None))()
    assert exited.value.code == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: mine/attention.py, " + says), line
    assert "impl.attention: mine" in line and "\n" not in line


def test_an_error_in_the_learners_code_names_their_line(tmp_path):
    (tmp_path / "attention.py").write_text("def attention(q, k, v, mask=None, dropout_p=0.0):\n"
                                           "    return q @ k\n")  # forgot the transpose: a shape error
    result = grade(PARTS["attention"], tmp_path / "attention.py")
    assert result.status == "fail" and "RuntimeError" in result.message
    assert "attention.py, line 2, in attention" in result.message


def test_an_unknown_part_is_refused_in_one_line():
    done = command("sml.learn", "atention")
    assert done.returncode == 2 and "no part atention" in done.stderr and "Traceback" not in done.stderr


def test_a_part_that_returns_float64_is_told_so_in_words(tmp_path):
    source = (SOLUTIONS / "attention.py").read_text()
    (tmp_path / "attention.py").write_text(source + "\n\n_theirs = attention\n\n\ndef attention(*args, **kwargs):\n"
                                           "    return _theirs(*args, **kwargs).double()\n")
    result = grade(PARTS["attention"], tmp_path / "attention.py")
    assert result.status == "fail" and "a result in float64 met the reference's float32" in result.message
    assert "did not match" not in result.message
