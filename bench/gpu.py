"""Benchmark: the real run on one GPU, in one script (a few minutes on an H100 or H200).

    .venv/bin/python bench/gpu.py --out-dir gpu-figures          # on a CUDA machine
    .venv/bin/python bench/gpu.py --device cpu --tiny --corpus F  # every step, tiny, on a CPU

On CUDA the whole process is capped to 16 GB of GPU memory
(``torch.cuda.set_per_process_memory_fraction``), so every run below also shows that it
fits the user's 16 GB card. In order:
1. data: tiny Shakespeare (from SML_DATA_MIRROR by its sha256, or ``--corpus``), the
   shipped tokenizer params, encoded;
2. the shipped run (params.yaml's model and train sections, as ``dvc repro`` runs them):
   time to val <= 1.47 nats/char (nanoGPT's character-level result), best val, tokens/s,
   MFU, peak memory against the estimate, compile time;
3. compile off: the same params for a few hundred steps, tokens/s without torch.compile;
4. Ctrl-C + resume: a short run interrupted half-way by a real SIGINT and resumed, its
   weights compared with a straight run's, with ``train.deterministic`` off and on;
5. generation with the trained model: tokens/s with and without the KV cache, and the
   decode step alone, eager and replayed as a CUDA graph;
6. fine-tuning (the shipped ``finetune`` params, on the play's conversations, from the
   shipped run's model): tokens/s, time, and evaluate_chat's figures before and after.
Each step prints its figures as it ends; a step that fails prints why and the rest go on.
Everything lands in ``--out-dir``: figures.json and each run's own output.

``--tiny`` swaps in a 2-layer model and a few dozen steps (tests/test_bench.py runs it).
"""

import argparse
import dataclasses
import io
import json
import math
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: step 4 needs it

import torch  # noqa: E402

from sml.config import load_params  # noqa: E402
from sml.data.download import fetch  # noqa: E402
from sml.data.encode import encode_corpus  # noqa: E402
from sml.data.sources import Source, build_corpus  # noqa: E402
from sml.kvcache import KVCache  # noqa: E402
from sml.run.checkpoint import load_checkpoint, load_model  # noqa: E402
from sml.run.device import synchronize  # noqa: E402
from sml.run.trainer import TrainFiles, train  # noqa: E402
from sml.tokenizer import Tokenizer  # noqa: E402
from sml.train import Interrupted  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from generate import best_rate  # noqa: E402  (bench/generate.py: best of 3, after a warm-up)

