"""Shared fixtures: tiny real corpora, written by the tests themselves, and params.yaml.

``PARAMS`` is the working copy's params.yaml, and the only way a test reads it. What it
holds changes with the user's last run: ``make quick`` (like any ``dvc exp run -S``) leaves
the ``cpu`` preset's values in it. So a test may take the file's keys, or check that the
file is valid, but sets every value it relies on itself. ``tests/test_quickstart.py`` runs
every module that reads ``PARAMS`` again on a copy of the repository after a ``make quick``.
"""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def params_template() -> dict:
    """A fresh copy of the working copy's params.yaml as plain data (its keys are what matter)."""
    return yaml.safe_load(PARAMS.read_text(encoding="utf-8"))

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
    from sml.encode import encode_corpus
    from sml.sources import Source, build_corpus

    text_dir = out.with_name(out.name + "_text")
    build_corpus([Source(corpus, "text", "data.sources[0]")], [], text_dir, val_fraction)
    return encode_corpus(text_dir, tok, out, **kwargs)


def local_sources(*paths: Path, fmt: str = "text") -> list[dict]:
    """``data.sources`` (or ``data.val_sources``) for local files, each pinned by its sha256."""
    import hashlib

    return [{"url": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest(), "format": fmt} for p in paths]
