"""Shared fixtures: tiny real corpora, written by the tests themselves, the suite's own params,
and the guard that keeps the suite off the user's working copy.

The working copy's ``params.yaml`` is the user's: ``make quick`` (like any ``dvc exp run -S``)
leaves the ``cpu`` preset's values in it, and a user edits it by hand. So tests build their
params from ``tests/params.yaml`` (``params_template()``), and only a test marked
``working_copy`` (one about that file itself) may read the user's. The guard below makes that
structural, for every test module, present and future: the suite runs from an empty directory
of its own, and a test that opens the working copy's params.yaml, starts a process in the
repository root (where a stage would read it), or writes anything into the repository fails
with one line that says so. ``tests/test_readme.py`` runs the ``working_copy`` tests again on
a copy of the repository after ``make quick`` and a hand edit.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKING_PARAMS = ROOT / "params.yaml"  # the user's: read only by tests marked working_copy
TEST_PARAMS = ROOT / "tests" / "params.yaml"  # the suite's own: every key, values for a tiny CPU run


def params_template() -> dict:
    """A fresh copy of the suite's own params (tests/params.yaml) as plain data."""
    return yaml.safe_load(TEST_PARAMS.read_text(encoding="utf-8"))


class WorkingCopyTouched(Exception):
    """A test read the user's params.yaml, or wrote into the repository, without saying so."""


def pytest_configure(config):
    config.addinivalue_line("markers", "working_copy: the test is about the user's params.yaml itself and may"
                                       " read it (tests/test_readme.py reruns these after make quick)")
    config.addinivalue_line("markers", "e2e: end to end (stage processes, DVC, several processes): left out by"
                                       " pytest -m 'not e2e', the everyday loop")
    if not getattr(sys, "_sml_guard", False):  # an audit hook cannot be removed: add it once per process
        sys.addaudithook(_guard)
        sys._sml_guard = True
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Workers share the cores: one thread each, here and in the processes a test starts.
        # (torch's default, a thread per core in every process, slows them all many times over.)
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
    # The path options pytest resolves against the current directory during collection.
    here = config.invocation_params.dir
    for option in ("ignore", "ignore_glob"):
        setattr(config.option, option, [str(here / p) for p in getattr(config.option, option) or []])
    config._sml_cwd = tempfile.TemporaryDirectory(prefix="sml-tests-")


def pytest_unconfigure(config):
    if hasattr(config, "_sml_cwd"):
        os.chdir(config.invocation_params.dir)
        config._sml_cwd.cleanup()


def pytest_collection_modifyitems(config, items):
    """The longest first: the tests on the shared pipeline (whose build is the longest wait), then
    the other end-to-end tests, then the rest, each in its own order (a stable sort). With
    pytest-xdist's work stealing the quick tests then fill the cores while the long ones run,
    instead of a long one running last on one core."""
    items.sort(key=lambda item: 0 if "built" in getattr(item, "fixturenames", ()) else
               1 if item.get_closest_marker("e2e") else 2)


