"""Benchmark: time and peak memory of each data stage on a big corpus, next to Hugging Face.

    .venv/bin/python bench/corpus_prep.py [--mb 100 1000] [--keep]

For each size it makes (or reuses) a synthetic English-like corpus with
``bench/make_corpus.py`` (cached as ``bench/out/corpus-<size>MB.txt``), writes a params file
(the repo's ``params.yaml`` with the corpus as the data source, ``data.val_fraction`` 0.005,
vocab 4096, ``tokenizer.train_bytes`` 100 MB) and runs, each as its own process from the
repository root, with every output in a work folder W:

1. download: the corpus (a local path, sha256 "": not pinned) into W as train.txt and val.txt;
2. train_bpe on the train text (at most ``train_bytes`` of it, ``sml.data.corpus.sample_lines``);
3. encode with 1 worker, then with every core (``os.cpu_count()``): the speed-up is
   measured against its own single-process baseline, in the same run;
4. evaluate's data work: the token files loaded and checked (``sml.data.tokens.load_tokens``),
   ``sml.evaluate.bigram_loss`` over them (memory maps)
   and the known-word set read from a bounded sample of the train text;
5. the baseline, Hugging Face ``tokenizers`` in one process: a byte-level BPE trained to
   the same vocab on the same sample (written to a file first, not timed), set up as
   ``bench/hf_train_bpe.py``, then ``encode_batch`` over the whole train text, 10,000
   lines a batch, ids to a uint16 file. Its train and encode times come from inside it.

For every process: wall seconds (start to exit, ~50 ms resolution), and peak memory two
ways: ``ru_maxrss`` of the biggest single process (``RUSAGE_CHILDREN`` of a fresh helper
process that runs only that command, so each figure is its own; Linux counts in it the
~20 MB the command was forked with, the helper's), and the peak of the sum
of VmRSS over the process tree (the stage and its workers), sampled from /proc every
0.1 s (Linux only; a peak shorter than that can be missed, and pages shared between
processes, such as a forked worker's copy of the parent, count once per process). MB/s is
corpus bytes (10^6 a MB) read per second, where a stage reads text. Memory is in MB too.

Then it checks three targets and prints PASS or MISS with the figures (nothing asserts):
peak RSS of every stage <= 2 GB (2,000 MB) at every size; encode on every core >= 1.7x
the throughput of 1 worker; train_bpe + encode (every core) <= 1.5x HF's train +
encode_batch (whole processes, wall time). Results go to ``bench/out/corpus_prep.json``.

The params and commands are all in ``pipeline()``: when a stage's options change, that
function is the one place to adjust. Logs of every process: ``bench/out/corpus_prep/logs/``.
Left out on purpose: the training stages, and corpora other than the synthetic one.
"""

import argparse
import datetime
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
VOCAB_SIZE = 4096
TRAIN_BYTES = 100_000_000
VAL_FRACTION = 0.005
HF_BATCH_LINES = 10_000
SAMPLE_S = 0.1  # how often the process tree's memory is read
RSS_LIMIT_MB = 2000
SPEEDUP_TARGET = 1.7
HF_RATIO_TARGET = 1.5
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

# evaluate's data work (what sml.evaluate.evaluate does besides running the model), as its own
# process: argv = the tokens folder, the train text.
EVALUATE_DATA = """
import sys
from sml.data.corpus import sample_lines
from sml.evaluate import WORD_SAMPLE_BYTES, bigram_loss, words_of
from sml.data.tokens import load_meta, load_tokens
tokens, text = sys.argv[1:3]
train, val = load_tokens(tokens, "train"), load_tokens(tokens, "val")  # checked, as the stage loads them
loss = bigram_loss(train, val, load_meta(tokens)["vocab_size"])
words = words_of(sample_lines(text, WORD_SAMPLE_BYTES))
print(f"evaluate data: bigram val loss {loss:.4f} nats/token, {len(words):,} known words")
"""


@dataclass
class Step:
    """One measured process: a key for the results, what the table calls it, its command line,
    how many bytes of text it reads (for MB/s; None: not a text reader), and what to do first
    (not timed)."""

    key: str
    label: str
    argv: list[str]
    reads: Callable[[], int] | None = None
    prepare: Callable[[], None] | None = None


@dataclass
class Pipeline:
    """The params file's contents and the steps, in order, for one corpus and work folder."""

    params: dict
    steps: list[Step] = field(default_factory=list)


