"""Token files under fault injection: every damaged file is one clear line, never a traceback.

A tiny corpus is encoded twice, by two tokenizers ("this run" and "another run"). Each test
copies this run's files, damages one of them (train.bin, val.bin, meta.json or
tokenizer.json) in one way, and loads everything the way the train stage does.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import sml.data.tokens as tokens_module
from sml.data.tokens import check_vocab_size, load_meta, load_tokens
from sml.run.errors import SMLError
from sml.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """runs/{this,other}/{tokenizer,tokens}: one corpus, two tokenizers (300 and 400 ids)."""
    from tests.conftest import MIXED, SONNET, encode_text_file

    root = tmp_path_factory.mktemp("runs")
    corpus = root / "corpus.txt"
    corpus.write_text(SONNET * 6 + MIXED, encoding="utf-8")
    for name, vocab_size, pattern in [("this", 300, "gpt4"), ("other", 400, "gpt2")]:
        tok = Tokenizer.train(corpus.read_text(encoding="utf-8"), vocab_size, pattern)
        tok.save(root / name / "tokenizer")
        encode_text_file(corpus, tok, root / name / "tokens")
    return root


@pytest.fixture
def run(runs, tmp_path) -> Path:
    """A fresh copy of this run's files, free to damage."""
    shutil.copytree(runs / "this", tmp_path / "this")
    return tmp_path / "this"


def load_all(run: Path) -> dict[str, np.ndarray]:
    """What the train stage reads: the tokenizer, meta.json and both splits, cross-checked."""
    tokenizer = run / "tokenizer" / "tokenizer.json"
    tok = Tokenizer.load(tokenizer)
    meta = load_meta(run / "tokens")
    check_vocab_size(run / "tokens", tok.vocab_size, tokenizer)
    assert meta["vocab_size"] == tok.vocab_size
    return {split: load_tokens(run / "tokens", split) for split in ("train", "val")}


FILES = {"train.bin": "tokens", "val.bin": "tokens", "meta.json": "tokens", "tokenizer.json": "tokenizer"}


def empty(path: Path, other: Path) -> None:
    path.write_bytes(b"")


def cut_to_odd_length(path: Path, other: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 | 1])  # half of it, an odd number of bytes


