"""Benchmark: encode on text without punctuation and on one endless line, against punctuated text.

    .venv/bin/python bench/encode_plain.py [--mb 5 10 20] [--workers 1]

Lowercased or transcribed text (letters, spaces and line breaks only) once had no place
where the encoder could cut it into pieces (``sml.tokenizer.pretokenize``): the buffer grew
with the file and was rescanned every MB, so time grew with the square of the size and
memory with the size. A file of one line was read whole. This times the encode stage, as a
whole process, on ``bench/make_corpus.py`` text of each size in three shapes: ``text`` (the
baseline), ``plain`` and ``oneline``: seconds and peak memory (the process and its
workers), and each shape against the baseline. Linear means the ratios stay flat as the
size grows; bounded memory means the MB stay flat.

Left out on purpose: train_bpe (the tokenizer is trained once, on 1 MB of the punctuated text).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHAPES = ("text", "plain", "oneline")  # bench/make_corpus.py's formats; text is the baseline


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
        sample_corpus = root / "sample.txt"
        make(sample_corpus, 1, "text")
        sample = sample_corpus.read_text(encoding="utf-8")
        tok_dir = Tokenizer.train(sample, 1024, "gpt4").save(root / "tokenizer")
        params = root / "params.yaml"
        params.write_text(json.dumps(params_template()))  # JSON is YAML; the encode stage reads data.special_in_text
        load_params(params)
        print(f"encode, one process per corpus ({args.workers} worker(s)); tokenizer: vocab 1024, gpt4 pattern")
        for mb in args.mb:
            figures = {}
            for shape in SHAPES:
                corpus = root / f"{shape}-{mb:g}"
                corpus.mkdir()
                make(corpus / "train.txt", mb, shape)
                (corpus / "val.txt").write_text("a small val split\n" * 100, encoding="utf-8")
                figures[shape] = encode(corpus, tok_dir.parent if tok_dir.is_file() else tok_dir,
                                        root / f"tokens-{shape}-{mb:g}", params, args.workers)
                (corpus / "train.txt").unlink()
            base_s, base_mb = figures["text"]
            row = " | ".join(f"{shape} {s:6.1f} s {m:5.0f} MB ({s / base_s:4.2f}x, {m / base_mb:4.2f}x)"
                             for shape, (s, m) in figures.items())
            print(f"{mb:>6g} MB: {row}")


def make(path: Path, mb: float, shape: str) -> None:
    subprocess.run([sys.executable, str(REPO / "bench" / "make_corpus.py"), str(path), "--mb", str(mb),
                    "--format", shape], check=True, capture_output=True)


if __name__ == "__main__":
    main()
