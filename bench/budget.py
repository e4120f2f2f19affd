"""Benchmark: quality at equal time. What does a fixed budget of seconds train, on this machine?

    # nanoGPT's documented CPU recipe timed as a whole process, then SML's cpu preset with
    # train.time_budget_s set to that time (a nanoGPT checkout: git clone karpathy/nanoGPT)
    .venv/bin/python bench/budget.py --corpus tinyshakespeare.txt --nanogpt ~/src/nanoGPT
    # a recipe search: every recipe in RECIPES at the same budget, one after another
    .venv/bin/python bench/budget.py --corpus tinyshakespeare.txt --budget 100 --search
    .venv/bin/python bench/budget.py --corpus tinyshakespeare.txt --budget 100 --recipe preset --dtypes float32 auto

nanoGPT's recipe (its README, "I only have a macbook"): 4 layers, 4 heads, 128 dims, context
64, batch 12, 2,000 iterations, character level, float32, no compile; its val loss is its own
estimate (20 batches). SML's figure is the loss over the whole val split (every character of
the last 10% of the text, nanoGPT's split too), in nats/char so that the two tokenizers
compare; nanoGPT's best checkpoint is scored over the same whole split as well.

Each recipe is a set of ``section.key`` overrides on the cpu preset, trained in a process
of its own (nothing carries over between them), on the same corpus, tokenizer per vocab size,
and budget. The machine must be otherwise idle: a budget counts seconds, so a busy machine
trains less. Results go to stdout and, with --out, to a JSON file.
"""

import argparse
import json
import math
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sml.config import apply_preset, parse_params  # noqa: E402

# nanoGPT's README, "I only have a macbook (or other cheap computer)".
NANOGPT_CPU = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
               "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
               "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]

# The recipe search: overrides on the cpu preset, each run at the same budget. max_iters is
# set high enough that the budget, not the step count, ends each run (warmup and decay then
# follow the clock), with warmup_iters the same share of it as in the preset. Round 1 found
# dropout 0 better at this length (under two passes over the data), so it is in LONG.
LONG = {"train.max_iters": 4000, "train.warmup_iters": 300, "train.checkpoint_interval": 4000,
        "model.dropout": 0.0}