TARGET_NATS_PER_CHAR = 1.47
CAP_BYTES = 16e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu", "mps"])
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model and a few dozen steps")
    parser.add_argument("--corpus", type=Path, help="default: params.yaml's data source via SML_DATA_MIRROR")
    parser.add_argument("--out-dir", type=Path, default=Path("bench-gpu"))
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sml-gpu-"))
    figures: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": describe(args.device),
                     "torch": torch.__version__, "tiny": args.tiny}
    print(f"bench/gpu.py: {figures['device']}, torch {torch.__version__}", flush=True)
    if args.device == "cuda":
        cap = min(1.0, CAP_BYTES / torch.cuda.get_device_properties(0).total_memory)
        torch.cuda.set_per_process_memory_fraction(cap, 0)
        figures["memory_cap_gb"] = CAP_BYTES / 1e9
        print(f"memory: this process is capped to {CAP_BYTES / 1e9:.0f} GB of the GPU (fraction {cap:.3f})")

    params = load_params(REPO / "params.yaml")
    model_cfg, cfg = params.model, dataclasses.replace(params.train, device=args.device, nproc=1)
    if args.tiny:
        model_cfg = dataclasses.replace(model_cfg, n_layer=2, n_head=2, n_embd=32, block_size=32)
        cfg = dataclasses.replace(cfg, batch_size=8, max_iters=40, warmup_iters=5, eval_interval=10,
                                  eval_iters=4, log_interval=5, checkpoint_interval=20, patience=0)
    short = 20 if args.tiny else 300
    failed = []

    def step(name, fn):
        start = time.perf_counter()
        try:
            fn()
        except Exception as e:  # a failed step must not cost the others' figures
            failed.append(name)
            figures[name] = {"error": f"{type(e).__name__}: {e}"}
            print(f"{name}: FAILED: {type(e).__name__}: {e}", flush=True)
            (args.out_dir / f"{name}.error.txt").write_text(traceback.format_exc())
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)

    data = work / "data"
    step("data", lambda: prepare(args, params, data, figures))
    step("shipped_run", lambda: shipped_run(args, model_cfg, cfg, data, work, figures))
    step("compile_off", lambda: speed_run(args, model_cfg, dataclasses.replace(
        cfg, compile=False, max_iters=short, patience=0, eval_interval=short), data, work, figures))
    step("resume", lambda: resume_runs(args, model_cfg, cfg, short, data, work, figures))
    step("generation", lambda: generation(args, work / "shipped" / "model", data, figures))
    step("finetune", lambda: finetune_run(args, params, cfg, data, work, figures))

    (args.out_dir / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {args.out_dir / 'figures.json'}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def describe(device: str) -> str:
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        return f"{p.name} ({p.total_memory / 1e9:.0f} GB), {torch.cuda.device_count()} GPU(s)"
    return f"{device}, {os.cpu_count()} cores"


def prepare(args, params, data: Path, figures: dict) -> None:
    """Corpus, tokenizer and token files, as the download, train_bpe and encode stages make them."""
    data.mkdir(parents=True)
    source = params.data.sources[0]
    got = fetch(str(args.corpus) if args.corpus else source.url, "" if args.corpus else source.sha256,
                data / "downloads")
    build_corpus([Source(got.path, "text", "data.sources[0]")], [], data / "corpus", params.data.val_fraction)
    text = (data / "corpus" / "train.txt").read_text(encoding="utf-8")
    vocab = 300 if args.tiny else params.tokenizer.vocab_size
    tok = Tokenizer.train(text, vocab, params.tokenizer.pattern, list(params.tokenizer.special_tokens))
    tok.save(data / "tokenizer")
    encode_corpus(data / "corpus", tok, data / "tokens")
    meta = json.loads((data / "tokens" / "meta.json").read_text())
    figures["data"] = {"chars": len(text), "train_tokens": meta["train"]["tokens"],
                       "val_tokens": meta["val"]["tokens"], "vocab_size": vocab}
    print(f"data: {len(text):,} characters of train text; train {meta['train']['tokens']:,} tokens, val"
          f" {meta['val']['tokens']:,} tokens at vocab {vocab:,}")


def files(data: Path, out: Path) -> TrainFiles:
    return TrainFiles(data / "tokens", data / "tokenizer" / "tokenizer.json", out / "checkpoint" / "checkpoint.pt",
                      out / "model", out / "train_log.tsv", out / "train_metrics.json")


def run_train(args, name: str, model_cfg, cfg, data: Path, work: Path, on_step=None) -> tuple[dict, float]:
    """One train() call; its output goes to out-dir/NAME.txt. Returns the metrics and wall seconds."""
    text = io.StringIO()
    start = time.perf_counter()
    try:
        metrics = train(model_cfg, cfg, files(data, work / name), on_step=on_step, out=text)
    finally:
        (args.out_dir / f"{name}.txt").write_text(text.getvalue())
    return metrics, time.perf_counter() - start


def shipped_run(args, model_cfg, cfg, data: Path, work: Path, figures: dict) -> None:
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    metrics, wall = run_train(args, "shipped", model_cfg, cfg, data, work)
    rows = [r for r in read_log(work / "shipped" / "train_log.tsv") if r["val_bits_per_char"]]
    reached = next((r for r in rows if r["val_bits_per_char"] * math.log(2) <= TARGET_NATS_PER_CHAR), None)
    m = figures["shipped_run"] = {
        "config": f"{model_cfg.n_layer}x{model_cfg.n_head}x{model_cfg.n_embd}, context {model_cfg.block_size},"
                  f" batch {cfg.batch_size}x{cfg.grad_accum}, {cfg.max_iters} steps max, patience {cfg.patience}",
        "best_val_nats_per_char": metrics["val_nats_per_char"], "best_step": metrics["best_step"],
        "steps": metrics["steps"], "stopped_early": metrics["stopped_early"],
        "target_reached_at_step": reached["step"] if reached else None,
        "target_reached_after_train_s": reached["elapsed_s"] if reached else None,
        "tokens_per_s": metrics["tokens_per_s"], "mfu": metrics["mfu"],
        "peak_memory_gb": metrics["peak_memory_gb"], "estimated_tensors_gb": metrics["estimated_tensors_gb"],
        "estimated_memory_gb": metrics["estimated_memory_gb"],
        "train_seconds": metrics["train_seconds"], "compile_and_first_step_s": metrics["warmup_seconds"],
        "wall_s": wall,
    }
    target = (f"val <= {TARGET_NATS_PER_CHAR} nats/char at step {m['target_reached_at_step']:,} after"
              f" {m['target_reached_after_train_s']:.1f} s of training" if reached
              else f"val never reached {TARGET_NATS_PER_CHAR} nats/char")
    memory = (f"; tensors peaked at {m['peak_memory_gb']:.2f} GB (estimated {m['estimated_tensors_gb']:.2f} GB;"
              f" {m['estimated_memory_gb']:.2f} GB with the CUDA runtime)" if m["peak_memory_gb"] else "")
    print(f"shipped_run: {target}; best {m['best_val_nats_per_char']:.4f} nats/char at step {m['best_step']:,}"
          f" of {m['steps']:,}; {m['tokens_per_s']:,.0f} tokens/s, MFU {m['mfu']:.1%}{memory};"
          f" first step (compile) {m['compile_and_first_step_s']:.1f} s; {wall:.1f} s wall", flush=True)


def speed_run(args, model_cfg, cfg, data: Path, work: Path, figures: dict) -> None:
    metrics, wall = run_train(args, "compile_off", model_cfg, cfg, data, work)
    on = figures.get("shipped_run", {}).get("tokens_per_s")
    figures["compile_off"] = {"steps": cfg.max_iters, "tokens_per_s": metrics["tokens_per_s"],
                              "mfu": metrics["mfu"], "compile_on_tokens_per_s": on}
    ratio = f"; compile on is {on / metrics['tokens_per_s']:.2f}x that" if on else ""
    print(f"compile_off: {metrics['tokens_per_s']:,.0f} tokens/s, MFU {metrics['mfu']:.1%}{ratio}", flush=True)


def resume_runs(args, model_cfg, cfg, short: int, data: Path, work: Path, figures: dict) -> None:
    """Straight vs interrupted-and-resumed, deterministic off and on: how equal are the weights?"""
    results = {}
    for deterministic in (False, True):
        c = dataclasses.replace(cfg, compile=False, max_iters=short, patience=0, deterministic=deterministic,
                                eval_interval=short // 2, checkpoint_interval=short // 2)
        tag = "deterministic" if deterministic else "default"
        run_train(args, f"straight_{tag}", model_cfg, c, data, work)

        def interrupt(step, half=short // 2 + 3):
            if step == half:
                os.kill(os.getpid(), signal.SIGINT)

        try:
            run_train(args, f"resumed_{tag}", model_cfg, c, data, work, on_step=interrupt)
            raise RuntimeError("the SIGINT did not stop the run")
        except Interrupted:
            pass
        run_train(args, f"resumed_{tag}", model_cfg, c, data, work)
        a = load_checkpoint(work / f"straight_{tag}" / "checkpoint" / "checkpoint.pt")["model"]
        b = load_checkpoint(work / f"resumed_{tag}" / "checkpoint" / "checkpoint.pt")["model"]
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        results[tag] = {"bit_exact": diff == 0.0, "max_abs_weight_difference": diff}
        print(f"resume ({tag} kernels): interrupted at step {short // 2 + 3} of {short}, resumed:"
              f" {'bit-exact' if diff == 0 else f'max weight difference {diff:.2e}'}", flush=True)
    torch.use_deterministic_algorithms(False)
    figures["resume"] = results


def generation(args, model_dir: Path, data: Path, figures: dict) -> None:
    device = torch.device(args.device)
    model = load_model(model_dir, data / "tokenizer" / "tokenizer.json", device)
    new_tokens = 50 if args.tiny else 500
    rates = {("cached" if use_cache else "uncached"): best_rate(model, new_tokens, use_cache)
             for use_cache in (False, True)}
    figures["generation"] = {"new_tokens": new_tokens, **{f"{k}_tokens_per_s": v for k, v in rates.items()}}
    print(f"generation: {new_tokens} tokens, best of 3: uncached {rates['uncached']:,.0f} tokens/s, cached"
          f" {rates['cached']:,.0f} tokens/s ({rates['cached'] / rates['uncached']:.1f}x)", flush=True)
    steps = decode_rates(model, new_tokens)
    figures["generation"].update({f"decode_step_{k}_tokens_per_s": v for k, v in steps.items()})
    eager, graphed = steps["eager"], steps.get("cuda_graph")
    graph = (f", replayed as a CUDA graph {graphed:,.0f} tokens/s ({graphed / eager:.1f}x)" if graphed
             else " (CUDA graphs: not on this device)")
    print(f"decode step alone, greedy on the device, best of 3: eager {eager:,.0f} tokens/s{graph}", flush=True)


def finetune_run(args, params, cfg, data: Path, work: Path, figures: dict) -> None:
    """The conversations, finetune and evaluate_chat stages' work, as the shipped params run it."""
    from sml.chat import with_chat_tokens
    from sml.data.conversations import build_conversations, encode_conversation_splits
    from sml.run.chat_evaluation import evaluate_chat
    from sml.run.checkpoint import model_info

    chat, base, base_tok = work / "chat", work / "shipped" / "model", data / "tokenizer" / "tokenizer.json"
    plays = [Source(data / "corpus" / f"{split}.txt", "play", "finetune.sources[0]") for split in ("train", "val")]
    build_conversations(plays, [], chat / "conversations", params.finetune.val_fraction)
    with_chat_tokens(Tokenizer.load(base_tok)).save(chat / "tokenizer")
    encode_conversation_splits(chat / "conversations", Tokenizer.load(chat / "tokenizer"), chat / "tokens")
    ft = params.finetune.train_config(cfg)
    if args.tiny:
        ft = dataclasses.replace(ft, batch_size=8, max_iters=20, warmup_iters=2, eval_interval=10, eval_iters=2,
                                 log_interval=5, checkpoint_interval=10, patience=0)
    out = work / "finetune"
    text = io.StringIO()
    start = time.perf_counter()
    try:
        metrics = train(model_info(base)["config"], ft, TrainFiles(
            chat / "tokens", chat / "tokenizer" / "tokenizer.json", out / "checkpoint" / "checkpoint.pt",
            out / "model", out / "finetune_log.tsv", out / "finetune_metrics.json", base=base, base_tokenizer=base_tok),
            out=text)
        wall = time.perf_counter() - start
        chat_cfg = dataclasses.replace(params.chat, device=args.device, eval_conversations=4 if args.tiny else 50)
        scored = evaluate_chat(out / "model", chat / "conversations" / "val.jsonl", chat_cfg, base=(base, base_tok),
                               out=text)
    finally:
        (args.out_dir / "finetune.txt").write_text(text.getvalue())
    before = scored["base"]
    figures["finetune"] = {"steps": metrics["steps"], "best_step": metrics["best_step"],
                           "tokens_per_s": metrics["tokens_per_s"], "mfu": metrics["mfu"],
                           "train_seconds": metrics["train_seconds"], "wall_s": wall,
                           "replies_bits_per_char": scored["val_bits_per_char"],
                           "replies_bits_per_char_before": before["val_bits_per_char"],
                           "ends_with_end": scored["ends_with_end"], "ends_with_end_before": before["ends_with_end"]}
    ends = (f"; greedy replies ending with <|end|>: {before['ends_with_end']:.0%} -> {scored['ends_with_end']:.0%}"
            if scored["replies"] else "")
    print(f"finetune: {metrics['steps']:,} steps (best at {metrics['best_step']:,}), {metrics['tokens_per_s']:,.0f}"
          f" tokens/s, MFU {metrics['mfu']:.1%}, {metrics['train_seconds']:.1f} s of training; held-out replies"
          f" {before['val_bits_per_char']:.4f} -> {scored['val_bits_per_char']:.4f} bits/char{ends}", flush=True)


def decode_rates(model, new_tokens: int) -> dict[str, float]:
    """The one-token decode step alone, in tokens/s (greedy, the next token never leaving the
    device, the cache emptied when full): run eagerly, and on CUDA captured once as a CUDA
    graph and replayed for every token. The graph needs the cache's fixed shapes: the step
    must launch the same kernels on the same memory every time."""
    device = next(model.parameters()).device
    cache = KVCache(model, 1, device)
    token = torch.zeros((1, 1), dtype=torch.long, device=device)

    def step() -> None:
        logits, _ = model(token, cache=cache)
        token.copy_(logits[:, -1].argmax(-1, keepdim=True))  # (1, 1): the next input, in place

    def rate(run) -> float:
        best = 0.0
        for _ in range(3):
            cache.reset()
            synchronize(device)
            start = time.perf_counter()
            for i in range(1, new_tokens + 1):
                if i % model.cfg.block_size == 0:
                    cache.reset()  # full: start again (the timing does not need the sliding window)
                run()
            synchronize(device)
            best = max(best, new_tokens / (time.perf_counter() - start))
        return best

    model.eval()
    with torch.inference_mode():
        rates = {"eager": rate(step)}
        if device.type == "cuda":
            side = torch.cuda.Stream()  # warm up off the main stream, as capturing needs
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            rates["cuda_graph"] = rate(graph.replay)
    return rates


def read_log(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    names = lines[0].split("\t")
    return [{k: float(v) if v else None for k, v in zip(names, line.split("\t"), strict=True)} for line in lines[1:]]


if __name__ == "__main__":
    sys.exit(main())
