"""Figures of a run, for people: loss curves, the learning-rate schedule, attention, the vocabulary.

Every figure has a title, labelled axes with units, and a legend where there is more than
one line. Losses are drawn in bits/char, the unit that compares across tokenizers: the
training log has them already (nats/token x tokens/char / ln 2, each split with its own
characters per token).

Left out on purpose: interactive plots (DVC renders ``train_log.tsv`` itself: ``dvc plots show``).
"""

import csv
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no window, works on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import torch  # noqa: E402

from sml.model import GPT, attention_weights  # noqa: E402
from sml.optim import lr_curve  # noqa: E402
from sml.run.atomic import atomic_open  # noqa: E402
from sml.run.errors import SMLError  # noqa: E402
from sml.tokenizer.tokenizer import Tokenizer, render_bytes  # noqa: E402


def plot_all(log: Path, model: GPT, info: dict, tok: Tokenizer, sentence: str, layer: int,
             out: Path) -> list[Path]:
    """Write every figure into ``out``; returns their paths. ``info`` is the model's model.json."""
    rows = read_log(log)
    if rows[-1]["step"] != info.get("steps", rows[-1]["step"]):  # cut short, or another run's log
        raise SMLError(f"{log}: ends at step {rows[-1]['step']:.0f}, but the model was trained for"
                       f" {info['steps']:,} steps: rerun the train stage (dvc repro -f train)")
    figures = {
        "loss.png": loss_figure(rows),
        "lr.png": lr_figure(rows, info),
        "attention.png": attention_figure(model, tok, sentence, layer),
        "token_lengths.png": token_length_figure(tok),
    }
    paths = []
    for name, fig in figures.items():
        paths.append(save(fig, out / name))
    return paths


NEEDED = ("step", "tokens", "lr", "train_bits_per_char", "val_bits_per_char")  # the log's columns drawn here


def read_log(path: Path) -> list[dict]:
    """The training log's rows, numbers as floats (an empty val_loss as None); checked."""
    fix = "rerun the train stage (dvc repro -f train: it rewrites the log from its checkpoint)"
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            missing = [c for c in NEEDED if c not in (reader.fieldnames or [])]
            if missing:
                raise SMLError(f"{path}: no column {', '.join(missing)} in its header: {fix}")
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append({k: float(row[k]) if row[k] else None for k in NEEDED})
                except (TypeError, ValueError):
                    raise SMLError(f"{path}: line {line} is not a row of numbers: {fix}") from None
    except FileNotFoundError:
        raise SMLError(f"{path}: no training log (run the train stage)") from None
    except UnicodeDecodeError as e:
        raise SMLError(f"{path}: not UTF-8 at byte {e.start}: {fix}") from None
    if not rows or any(r[c] is None for r in rows for c in ("step", "tokens", "lr", "train_bits_per_char")):
        raise SMLError(f"{path}: {'no rows' if not rows else 'a row with empty figures'}: {fix}")
    return rows