SMALL = LONG | {"model.n_embd": 128, "tokenizer.vocab_size": 1024}
FAST_START = {"train.lr": 3e-3, "train.min_lr": 3e-4, "train.warmup_iters": 600}
RECIPES = {
    "preset": {},  # the cpu preset as params.yaml has it now (after the search: "2x128, batch 8")
    "base": LONG,
    "dropout 0.1": LONG | {"model.dropout": 0.1},
    "lr 3e-3": LONG | {"train.lr": 3e-3, "train.min_lr": 3e-4},
    "lr 1e-3": LONG | {"train.lr": 1e-3, "train.min_lr": 1e-4},
    "min_lr 0": LONG | {"train.min_lr": 0.0},
    "warmup 2%": LONG | {"train.warmup_iters": 80},
    "muon": LONG | {"train.optimizer": "muon", "train.muon_lr": 2e-3},
    "vocab 1024": LONG | {"tokenizer.vocab_size": 1024},
    "vocab 4096": LONG | {"tokenizer.vocab_size": 4096},
    "128 dims": LONG | {"model.n_embd": 128},
    "256 dims": LONG | {"model.n_embd": 256},
    "3 layers": LONG | {"model.n_layer": 3},
    "context 64, batch 32": LONG | {"model.block_size": 64, "train.batch_size": 32},
    "batch 8": LONG | {"train.batch_size": 8},
    "batch 32": LONG | {"train.batch_size": 32},
    # Round 2: smaller was better on both axes (128 dims, vocab 1024), so from there.
    "small": SMALL,
    "small, warmup 15%": SMALL | {"train.warmup_iters": 600},
    "small, lr 3e-3": SMALL | {"train.lr": 3e-3, "train.min_lr": 3e-4},
    "small, 3 layers": SMALL | {"model.n_layer": 3},
    "small, 6 layers": SMALL | {"model.n_layer": 6},
    "small, batch 8": SMALL | {"train.batch_size": 8},
    "small, batch 32": SMALL | {"train.batch_size": 32},
    "small, 96 dims": SMALL | {"model.n_embd": 96},
    # Round 3: 3 layers was better still; from there.
    "3x128": SMALL | {"model.n_layer": 3},
    "3x128, lr 3e-3, warmup 15%": SMALL | {"model.n_layer": 3} | FAST_START,
    "3x128, batch 8": SMALL | {"model.n_layer": 3, "train.batch_size": 8},
    "3x128, batch 8, lr 3e-3, warmup 15%": SMALL | {"model.n_layer": 3, "train.batch_size": 8} | FAST_START,
    "2x128": SMALL | {"model.n_layer": 2},
    "3x128, vocab 512": SMALL | {"model.n_layer": 3, "tokenizer.vocab_size": 512},
    "3x96": SMALL | {"model.n_layer": 3, "model.n_embd": 96},
    "4x96, lr 3e-3, warmup 15%": SMALL | {"model.n_embd": 96} | FAST_START,
    "2x128, batch 8": SMALL | {"model.n_layer": 2, "train.batch_size": 8},
    # Round 4, on the new preset (2x128, batch 8, as params.yaml has it now).
    "preset, batch 4": {"train.batch_size": 4},
    "preset, lr 3e-3": {"train.lr": 3e-3, "train.min_lr": 3e-4},
    "preset, warmup 15%": {"train.warmup_iters": 3000},
    # Round 5 (issue 27): the modern dials, one at a time on the preset, then together.
    "preset, relu2": {"model.mlp": "relu2"},
    "preset, wsd 30%": {"train.schedule": "wsd", "train.decay_fraction": 0.3},
    "preset, qk_norm, lr 6e-3": {"model.qk_norm": True, "train.lr": 6e-3, "train.min_lr": 6e-4},
    "preset, qk_norm": {"model.qk_norm": True},
    "preset, 1 kv head": {"model.n_kv_head": 1},
    "preset, swiglu": {"model.mlp": "swiglu"},
    "preset, rmsnorm": {"model.norm": "rmsnorm"},
    "preset, relu2, wsd 30%": {"model.mlp": "relu2", "train.schedule": "wsd", "train.decay_fraction": 0.3},
    "preset, relu2, wsd 30%, qk_norm": {"model.mlp": "relu2", "train.schedule": "wsd", "train.decay_fraction": 0.3,
                                        "model.qk_norm": True},
    # Round 6, on the preset with relu2 + wsd 30% (as params.yaml has it now).
    "preset, decay 50%": {"train.decay_fraction": 0.5},
    "preset, 3 layers": {"model.n_layer": 3},
    # Round 7: from "preset, qk_norm", the best of round 6.
    "qk_norm, lr 4e-3": {"model.qk_norm": True, "train.lr": 4e-3, "train.min_lr": 4e-4},
    "qk_norm, vocab 2048": {"model.qk_norm": True, "tokenizer.vocab_size": 2048},
    "qk_norm, context 64, batch 16": {"model.qk_norm": True, "model.block_size": 64, "train.batch_size": 16},
    "qk_norm, warmup 5%": {"model.qk_norm": True, "train.warmup_iters": 1000},
    # Round 8: Muon (orthogonalised in float32) for the blocks' matrices, at three lrs.
    "muon 3e-3": {"train.optimizer": "muon", "train.muon_lr": 3e-3},
    "muon 6e-3": {"train.optimizer": "muon", "train.muon_lr": 6e-3},
    "muon 1.2e-2": {"train.optimizer": "muon", "train.muon_lr": 1.2e-2},
    # Round 9: cheap changes to the preset (no slower step), each beside the preset.
    "untied": {"model.tie_weights": False},
    "beta2 0.95": {"train.beta2": 0.95},
    "lr 4e-3": {"train.lr": 4e-3, "train.min_lr": 4e-4},
    "context 64, batch 16": {"model.block_size": 64, "train.batch_size": 16},
    "weight decay 0": {"train.weight_decay": 0.0},
    # Round 10: from "preset, qk_norm" (better than the preset in rounds 6, 9 and c).
    "qk_norm, beta2 0.95": {"model.qk_norm": True, "train.beta2": 0.95},
    "qk_norm, beta2 0.95, lr 4e-3": {"model.qk_norm": True, "train.beta2": 0.95, "train.lr": 4e-3,
                                     "train.min_lr": 4e-4},
    "qk_norm, dropout 0.1": {"model.qk_norm": True, "model.dropout": 0.1},
    "qk_norm, 2 heads": {"model.qk_norm": True, "model.n_head": 2},
    # Round 11: the schedule's ends and the step's size, on the preset.
    "batch 4": {"train.batch_size": 4},
    "wsd to 0": {"train.min_lr": 0.0},
    "decay 20%": {"train.decay_fraction": 0.2},
    "warmup 3%": {"train.warmup_iters": 600},
    "vocab 768": {"tokenizer.vocab_size": 768},
    # Round 12: the two best of round 11 together, each recipe twice, in turns (two --work dirs).
    "wsd to 0, vocab 768": {"train.min_lr": 0.0, "tokenizer.vocab_size": 768},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="tiny Shakespeare (input.txt)")
    parser.add_argument("--nanogpt", type=Path, help="a nanoGPT checkout: time its CPU recipe first")
    parser.add_argument("--budget", type=float, help="seconds of training (default: nanoGPT's whole time)")
    parser.add_argument("--search", action="store_true", help="every recipe in RECIPES")
    parser.add_argument("--recipe", nargs="*", default=None, help="these recipes (default: preset)")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], help="train.dtype values to run each in")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra overrides, every run")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    parser.add_argument("--muon-float32", action="store_true",
                        help="Muon's Newton-Schulz in float32 (PyTorch's casts to bfloat16: emulated, 0.1x, on CPUs"
                             " without AVX-512 BF16)")
    parser.add_argument("--table", nargs="+", type=Path, help="print earlier --out files as one markdown table")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml",
                        help="--table: the params.yaml whose cpu preset the recipes ran on")
    args = parser.parse_args()
    if args.table:
        for line in table([json.loads(p.read_text()) for p in args.table], args.params):
            print(line)
        return
    if not args.corpus:
        parser.error("--corpus is needed to train")
    print(f"machine: {cpu_description()}")
    work = args.work or Path(tempfile.mkdtemp(prefix="sml-budget-"))
    results = {"machine": cpu_description(), "runs": []}
    budget = args.budget
    if args.nanogpt:
        results["nanogpt"] = nanogpt_run(args.nanogpt, args.corpus, work / "nanogpt")
        budget = budget or results["nanogpt"]["seconds"]
    if not budget:
        parser.error("give --budget, or --nanogpt to take its time")
    if args.muon_float32:
        os.environ["SML_BENCH_MUON_FLOAT32"] = "1"  # read by each recipe's process (``one``)
    names = list(RECIPES) if args.search else (args.recipe or ["preset"])
    extra = dict(parse_set(s) for s in args.set)
    for name in names:
        for dtype in args.dtypes:
            overrides = RECIPES[name] | extra | {"train.dtype": dtype, "train.time_budget_s": round(budget, 1)}
            result = run_isolated(name, overrides, args.corpus, work)
            results["runs"].append(result)
            print(row(result), flush=True)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
    if "nanogpt" in results:
        n = results["nanogpt"]
        print(f"nanoGPT CPU recipe: {n['seconds']:.1f} s as a whole process, val {n['val_loss']:.4f} nats/char"
              f" (its estimate), {n['whole_val']:.4f} nats/char over the whole val split")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def row(r: dict) -> str:
    return (f"{r['name']:<22} {r['dtype']:>8}: val {r['val_nats_per_char']:.4f} nats/char (whole split) at step"
            f" {r['best_step']:,} of {r['steps']:,}; {r['tokens_per_s']:,.0f} tokens/s; {r['train_seconds']:.1f} s"
            f" of training, {r['wall_seconds']:.1f} s in all")