def pipeline(corpus: Path, w: Path, params: dict) -> Pipeline:
    """The params and the commands: the one place to change when the stages' options change.

    ``params`` is the repo's params.yaml with the tokenizer keys set; ``w`` the work folder.
    """
    params["data"].update(sources=[{"url": str(corpus), "sha256": "", "format": "text"}], val_sources=[],
                          val_fraction=VAL_FRACTION)
    p, train = str(w / "params.yaml"), w / "corpus" / "train.txt"
    n = os.cpu_count() or 1
    steps = [
        Step("download", "download", stage("download", "--params", p, "--out", w / "corpus",
                                           "--downloads", w / "downloads"), lambda: size(corpus)),
        Step("train_bpe", "train_bpe", stage("train_bpe", "--params", p, "--corpus", train, "--out", w / "tokenizer"),
             lambda: min(size(train), TRAIN_BYTES)),
        *[Step(key, f"encode ({k} worker{'s' if k > 1 else ''})",
               stage("encode", "--params", p, "--corpus", w / "corpus", "--tokenizer", w / "tokenizer",
                     "--out", w / out, "--workers", k), lambda: size(corpus))
          for key, k, out in (("encode_1", 1, "tokens-1"), ("encode_all", n, "tokens"))],
        Step("evaluate_data", "evaluate data", [sys.executable, "-c", EVALUATE_DATA, str(w / "tokens"), str(train)]),
    ]
    return Pipeline(params, steps + hf_steps(train, w))


def hf_steps(train: Path, w: Path) -> list[Step]:
    """The HF baseline on ``train``: its sample is written first (as train_bpe samples it)."""
    sample, ids = w / "hf-sample.txt", w / "hf-ids.bin"
    return [Step("hf", "HF train + encode_batch", [sys.executable, str(Path(__file__).resolve()), "--hf-baseline",
                                                   str(sample), str(train), str(VOCAB_SIZE), str(ids)],
                 lambda: size(train), prepare=lambda: write_sample(train, sample))]


def stage(name: str, *args) -> list[str]:
    return [sys.executable, "-m", f"stages.{name}", *map(str, args)]


