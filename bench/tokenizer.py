"""Benchmark: how fast SML's tokenizer trains and encodes, each figure next to a baseline timed
in the same run (Hugging Face ``tokenizers``, OpenAI's ``tiktoken``, the textbook trainer).

Run it from anywhere:

    .venv/bin/python bench/tokenizer.py [--corpus PATH] [--naive]

The corpus defaults to ``data/corpus/train.txt``, else the file in ``$SML_DATA_MIRROR`` whose sha256
is ``data.sources[0].sha256`` of ``params.yaml`` (tiny Shakespeare). What it measures:

1. training to vocab 4096 in this process, patterns gpt4 and gpt2: ours vs HF's BPE trainer;
2. whole processes, start to saved file: ``python -m stages.train_bpe`` vs ``hf_train_bpe.py``,
   and whether the stage imports torch (it must not: it should start as fast as it trains);
3. encoding the corpus as one string, in MB/s of UTF-8: our pure-Python encoder (cold and warm
   chunk cache), our tiktoken backend, and HF; and that tiktoken gives our ids exactly;
4. with ``--naive`` (about a minute): the textbook trainer of ``tests/reference_bpe.py``, which
   recounts every pair after each merge, to vocab 512, vs ours; both must learn the same merges.

Timings are the best of 3 runs (the naive trainer runs once). Figures depend on the machine;
nothing here asserts on them. HF may use every CPU core; ours uses one.
Left out on purpose: memory use, and corpora other than one text file.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import yaml
from hf_train_bpe import train as hf_train  # bench/ is on sys.path when this runs as a script

from sml.config import load_params
from sml.data.download import MIRROR_ENV, find_in_mirror
from sml.tokenizer import Tokenizer
from sml.tokenizer.pretokenize import compile_pattern, special_regex, split_special

REPO = Path(__file__).resolve().parent.parent
REPEATS = 3
VOCAB_SIZE = 4096
NAIVE_VOCAB_SIZE = 512
SPECIALS = ["<|endoftext|>"]


def main() -> None:
    """Find the corpus, then print the figures in order."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="UTF-8 text to train and encode on")
    parser.add_argument("--naive", action="store_true", help="also time the naive trainer (~70 s)")
    args = parser.parse_args()

    corpus = find_corpus(args.corpus)
    with open(corpus, encoding="utf-8", newline="") as f:
        text = f.read()
    n_bytes = len(text.encode("utf-8"))
    print(f"corpus: {corpus} ({n_bytes:,} bytes)")
    print(f"timings: best of {REPEATS} runs; machine: {os.cpu_count()} CPU cores")

    tok, hf = bench_training(text)
    bench_processes(corpus)
    bench_encoding(text, n_bytes, tok, hf)
    if args.naive:
        bench_naive(text)


def find_corpus(corpus: Path | None) -> Path:
    """``--corpus``, else data/corpus/train.txt, else the mirror's file with the corpus's sha256."""
    if corpus is not None:
        if not corpus.is_file():
            sys.exit(f"bench: {corpus}: no such file")
        return corpus.resolve()  # the subprocesses below run in the repository root
    default = REPO / "data" / "corpus" / "train.txt"
    if default.is_file():
        return default
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        found = find_in_mirror(Path(mirror), load_params(REPO / "params.yaml").data.sources[0].sha256)
        if found is not None:
            return found
    sys.exit(f"bench: no corpus found: pass --corpus PATH or set {MIRROR_ENV} to a directory "
             "holding tiny Shakespeare")


def bench_training(text: str) -> tuple[Tokenizer, object]:
    """Figure 1: train to VOCAB_SIZE in this process, ours vs HF. Returns both (gpt4 for ours)."""
    print(f"\n1. training to vocab {VOCAB_SIZE:,}, in this process")
    hf_seconds, hf = best_of(partial(hf_train, text, VOCAB_SIZE))
    print(f"   HF tokenizers (ByteLevel, GPT-2 split): {hf_seconds:.3f} s")
    trained = {}
    for pattern in ("gpt4", "gpt2"):
        seconds, trained[pattern] = best_of(
            partial(Tokenizer.train, text, VOCAB_SIZE, pattern, SPECIALS)
        )
        print(f"   ours, pattern {pattern}: {seconds:.3f} s"
              f"  ours/HF = {seconds / hf_seconds:.1f}x (target <= 2x)")
    return trained["gpt4"], hf