def recipe_params(overrides: dict, params_file: Path = REPO / "params.yaml"):
    """The params a recipe trains with: the cpu preset of ``params_file``, then the recipe's overrides."""
    raw = yaml.safe_load(params_file.read_text())
    raw = apply_preset(raw, raw["presets"], "cpu")
    raw.pop("presets")
    return parse_params(apply_preset(raw, {"recipe": overrides}, "recipe"))


def table(results: list[dict], params_file: Path) -> list[str]:
    """Every run of ``results`` (``--out`` files) as a markdown row, with the recipe spelled out
    (the recipe's overrides on the cpu preset of ``params_file``: the params.yaml it ran with)."""
    lines = ["| recipe | vocab | layers x heads x dims | context | dropout | optimizer, lr -> min_lr | warmup |"
             " batch | dtype | steps | tokens/s | val nats/char |", "|" + " --- |" * 12]
    for result in results:
        for r in result["runs"]:
            p = recipe_params(r["overrides"], params_file)
            m, t = p.model, p.train
            share = t.warmup_iters / t.max_iters
            muon = f", muon {t.muon_lr:g} (blocks)" if t.optimizer == "muon" else ""
            schedule = f"wsd, last {t.decay_fraction:.0%}" if t.schedule == "wsd" else "cosine"
            lrs = f"adamw {t.lr:g} -> {t.min_lr:g}{muon} ({schedule})"
            lines.append(f"| {r['name']} | {p.tokenizer.vocab_size:,} | {m.n_layer}x{m.n_head}x{m.n_embd} |"
                         f" {m.block_size} | {m.dropout:g} | {lrs} | {share:.1%} of the run | {t.batch_size} |"
                         f" {r['dtype']} | {r['steps']:,} | {r['tokens_per_s']:,.0f} | {r['val_nats_per_char']:.4f} |")
    return lines