def size(path: Path) -> int:
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[100, 1000], help="corpus sizes, MB (10^6 bytes)")
    parser.add_argument("--keep", action="store_true", help="keep each size's work folder under bench/out/")
    parser.add_argument("--measure", metavar="LOG", help=argparse.SUPPRESS)
    parser.add_argument("--hf-baseline", nargs=4, metavar=("SAMPLE", "TEXT", "VOCAB", "IDS"), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.measure:  # the helper: run one command (after "--"), report its figures as JSON
        print(json.dumps(measure(rest[1:] if rest[:1] == ["--"] else rest, Path(args.measure))))
        return
    if args.hf_baseline:
        sample, text, vocab, ids = args.hf_baseline
        print(json.dumps(hf_baseline(Path(sample), Path(text), int(vocab), Path(ids))))
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if not sys.platform.startswith("linux"):
        sys.exit("corpus_prep: Linux only (process-tree memory is read from /proc)")

    machine = describe_machine()
    machine["parallel_ceiling"] = parallel_ceiling(machine["usable_cores"])
    print(f"{machine['date']}: {machine['cpu']}; {machine['cores']} cores ({machine['usable_cores']} usable);"
          f" flags: {', '.join(f'{k} {v}' for k, v in machine['flags'].items())}")
    print(f"this machine's ceiling: {machine['usable_cores']} busy Python processes do"
          f" {machine['parallel_ceiling']:.2f}x the work of one in the same time (a pure CPU loop)")
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    for mb in args.mb:
        corpus = ensure_corpus(mb)
        results[f"{mb:g}"] = run_size(corpus, mb, args.keep)
    targets = check_targets(results, machine["parallel_ceiling"])
    print_table(results)
    print()
    for t in targets:
        print(f"{'PASS' if t['ok'] else 'MISS'}  {t['text']}")
    report = {"machine": machine, "sizes_mb": results, "targets": targets}
    (OUT / "corpus_prep.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"\nresults: {OUT / 'corpus_prep.json'}")


def run_size(corpus: Path, mb: float, keep: bool) -> dict:
    """Every step for one corpus; returns {step key: figures}."""
    w = OUT / "corpus_prep" / f"work-{mb:g}MB"
    logs = OUT / "corpus_prep" / "logs"
    shutil.rmtree(w, ignore_errors=True)
    w.mkdir(parents=True)
    logs.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["tokenizer"].update(vocab_size=VOCAB_SIZE, train_bytes=TRAIN_BYTES)
    steps = pipeline(corpus, w, params)
    (w / "params.yaml").write_text(yaml.safe_dump(steps.params, sort_keys=False), encoding="utf-8")
    figures = {}
    for step in steps.steps:
        if step.prepare:
            step.prepare()
        log = logs / f"{mb:g}MB-{step.key}.log"
        print(f"{mb:g} MB: {step.label} ...", end="", flush=True)
        helper = [sys.executable, str(Path(__file__).resolve()), "--measure", str(log), "--", *step.argv]
        done = subprocess.run(helper, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"\ncorpus_prep: the measuring helper failed: {done.stderr.strip()[-2000:]}")
        f = json.loads(done.stdout)
        if f["returncode"] != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            sys.exit(f"\ncorpus_prep: {step.label} exited {f['returncode']} ({log}): " + " | ".join(tail))
        n_bytes = step.reads() if step.reads else None
        f.update(label=step.label, bytes=n_bytes, mb_per_s=n_bytes / 1e6 / f["seconds"] if n_bytes else None)
        figures[step.key] = f
        print(f" {f['seconds']:.1f} s, {f['max_rss_mb']:,.0f} MB biggest process,"
              f" {f['tree_rss_mb']:,.0f} MB process tree")
        if step.key == "hf":
            inner = json.loads(log.read_text(encoding="utf-8").strip().splitlines()[-1])
            sample_bytes = size(w / "hf-sample.txt")
            figures["hf_train"] = {"label": "  HF train (inside)", "seconds": inner["train_s"], "bytes": sample_bytes,
                                   "mb_per_s": sample_bytes / 1e6 / inner["train_s"]}
            figures["hf_encode"] = {"label": "  HF encode_batch (inside)", "seconds": inner["encode_s"],
                                    "bytes": n_bytes, "mb_per_s": n_bytes / 1e6 / inner["encode_s"]}
    if not keep:
        shutil.rmtree(w)
    return figures


def ensure_corpus(mb: float) -> Path:
    """bench/out/corpus-<mb>MB.txt, made by make_corpus.py (seed 0) unless it is already there."""
    path = OUT / f"corpus-{mb:g}MB.txt"
    if path.is_file():  # make_corpus writes atomically: a file there is a whole one
        print(f"corpus: {path} ({size(path) / 1e6:,.1f} MB, reused)")
        return path
    subprocess.run([sys.executable, str(REPO / "bench" / "make_corpus.py"), str(path), "--mb", f"{mb:g}"],
                   check=True)
    return path


def write_sample(text: Path, sample: Path) -> None:
    """The lines train_bpe trains on (``sml.data.corpus.sample_lines``), as a file for HF."""
    from sml.data.corpus import sample_lines  # only here: the helper and HF processes import no sml

    with open(sample, "w", encoding="utf-8", newline="") as f:
        f.writelines(sample_lines(text, TRAIN_BYTES))


# ---- measuring one process ---------------------------------------------------------------


def measure(argv: list[str], log: Path, cwd: Path = REPO) -> dict:
    """Run ``argv`` in ``cwd`` (output to ``log``); its wall seconds and peak memory.

    Meant to run in a fresh helper process: ``RUSAGE_CHILDREN`` then covers this one
    command (and the workers it waited for), and ``ru_maxrss`` is the biggest of them.
    """
    env = os.environ | {"PYTHONPATH": str(REPO)}
    peak = 0
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        while True:
            peak = max(peak, tree_rss_bytes(proc.pid))
            try:
                proc.wait(timeout=SAMPLE_S)
                break
            except subprocess.TimeoutExpired:
                pass
    seconds = time.perf_counter() - start
    max_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "returncode": proc.returncode, "max_rss_mb": max_rss * 1024 / 1e6,
            "tree_rss_mb": peak / 1e6}


def tree_rss_bytes(root: int) -> int:
    """The sum of the resident memory (VmRSS) of process ``root`` and all its descendants, now.

    Reads /proc (Linux): every process's parent from /proc/PID/stat, then the resident
    pages of each process in the tree from /proc/PID/statm. A process that ends meanwhile
    is skipped.
    """
    children = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            children[int(stat.rsplit(b")", 1)[1].split()[1])].append(int(entry.name))  # the name may hold ")"
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * resource.getpagesize()
        except OSError:
            pass
        todo.extend(children.get(pid, ()))
    return total


# ---- the Hugging Face baseline -----------------------------------------------------------


def hf_baseline(sample: Path, text: Path, vocab_size: int, ids_out: Path) -> dict:
    """Train HF's byte-level BPE on ``sample``, then encode ``text`` with it; seconds of each.

    Set up as ``bench/hf_train_bpe.py`` (ByteLevel pre-tokenizer, all 256 bytes, one special
    token). Training reads the sample in batches of lines, so HF spreads it over its threads;
    encoding goes ``HF_BATCH_LINES`` lines at a time, ids appended to a uint16 file.
    """
    import numpy as np
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    def batches(path: Path):
        with open(path, encoding="utf-8", newline="") as f:
            while batch := list(itertools.islice(f, HF_BATCH_LINES)):
                yield batch

    start = time.perf_counter()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(batches(sample), trainer=trainer)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    n_tokens = 0
    with open(ids_out, "wb") as out:
        for batch in batches(text):
            ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in tok.encode_batch(batch)), dtype=np.uint16)
            ids.tofile(out)
            n_tokens += len(ids)
    encode_s = time.perf_counter() - start
    return {"train_s": train_s, "encode_s": encode_s, "tokens": n_tokens, "vocab_size": tok.get_vocab_size()}