def bench_processes(corpus: Path) -> None:
    """Figure 2: the train_bpe stage as a whole process vs the HF script; no torch on that path."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["tokenizer"]["vocab_size"] = VOCAB_SIZE
    pattern = params["tokenizer"]["pattern"]
    print(f"\n2. whole processes, start to saved tokenizer (vocab {VOCAB_SIZE:,}), wall time")
    with tempfile.TemporaryDirectory() as tmp:
        params_path = Path(tmp) / "params.yaml"
        params_path.write_text(yaml.safe_dump(params), encoding="utf-8")
        stage = ["-m", "stages.train_bpe", "--corpus", str(corpus),
                 "--out", str(Path(tmp) / "ours"), "--params", str(params_path)]
        hf_script = [str(REPO / "bench" / "hf_train_bpe.py"), str(corpus), str(VOCAB_SIZE),
                     str(Path(tmp) / "hf.json")]
        hf_seconds, _ = best_of(partial(run_python, hf_script))
        ours_seconds, _ = best_of(partial(run_python, stage))
        # -X importtime logs every import to stderr, one "import time: ... | <module>" line each.
        log = run_python(["-X", "importtime", *stage])
    imported = {line.rsplit("|", 1)[-1].strip()
                for line in log.splitlines() if line.startswith("import time:")}
    print(f"   HF: python bench/hf_train_bpe.py: {hf_seconds:.3f} s")
    print(f"   ours: python -m stages.train_bpe (pattern {pattern}): {ours_seconds:.3f} s"
          f"  ours/HF = {ours_seconds / hf_seconds:.1f}x (target <= 2x)")
    for module in ("torch", "numpy"):
        print(f"   {module} imported on train_bpe path: {'yes' if module in imported else 'no'}")


def bench_encoding(text: str, n_bytes: int, tok: Tokenizer, hf) -> None:
    """Figure 3: encode the whole corpus as one string, in MB/s; check tiktoken's ids."""
    def mb_per_s(seconds: float) -> float:
        return n_bytes / seconds / 1e6

    print(f"\n3. encoding the corpus as one string (MB/s = UTF-8 bytes / s / 1e6;"
          f" ours: pattern {tok.pattern_name})")
    hf_rate = mb_per_s(best_of(partial(hf.encode, text))[0])
    print(f"   HF tokenizers encode: {hf_rate:.2f} MB/s")

    # Cold: each run gets a fresh Tokenizer (same merges), so its chunk cache starts empty.
    fresh = iter([Tokenizer(tok.merges, tok.pattern, tok.special_tokens) for _ in range(REPEATS)])
    cold_seconds, python_ids = best_of(lambda: next(fresh).encode_ordinary(text))
    tok.encode_ordinary(text)  # fills the cache: every chunk of the text is now known
    warm_seconds, _ = best_of(partial(tok.encode_ordinary, text))
    for label, seconds in (("cold", cold_seconds), ("warm", warm_seconds)):
        rate = mb_per_s(seconds)
        print(f"   ours, pure Python, {label} cache: {rate:.2f} MB/s"
              f" (target >= 4 MB/s; {rate / hf_rate:.1f}x HF)")

    tok.encode(text, backend="tiktoken")  # the first call builds the tiktoken Encoding
    tiktoken_seconds, tiktoken_ids = best_of(partial(tok.encode, text, backend="tiktoken"))
    rate = mb_per_s(tiktoken_seconds)
    print(f"   ours, tiktoken backend: {rate:.2f} MB/s ({rate / hf_rate:.1f}x HF)")
    same = "yes" if tiktoken_ids == python_ids else "NO"
    print(f"   ids identical: {same} (tiktoken backend vs pure Python, {len(python_ids):,} tokens)")


def bench_naive(text: str) -> None:
    """Figure 4: the textbook trainer (tests/reference_bpe.py) vs ours, to NAIVE_VOCAB_SIZE."""
    n_merges = NAIVE_VOCAB_SIZE - 256 - len(SPECIALS)
    print(f"\n4. naive trainer (tests/reference_bpe.py: recounts all pairs after each merge)"
          f" vs ours, vocab {NAIVE_VOCAB_SIZE}, pattern gpt4")
    split_re = compile_pattern("gpt4")
    chunks = [chunk for piece, is_special in split_special(text, special_regex(SPECIALS))
              if not is_special for chunk in split_re.findall(piece)]
    sys.path.insert(0, str(REPO))  # the reference lives in tests/, which is not installed
    from tests.reference_bpe import naive_train

    start = time.perf_counter()
    naive_merges, _ = naive_train(chunks, n_merges)
    naive_seconds = time.perf_counter() - start
    ours_seconds, tok = best_of(
        partial(Tokenizer.train, text, NAIVE_VOCAB_SIZE, "gpt4", SPECIALS)
    )
    print(f"   naive (one run): {naive_seconds:.1f} s")
    print(f"   ours: {ours_seconds:.3f} s  naive/ours = {naive_seconds / ours_seconds:.0f}x")
    print(f"   merges identical: {'yes' if naive_merges == tok.merges else 'NO'}"
          f" ({len(tok.merges)} merges)")


def best_of(fn, repeats: int = REPEATS):
    """Run ``fn()`` ``repeats`` times; return (fastest seconds, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run_python(args: list[str]) -> str:
    """Run ``python ARGS`` in the repository root; return its stderr, or exit if it failed."""
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench: python {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stderr


if __name__ == "__main__":
    main()