def parse_set(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    return key, yaml.safe_load(value)


def cpu_description() -> str:
    """The CPU's model name, core count and the flags that decide bfloat16 speed."""
    import platform

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = set((re.search(r"flags\s*:\s*(.*)", info) or re.match("()", "")).group(1).split())
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return (f"{model.group(1) if model else platform.processor() or platform.machine()}, {multiprocessing.cpu_count()}"
            f" cores, flags {' '.join(wanted) or 'none of avx2/avx512f/avx512_bf16/amx_bf16'}")


def run_isolated(name: str, overrides: dict, corpus: Path, work: Path) -> dict:
    """One recipe in a fresh process (``--one``), so that no run's threads or memory affect the next."""
    spec = work / f"{slug(name)}-{overrides['train.dtype']}.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({"name": name, "overrides": overrides, "corpus": str(corpus), "work": str(work)}))
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--one", str(spec)], check=True)
    result = json.loads(spec.with_suffix(".result.json").read_text())
    return result | {"wall_seconds": time.perf_counter() - start}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def one(spec_path: Path) -> None:
    """Prepare (or reuse) the data for this recipe's vocab, train on the budget, score the whole val split."""
    import io

    from sml.data.tokens import load_meta, load_tokens
    from sml.evaluate import loss_units, split_loss
    from sml.run.checkpoint import load_model
    from sml.run.device import pick_runtime
    from sml.run.trainer import TrainFiles, train

    spec = json.loads(spec_path.read_text())
    if os.environ.get("SML_BENCH_MUON_FLOAT32"):
        import torch.optim._muon

        torch.optim._muon._zeropower_via_newtonschulz = newton_schulz_float32
    params = recipe_params(spec["overrides"])
    work = Path(spec["work"])
    data = prepare(Path(spec["corpus"]), params, work / f"vocab{params.tokenizer.vocab_size}")
    out = work / "runs" / spec_path.stem
    shutil.rmtree(out, ignore_errors=True)
    files = TrainFiles(data / "tokens", data / "tokenizer" / "tokenizer.json", out / "checkpoint.pt",
                       out / "model", out / "train_log.tsv", out / "train_metrics.json")
    text = io.StringIO()
    metrics = train(params.model, params.train, files, out=text)
    (out / "train_output.txt").write_text(text.getvalue())
    runtime = pick_runtime("cpu", "float32", False)
    model = load_model(files.model, files.tokenizer)
    whole = loss_units(split_loss(model, load_tokens(files.tokens, "val"), runtime, 64), load_meta(files.tokens)["val"])
    result = {"name": spec["name"], "overrides": spec["overrides"], "dtype": params.train.dtype,
              "val_nats_per_char": whole["bits_per_char"] * math.log(2), "val_bits_per_char": whole["bits_per_char"],
              "steps": metrics["steps"], "best_step": metrics["best_step"], "tokens_per_s": metrics["tokens_per_s"],
              "train_seconds": metrics["train_seconds"], "warmup_seconds": metrics["warmup_seconds"],
              "parameters": metrics["parameters"]}
    spec_path.with_suffix(".result.json").write_text(json.dumps(result))


def newton_schulz_float32(grad, coefficients: tuple[float, float, float], steps: int, eps: float):
    """PyTorch's Muon orthogonalisation (torch/optim/_muon.py, the same quintic iteration) in float32."""
    import torch

    a, b, c = coefficients
    x = grad.float()
    tall = grad.size(0) > grad.size(1)
    x = x.T if tall else x
    x = x / x.norm().clamp(min=eps)  # spectral norm at most 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def prepare(corpus: Path, params, data: Path) -> Path:
    """Corpus split, tokenizer and token files as the download, train_bpe and encode stages make them."""
    from sml.data.encode import encode_corpus
    from sml.data.sources import Source, build_corpus
    from sml.tokenizer import Tokenizer

    if (data / "tokens" / "meta.json").exists():
        return data
    build_corpus([Source(corpus, "text", "--corpus")], [], data / "corpus", params.data.val_fraction)
    text = (data / "corpus" / "train.txt").read_text(encoding="utf-8")
    tok = Tokenizer.train(text, params.tokenizer.vocab_size, params.tokenizer.pattern,
                          list(params.tokenizer.special_tokens))
    tok.save(data / "tokenizer")
    encode_corpus(data / "corpus", tok, data / "tokens")
    return data


def nanogpt_run(checkout: Path, corpus: Path, work: Path) -> dict:
    """nanoGPT's CPU recipe in a copy of ``checkout``, timed as a whole process; its best
    checkpoint is then scored over the whole val split, in this process, with its own model code."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(checkout, work, ignore=shutil.ignore_patterns(".git", "out-*"))
    data = work / "data" / "shakespeare_char"
    shutil.copy(corpus, data / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=data, check=True, capture_output=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "train.py", *NANOGPT_CPU], cwd=work, check=True, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    (work / "train_output.txt").write_text(done.stdout + done.stderr)
    last = re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", done.stdout)[-1]
    result = {"seconds": seconds, "steps": int(last[0]), "train_loss": float(last[1]), "val_loss": float(last[2]),
              "whole_val": nanogpt_whole_val(work)}
    print(f"nanoGPT CPU recipe: {seconds:.1f} s as a whole process; step {last[0]}: val {last[2]} nats/char (its"
          f" estimate), {result['whole_val']:.4f} nats/char over the whole val split", flush=True)
    return result


def nanogpt_whole_val(work: Path) -> float:
    """Mean loss (nats/char) of nanoGPT's saved checkpoint over every window of its val.bin."""
    import numpy as np
    import torch

    sys.path.insert(0, str(work))
    from model import GPT, GPTConfig  # nanoGPT's own model.py, in the copy

    ckpt = torch.load(work / "out-shakespeare-char" / "ckpt.pt", map_location="cpu", weights_only=False)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    model.eval()
    val = np.fromfile(work / "data" / "shakespeare_char" / "val.bin", dtype=np.uint16)
    ids = torch.from_numpy(val.astype(np.int64))
    T = ckpt["model_args"]["block_size"]
    n = (len(ids) - 1) // T
    x, y = ids[: n * T].view(n, T), ids[1 : n * T + 1].view(n, T)
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, 64):
            logits, _ = model(x[i : i + 64], y[i : i + 64])
            total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[i : i + 64].flatten(),
                                                       reduction="sum").item()
    return total / (n * T)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        one(Path(sys.argv[2]))
    else:
        main()