# ---- the report --------------------------------------------------------------------------


CPU_LOOP = "x = 0\nfor i in range(20_000_000): x += i"


def parallel_ceiling(n: int) -> float:
    """How much faster ``n`` processes do ``n`` units of pure CPU work than one does one unit:
    the most any parallel stage can gain here (a shared or throttled VM may give far less
    than ``n``). Best of 3 each, so a passing hiccup does not count."""
    def run(k: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", CPU_LOOP]) for _ in range(k)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start

    one, many = min(run(1) for _ in range(3)), min(run(n) for _ in range(3))
    return n * one / many


def describe_machine() -> dict:
    """CPU model, the flags that matter to the stages, core counts and the date."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "cpu": model,
            "flags": {f: "yes" if f in flags else "no" for f in CPU_FLAGS}, "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "python": sys.version.split()[0]}


def print_table(results: dict) -> None:
    """stage x size: seconds, peak RSS both ways, MB/s."""
    print(f"\n{'stage':<28} {'size':>8} {'seconds':>9} {'biggest proc':>13} {'process tree':>13} {'MB/s':>8}")
    keys = list(dict.fromkeys(k for figures in results.values() for k in figures))
    for key in keys:
        for mb, figures in results.items():
            f = figures.get(key)
            if f is None:
                continue
            rss = (f"{f['max_rss_mb']:>10,.0f} MB {f['tree_rss_mb']:>10,.0f} MB" if "max_rss_mb" in f
                   else f"{'':>13} {'':>13}")
            rate = f"{f['mb_per_s']:>8,.1f}" if f.get("mb_per_s") else f"{'':>8}"
            print(f"{f['label']:<28} {mb + ' MB':>8} {f['seconds']:>7,.1f} s {rss} {rate}")


def check_targets(results: dict, ceiling: float) -> list[dict]:
    """The three targets, each with the figures behind it (``ceiling``: see ``parallel_ceiling``)."""
    ours = [(mb, f) for mb, figures in results.items() for key, f in figures.items()
            if "max_rss_mb" in f and key != "hf"]
    worst_tree = max(ours, key=lambda m_f: m_f[1]["tree_rss_mb"])
    worst_proc = max(ours, key=lambda m_f: m_f[1]["max_rss_mb"])
    targets = [{
        "name": "peak_rss", "ok": max(worst_tree[1]["tree_rss_mb"], worst_proc[1]["max_rss_mb"]) <= RSS_LIMIT_MB,
        "text": f"peak RSS of every stage <= {RSS_LIMIT_MB:,} MB at every size: worst process tree"
                f" {worst_tree[1]['tree_rss_mb']:,.0f} MB ({worst_tree[1]['label']}, {worst_tree[0]} MB corpus),"
                f" biggest single process {worst_proc[1]['max_rss_mb']:,.0f} MB ({worst_proc[1]['label']},"
                f" {worst_proc[0]} MB corpus)"}]
    for mb, f in results.items():
        speedup = f["encode_all"]["mb_per_s"] / f["encode_1"]["mb_per_s"]
        targets.append({"name": f"encode_speedup_{mb}MB", "ok": speedup >= SPEEDUP_TARGET, "value": speedup,
                        "text": f"{mb} MB: encode on every core >= {SPEEDUP_TARGET}x 1 worker: {speedup:.2f}x"
                                f" ({f['encode_all']['mb_per_s']:.1f} vs {f['encode_1']['mb_per_s']:.1f} MB/s,"
                                f" {f['encode_all']['label']}; this machine's ceiling: {ceiling:.2f}x)"})
        encode = f["encode_all"]
        ours_s = f["train_bpe"]["seconds"] + encode["seconds"]
        ratio = ours_s / f["hf"]["seconds"]
        targets.append({"name": f"vs_hf_{mb}MB", "ok": ratio <= HF_RATIO_TARGET, "value": ratio,
                        "text": f"{mb} MB: train_bpe + {encode['label']} <= {HF_RATIO_TARGET}x HF train +"
                                f" encode_batch: {ratio:.2f}x ({f['train_bpe']['seconds']:.1f} +"
                                f" {encode['seconds']:.1f} = {ours_s:.1f} s vs {f['hf']['seconds']:.1f} s:"
                                f" {f['hf_train']['seconds']:.1f} s train + {f['hf_encode']['seconds']:.1f} s encode)"})
    return targets


if __name__ == "__main__":
    main()
