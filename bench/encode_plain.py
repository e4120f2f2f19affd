"""Benchmark: encode on text without punctuation, against the same text with it, in one run.

    .venv/bin/python bench/encode_plain.py [--mb 5 10 20] [--workers 1]

Lowercased or transcribed text (letters, spaces and line breaks only) once had no
place where the encoder could cut it into pieces (``sml.tokenizer.pretokenize``): the buffer
grew with the file and was rescanned every MB, so time grew with the square of the size and
memory with the size. This times the encode stage, as a whole process, on ``bench/make_corpus.py``
text of each size, punctuated (the baseline) and with every character but letters and
whitespace removed and the rest lowercased: seconds and peak memory (the process and its
workers), and plain against punctuated. Linear means the ratio stays flat as the size grows.

Left out on purpose: train_bpe (the tokenizer is trained once, on 1 MB of the punctuated text).
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOT_PLAIN = re.compile(r"[^\w\s]|[\d_]")


def plain(src: Path, dst: Path) -> None:
    """``src`` lowercased, every character but letters and whitespace removed, line by line."""
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8", newline="") as out:
        for line in f:
            out.write(NOT_PLAIN.sub("", line.lower()))


def encode(corpus: Path, tokenizer: Path, out: Path, params: Path, workers: int) -> tuple[float, float]:
    """Seconds and peak MB of ``python -m stages.encode`` on ``corpus`` (its workers included)."""
    code = ("import resource, runpy, sys\n"
            f"sys.argv = ['encode', '--corpus', {str(corpus)!r}, '--tokenizer', {str(tokenizer)!r},"
            f" '--out', {str(out)!r}, '--params', {str(params)!r}, '--workers', '{workers}']\n"
            "try:\n    runpy.run_module('stages.encode', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "peak = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))\n"
            "print('PEAK_KB', peak)\n")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"encode failed: {done.stderr.strip()[-500:]}")
    peak_kb = int(done.stdout.split("PEAK_KB")[-1])
    return seconds, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[5, 10, 20], help="corpus sizes, MB")
    parser.add_argument("--workers", type=int, default=1, help="encode processes (1: the plain loop alone)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from sml.config import load_params
    from sml.tokenizer import Tokenizer
    from tests.conftest import params_template

    with tempfile.TemporaryDirectory(prefix="sml-bench-") as tmp:
        root = Path(tmp)
        big = root / "big.txt"
        subprocess.run([sys.executable, str(REPO / "bench" / "make_corpus.py"), str(big), "--mb", str(max(args.mb))],
                       check=True, capture_output=True)
        sample = big.read_bytes()[:1_000_000].decode("utf-8", "ignore")
        tok_dir = Tokenizer.train(sample, 1024, "gpt4").save(root / "tokenizer")
        params = root / "params.yaml"
        params.write_text(json.dumps(params_template()))  # JSON is YAML; the encode stage reads data.special_in_text
        load_params(params)
        print(f"encode, one process per corpus ({args.workers} worker(s)); tokenizer: vocab 1024, gpt4 pattern")
        for mb in args.mb:
            figures = {}
            for kind in ("punctuated", "plain"):
                corpus = root / f"{kind}-{mb:g}"
                corpus.mkdir()
                with open(big, "rb") as f:
                    (corpus / "train.txt").write_bytes(f.read(int(mb * 1e6)).decode("utf-8", "ignore").encode())
                if kind == "plain":
                    plain(corpus / "train.txt", corpus / "plain.txt")
                    (corpus / "plain.txt").replace(corpus / "train.txt")
                (corpus / "val.txt").write_text("a small val split\n" * 100, encoding="utf-8")
                figures[kind] = encode(corpus, tok_dir.parent if tok_dir.is_file() else tok_dir,
                                       root / f"tokens-{kind}-{mb:g}", params, args.workers)
            (ps, pm), (ls, lm) = figures["punctuated"], figures["plain"]
            print(f"{mb:>6g} MB: punctuated {ps:6.1f} s {pm:6.0f} MB | plain {ls:6.1f} s {lm:6.0f} MB"
                  f" | plain/punctuated {ls / ps:4.2f}x time, {lm / pm:4.2f}x memory")


if __name__ == "__main__":
    main()