def loss_figure(rows: list[dict]):
    """Train and val loss in bits/char (the log's own columns), against steps and tokens seen.

    A train point is the mean of the batches since the row before; the last row of a run that
    stopped between log steps (a time budget, an early stop) may hold one batch, whose noise
    would read as a dip or a jump: a row of less than half the usual steps is left out.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    spans = [b["step"] - a["step"] for a, b in zip(rows, rows[1:])]
    usual = sorted(spans)[len(spans) // 2] if spans else 0
    train = [r for r, span in zip(rows, [usual, *spans]) if 2 * span >= usual]
    for ax, x_key, x_label in ((axes[0], "step", "optimizer step"), (axes[1], "tokens", "tokens seen")):
        ax.plot([r[x_key] for r in train], [r["train_bits_per_char"] for r in train],
                label="train (batch mean)", color="tab:blue", alpha=0.7)
        val = [r for r in rows if r["val_bits_per_char"] is not None]
        ax.plot([r[x_key] for r in val], [r["val_bits_per_char"] for r in val],
                label="val", color="tab:orange", marker="o")
        ax.set_xlabel(x_label)
        ax.grid(alpha=0.3)
    axes[1].xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))  # 1.5M, not 1.5 and "1e6"
    axes[0].set_ylabel("loss (bits/char)")
    axes[0].legend()
    fig.suptitle("Training loss, bits per character (lower is better)")
    return fig


def lr_figure(rows: list[dict], info: dict):
    """The learning rate of every step, from the schedule the run followed (dots: logged steps).

    Log rows alone would start the warmup at the first logged step, not at 0. On a time
    budget the schedule followed the clock, not the step: there it is the lr of each warmup
    step (model.json's ``warmup_lrs``), then the logged rows, joined by a line.
    """
    fig, ax = plt.subplots(figsize=(6, 3.5))
    budget = info.get("train", {}).get("time_budget_s")
    if "train" in info and not budget:  # model.json from before the schedule was recorded has only the rows
        lrs = lr_curve(info["train"], info["schedule"])[: info.get("steps")]  # an early stop ends it sooner
        ax.plot(range(1, len(lrs) + 1), lrs, color="tab:green", label="schedule")
    elif budget and info.get("warmup_lrs"):
        warmup = [(step, lr) for step, lr in enumerate(info["warmup_lrs"], start=1) if step < rows[0]["step"]]
        ax.plot(*zip(*warmup, *((r["step"], r["lr"]) for r in rows), strict=True), color="tab:green",
                label="each warmup step, then logged")
    ax.plot([r["step"] for r in rows], [r["lr"] for r in rows], "o-" if budget else "o", color="tab:green",
            markersize=2.5, label="logged")
    title = ("Learning rate: linear warmup, stable, then linear decay" if info.get("train", {}).get("schedule") == "wsd"
             else "Learning rate: linear warmup, then cosine decay")
    ax.set(title=title + (f"\nover a time budget of {budget:g} s" if budget else ""), xlabel="optimizer step",
           ylabel="learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def layer_note(model: GPT, layer: int) -> str:
    """What ``attention_figure`` says when ``layer`` is past the model (a preset's smaller one): "" if not."""
    n = model.cfg.n_layer
    if layer < n:
        return ""
    return f"plot.layer = {layer}, but the model has {n} layers (0..{n - 1}): drawing layer {n - 1}"


@torch.no_grad()
def attention_figure(model: GPT, tok: Tokenizer, sentence: str, layer: int):
    """Each head's attention weights in one layer, for one sentence: who looks at whom."""
    model.eval()
    layer = min(layer, model.cfg.n_layer - 1)
    ids = tok.encode(sentence, special="allow")[: model.cfg.block_size]
    idx = torch.tensor([ids], device=next(model.parameters()).device)
    x = model.embed(idx)  # (1, T, C)
    for block in model.blocks[:layer]:
        x = block(x)
    attn = model.blocks[layer].attn
    q, k, _ = attn.project(model.blocks[layer].norm1(x))
    weights = attention_weights(q, k)[0].float().cpu()  # (nh, T, T)
    # Spaces shown as ␣: with byte-level BPE, " light" and "light" are different tokens.
    labels = [render_bytes(tok.vocab[i]).replace(" ", "\u2423") if i < len(tok.vocab) else "<special>"
              for i in ids]
    n_head = weights.size(0)
    cols = math.ceil(math.sqrt(n_head))
    rows = math.ceil(n_head / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.4 * rows), squeeze=False, layout="constrained")
    for h, ax in enumerate(axes.flat):
        if h >= n_head:
            ax.axis("off")
            continue
        image = ax.imshow(weights[h].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"head {h}")
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_xlabel("attended token (key)", fontsize=7)
        ax.set_ylabel("token (query)", fontsize=7)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle(f"Attention in layer {layer}: each row sums to 1 (causal: nothing right of the diagonal)\n"
                 "\u2423 is a space inside a token: byte-level BPE keeps it, so \u2423light and light differ")
    return fig


def token_length_figure(tok: Tokenizer):
    """How long the vocabulary's tokens are, in bytes: what the merges built."""
    lengths = [len(t) for t in tok.vocab[256:]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lengths, bins=range(1, max(lengths, default=1) + 2), align="left", color="tab:purple",
            rwidth=0.85)
    ax.set(title=f"Token lengths of the {len(lengths):,} merged tokens", xlabel="length (bytes)",
           ylabel="number of tokens")
    ax.grid(alpha=0.3, axis="y")
    return fig


def save(fig, path: Path) -> Path:
    """Render ``fig`` to PNG and write it atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())
    return path