def garbled_in_the_middle(path: Path, other: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\xff" * 8  # id 65,535 in a .bin; not UTF-8 in a .json
    path.write_bytes(bytes(data))


def another_runs_file(path: Path, other: Path) -> None:
    shutil.copy(other, path)


def deleted(path: Path, other: Path) -> None:
    path.unlink()


DAMAGE = [empty, cut_to_odd_length, garbled_in_the_middle, another_runs_file, deleted]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_file_is_one_line_naming_it(run, runs, name, damage):
    path = run / FILES[name] / name
    damage(path, runs / "other" / FILES[name] / name)
    with pytest.raises(SMLError) as e:
        load_all(run)
    message = str(e.value)
    assert str(path) in message and "\n" not in message
    # Another run's tokenizer is a valid file: it is the token files that no longer follow it.
    stage = "train_bpe" if name == "tokenizer.json" and damage is not another_runs_file else "encode"
    assert f"rerun the {stage} stage" in message


def test_an_undamaged_run_loads(run):
    ids = load_all(run)
    meta = load_meta(run / "tokens")
    assert {split: len(ids[split]) for split in ids} == {split: meta[split]["tokens"] for split in ids}


# ---- damage that leaves a valid file -------------------------------------------------------
# Ids swapped within the vocabulary make a .bin as valid as the original: no size, count or
# range check can see it. Only a hash of the bytes can, so encode records each file's
# sha256 in meta.json and load_tokens compares it (above HASH_MAX_BYTES it does not: too
# slow, and then such damage loads). meta.json and tokenizer.json have no hash of their own:
# an edited count or merge that is still well-formed loads (for the tokenizer, the model's
# checkpoint records its sha256 and catches it against a trained model).


def swap_ids(path: Path) -> None:
    """Reverse the order of 16 ids in the middle: every id stays in the vocabulary."""
    ids = np.fromfile(path, dtype="<u2")
    middle = len(ids) // 2
    ids[middle : middle + 16] = ids[middle : middle + 16][::-1].copy()
    ids.tofile(path)


@pytest.mark.parametrize("split", ["train", "val"])
def test_ids_swapped_within_the_vocabulary_are_caught_by_the_hash(run, split):
    path = run / "tokens" / f"{split}.bin"
    swap_ids(path)
    with pytest.raises(SMLError, match="its bytes changed since encode wrote it") as e:
        load_all(run)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_file_too_big_to_hash_gets_its_ids_checked_only(run, split, monkeypatch):
    monkeypatch.setattr(tokens_module, "HASH_MAX_BYTES", 0)  # as if every file were over 2 GiB
    path = run / "tokens" / f"{split}.bin"
    before = np.fromfile(path, dtype="<u2")
    swap_ids(path)
    assert not np.array_equal(load_all(run)[split], before)  # loads: nothing can tell
    garbled_in_the_middle(path, path)
    with pytest.raises(SMLError, match="holds token id 65,535 but the vocabulary has ids 0..299"):
        load_all(run)


def test_an_edited_count_in_meta_json_loads(run):
    path = run / "tokens" / "meta.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["val"]["chars"] += 1  # bits/char would be a little off; nothing to check it against
    path.write_text(json.dumps(meta), encoding="utf-8")
    assert load_meta(run / "tokens")["val"]["chars"] == meta["val"]["chars"]
    load_all(run)


def test_an_edited_merge_in_tokenizer_json_loads(run):
    path = run / "tokenizer" / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["merges"][-1] = [0, 1]  # a valid merge, but not the one learned
    path.write_text(json.dumps(data), encoding="utf-8")
    assert Tokenizer.load(path).merges[-1] == (0, 1)
    load_all(run)


# ---- meta.json: every key, with the right type --------------------------------------------


def _drop(key: str):
    return lambda meta: meta.pop(key)


def _set(key: str, value):
    def change(meta: dict) -> None:
        where, _, name = key.rpartition(".")
        (meta[where] if where else meta)[name] = value
    return change


BAD_META = {  # a change to a good meta.json -> what the one-line error says
    "no vocab_size": (_drop("vocab_size"), "no key 'vocab_size'"),
    "no dtype": (_drop("dtype"), "no key 'dtype'"),
    "no train counts": (_drop("train"), "no key 'train'"),
    "no val counts": (_drop("val"), "no key 'val'"),
    "no sha256": (_drop("sha256"), "no key 'sha256'"),
    "no token count": (lambda meta: meta["train"].pop("tokens"), "train.tokens is None, expected a count"),
    "vocab_size a string": (_set("vocab_size", "300"), "vocab_size is '300', expected an integer"),
    "vocab_size a bool": (_set("vocab_size", True), "vocab_size is True, expected an integer"),
    "vocab_size zero": (_set("vocab_size", 0), "vocab_size is 0, expected at least 1"),
    "dtype unknown": (_set("dtype", "float32"), "dtype is 'float32', but 300 ids are stored as 'uint16'"),
    "dtype too wide": (_set("dtype", "uint32"), "dtype is 'uint32', but 300 ids are stored as 'uint16'"),
    "negative count": (_set("val.tokens", -1), "val.tokens is -1, expected a count"),
    "float count": (_set("val.chars", 1.5), "val.chars is 1.5, expected a count"),
    "counts a list": (_set("train", [1, 2, 3]), r"train is \[1, 2, 3\], expected an object"),
    "short sha256": (_set("sha256.val", "abc"), "sha256.val is 'abc', expected 64 hex digits"),
}


@pytest.mark.parametrize("change, message", BAD_META.values(), ids=BAD_META.keys())
def test_a_bad_meta_json_is_one_line(run, change, message):
    path = run / "tokens" / "meta.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    change(meta)
    path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(SMLError, match=message) as e:
        load_meta(run / "tokens")
    assert str(e.value).startswith(f"{path}: ") and str(e.value).endswith("python -m stages.encode)")


def test_meta_json_that_is_not_an_object(run):
    path = run / "tokens" / "meta.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SMLError, match="meta.json: expected a JSON object, found list"):
        load_meta(run / "tokens")


def test_another_runs_meta_json_is_caught_by_the_token_counts_too(run, runs):
    shutil.copy(runs / "other" / "tokens" / "meta.json", run / "tokens" / "meta.json")
    for split in ("train", "val"):  # without the tokenizer at hand (evaluate reads only tokens)
        with pytest.raises(SMLError, match=f"{split}.bin: holds .* tokens but .*meta.json says"):
            load_tokens(run / "tokens", split)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RssFile from /proc (Linux)")
def test_pages_read_from_a_token_file_are_given_back(tmp_path):
    """A scan of a memory-mapped file would otherwise leave the whole file in the process's
    resident memory: load_tokens' id check reads every page, and a 2 GB split would stay."""
    from sml.data.tokens import drop_pages

    def file_backed_mb() -> float:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("RssFile:"))
        return int(line.split()[1]) / 1024

    path = tmp_path / "big.bin"
    np.arange(20_000_000, dtype=np.uint16).tofile(path)  # 40 MB
    tokens = np.memmap(path, dtype=np.uint16, mode="r")
    before = file_backed_mb()
    assert int(tokens[: len(tokens) // 2].max()) > 0 and int(tokens.max()) == 65535  # reads every page
    assert file_backed_mb() - before > 30
    drop_pages(tokens[10:])  # a slice of the map shares its pages
    assert file_backed_mb() - before < 5