# Guarded: collecting the tests (importing their modules), and each test, by its node id.
_now = {"guarded": False, "test": "collection", "allowed": False}


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    # From here on the suite runs in an empty directory of its own: a relative path (a stage's
    # default params.yaml, artifacts/, data/) never reaches what the user's runs left in the
    # repository. (Not before: pytest-xdist's workers start from the directory pytest was run in.)
    os.chdir(session.config._sml_cwd.name)
    _now.update(guarded=True, test="collection", allowed=False)
    try:
        return (yield)
    finally:
        _now.update(guarded=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _now.update(guarded=True, test=item.nodeid, allowed=item.get_closest_marker("working_copy") is not None)
    try:
        return (yield)
    finally:
        _now.update(guarded=False)


# Written into the repository by Python, pytest and hypothesis themselves, not by a test.
_OWN_WRITES = ("__pycache__", ".pytest_cache", ".hypothesis")


def _guard(event: str, args: tuple) -> None:
    """sys.addaudithook's hook: see the module's docstring. Cheap: most events return at once."""
    if not _now["guarded"]:
        return
    if event == "open":
        path, _, flags = args
        if not isinstance(path, str | bytes | os.PathLike):
            return  # a file descriptor
        writes = bool(flags & (os.O_WRONLY | os.O_RDWR))
        if not writes and os.path.basename(os.fsdecode(path)) != "params.yaml":
            return
        full = os.path.realpath(os.fsdecode(path))
        if writes and full.startswith(str(ROOT) + os.sep) and not any(
                part in _OWN_WRITES for part in Path(full).relative_to(ROOT).parts):
            raise WorkingCopyTouched(f"{_now['test']} writes {full} into the repository:"
                                     " write under tmp_path")
        if full == str(WORKING_PARAMS) and not _now["allowed"]:
            raise WorkingCopyTouched(f"{_now['test']} reads the working copy's params.yaml:"
                                     " build params from tests.conftest.params_template(), or mark a test about"
                                     " that file itself @pytest.mark.working_copy")
    elif event == "subprocess.Popen" and not _now["allowed"]:
        _, argv, cwd, _ = args
        if os.path.realpath(cwd if cwd is not None else os.getcwd()) == str(ROOT):
            raise WorkingCopyTouched(f"{_now['test']} starts {argv!r} in the repository root,"
                                     " where a stage reads the working copy's params.yaml: pass cwd=tmp_path")
        if any(os.fsdecode(a) == str(WORKING_PARAMS) for a in (argv if isinstance(argv, list | tuple) else [argv])
               if isinstance(a, str | bytes | os.PathLike)):
            raise WorkingCopyTouched(f"{_now['test']} passes the working copy's params.yaml to"
                                     f" {argv!r}: build params from tests.conftest.params_template()")


def command(module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m <module> ARGS``, run in this process (no second start of Python and torch):
    its exit code, stdout and stderr. A test of the entry point itself starts a real process."""
    import importlib

    import typer
    from typer.testing import CliRunner

    imported = importlib.import_module(module)
    if hasattr(imported, "__path__"):  # a package: python -m runs its __main__
        imported = importlib.import_module(f"{module}.__main__")
    app = getattr(imported, "app", None)
    if app is None:
        app = typer.Typer()
        app.command()(imported.main)
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    return subprocess.CompletedProcess([module, *args], result.exit_code, result.stdout, result.stderr)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A directory that ``build(path)`` makes once per test run, shared by every test that asks.

    Once even when pytest-xdist's workers share the run: the first to ask builds it under a
    lock, the others wait, then all reuse it. A test changes its own copy, never this.
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, above each worker's own
    path, done = base / name, base / f"{name}.done"
    with FileLock(f"{base / name}.lock"):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)  # what a failed build left
            build(path)
            done.touch()
    return path


# A few KB of real English with Shakespeare's shape (speaker lines, verse, punctuation).
SONNET = """\
FIRST CITIZEN:
Before we proceed any further, hear me speak.

ALL:
Speak, speak.

FIRST CITIZEN:
You are all resolved rather to die than to famish?

ALL:
Resolved. resolved.

Shall I compare thee to a summer's day?
Thou art more lovely and more temperate:
Rough winds do shake the darling buds of May,
And summer's lease hath all too short a date;
Sometime too hot the eye of heaven shines,
And often is his gold complexion dimm'd;
And every fair from fair sometime declines,
By chance or nature's changing course untrimm'd;
But thy eternal summer shall not fade,
Nor lose possession of that fair thou ow'st;
Nor shall death brag thou wander'st in his shade,
When in eternal lines to time thou grow'st:
So long as men can breathe or eyes can see,
So long lives this, and this gives life to thee.
"""

# Other scripts, digits, emoji, tabs and CRLF: what a byte-level tokenizer must survive.
MIXED = (
    "Le café coûte 3,50 € — 東京は晴れ。 123456 numbers 7890!\r\n"
    "emoji: 👩‍👩‍👧 🎉🎉 tabs\tand  double  spaces\n\n\n"
    "ÀÉÎÕÜ ñandú; naïve façade; Ελληνικά; русский текст; עברית; हिन्दी\n"
) * 4


@pytest.fixture
def sonnet() -> str:
    return SONNET


@pytest.fixture
def corpus_file(tmp_path):
    """A small UTF-8 corpus on disk (English plus mixed scripts)."""
    path = tmp_path / "corpus.txt"
    path.write_text(SONNET * 3 + MIXED, encoding="utf-8", newline="")
    return path


def encode_text_file(corpus: Path, tok, out: Path, val_fraction: float = 0.1, **kwargs) -> dict:
    """Encode one text file as the pipeline does: split into train/val text (the download stage,
    into ``out``'s sibling ``<name>_text/``), then encode that into ``out``. Returns meta.json's dict."""
    from sml.data.encode import encode_corpus
    from sml.data.sources import Source, build_corpus

    text_dir = out.with_name(out.name + "_text")
    build_corpus([Source(corpus, "text", "data.sources[0]")], [], text_dir, val_fraction)
    return encode_corpus(text_dir, tok, out, **kwargs)


def local_sources(*paths: Path, fmt: str = "text") -> list[dict]:
    """``data.sources`` (or ``data.val_sources``) for local files, each pinned by its sha256."""
    import hashlib

    return [{"url": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest(), "format": fmt} for p in paths]
