"""Comparing experiments: DVC's experiment table, cut down to what a learner compares.

``dvc exp show`` has a column for every param, every metric and the hash of every
dependency; on a normal terminal each one is elided to "…". ``experiments_table`` takes
the CSV of ``dvc exp show --csv`` and prints one line per experiment: the whole-split val
and train loss in bits/char (from the evaluate stage: the gap between them is
overfitting), the step of the exported (best-val) weights, the seconds of training, and
the params in which the experiment differs from its baseline commit, as ``key=value``.

Left out on purpose: sorting and filtering (``dvc exp show`` has ``--sort-by``, ``-A``,
``--rev``; ``python -m stages.show`` passes them on).
"""

import ast
import csv
import io
import json
from pathlib import Path

# (column of dvc exp show, header here, format)
FIGURES = [("val.bits_per_char", "val bits/char", "{:.4f}"),
           ("train.bits_per_char", "train bits/char", "{:.4f}"),
           ("best_step", "best step", "{:.0f}"),
           ("train_seconds", "train s", "{:.1f}")]
# What to ask DVC for: drop dependencies (paths), the presets section and every metric but
# FIGURES; what is left besides DVC's own columns (_DVC) is params.
DROP = "|".join([
    r"^Created$",
    r"^(data|artifacts|sml|stages|mine)/",
    r"^presets\.",
    r"^(val_loss|val_nats_per_char|val_bits_per_char|train_loss|tokens_per_s|steps|parameters|mfu|model_flops_per_s)$",
    r"^(last_val_loss|last_val_bits_per_char|stopped_early|warmup_seconds|(peak|estimated)_memory_gb|estimated_tensors_gb)$",
    r"^(train|val)\.(nats_per_token|perplexity|nats_per_char|bits_per_byte|tokens|scored_tokens)$",
    r"^bigram_val\.",
    r"^samples\.",
    r"^finetune\.(val_loss|val_nats_per_char|val_bits_per_char|train_loss|best_step|last_val_loss|steps)$",
    r"^finetune\.(last_val_bits_per_char|stopped_early|tokens_per_s|model_flops_per_s|mfu|train_seconds)$",
    r"^finetune\.(warmup_seconds|(peak|estimated)_memory_gb|estimated_tensors_gb|parameters)$",
    r"^chat\.(val_loss|val_bits_per_char|conversations_scored|learned_tokens|replies|ends_with_end|mean_reply_tokens)$",
    r"^chat\.(words_asked|words_used|too_long_to_ask)$",
    r"^chat\.base\.",
])
_DVC = ("Experiment", "rev", "typ", "Created", "parent", "State", "Executor")


def experiments_table(csv_text: str, presets: dict[str, dict] | None = None) -> str:
    """A plain-text table from ``dvc exp show --csv --drop DROP`` (see the module docstring).

    Params that a preset of ``presets`` (params.yaml's ``presets:``) sets all at once are
    shown as that preset's name, so ``make quick``'s run reads "preset cpu", not 15 keys.

    >>> text = ("Experiment,rev,typ,train_seconds,best_step,val.bits_per_char,train.lr,train.seed\\n"
    ...         ",workspace,baseline,9.5,300,2.4,0.003,1\\n,main,baseline,10.0,250,2.5,0.001,1\\n"
    ...         "fast,1a2b3c4,branch_commit,9.5,300,2.4,0.003,1\\n"
    ...         "faster,5d6e7f8,branch_commit,9.1,250,2.45,0.003,2\\n")
    >>> print(experiments_table(text, {"quick": {"train.lr": 0.003}}))
    experiment  val bits/char  train bits/char  best step  train s  params that differ from the commit
    workspace          2.4000                -        300      9.5  preset quick
    main               2.5000                -        250     10.0  (the commit)
    fast               2.4000                -        300      9.5  preset quick
    faster             2.4500                -        250      9.1  preset quick, train.seed=2
    """
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    if not rows:
        return "no experiments yet: run one (make quick, or dvc exp run -S key=value)"
    figures = {column for column, _, _ in FIGURES}
    params = [c for c in rows[0] if c not in _DVC and c not in figures]
    commits = [row for row in rows if row["typ"] == "baseline" and row["rev"] != "workspace"]
    base = commits[0] if commits else {}
    lines = [["experiment", *(header for _, header, _ in FIGURES), "params that differ from the commit"]]
    other_text = False
    for row in rows:
        if row in commits:
            base = row
        cells = [row["Experiment"] or row["rev"], *(_figure(row.get(c), fmt) for c, _, fmt in FIGURES)]
        changed = {p: row[p] for p in params if base and row[p] != base.get(p)}
        if any(p.startswith("data.") for p in changed) and cells[1] != "-":  # scored on another val text
            cells[1], other_text = cells[1] + "*", True
        lines.append([*cells, "(the commit)" if row is base else _describe(row, changed, presets or {})])
    note = ("\n* scored on another val text than its commit (data.* changed): compare it with runs on the same"
            " data, not with these") if other_text else ""
    return _columns(lines) + note


def _describe(row: dict[str, str], changed: dict[str, str], presets: dict[str, dict]) -> str:
    """'preset cpu, train.lr=0.003': a preset that explains most of the changes, then the rest.

    A preset is named when the row holds most of its values and every other key of it is
    among the changes listed after it.
    """
    best, covered = None, set()
    for name, overrides in presets.items():
        keys = {k for k, v in overrides.items() if k in changed and changed[k] == str(v)}
        consistent = all(row.get(k) == str(v) or k in changed for k, v in overrides.items())
        if consistent and len(keys) > len(overrides) / 2 and len(keys) > len(covered):
            best, covered = name, keys
    parts = [f"preset {best}"] if best else []
    parts += [" ".join(f"{k}={_short(v)}" for k, v in changed.items() if k not in covered)]
    return ", ".join(p for p in parts if p) or "-"


def _short(value: str) -> str:
    """A list (``data.sources``: urls and checksums) as its length; any other value as it is.

    >>> _short("[{'url': 'a.txt', 'sha256': ''}, {'url': 'b.txt', 'sha256': ''}]"), _short("0.003")
    ('(2 files)', '0.003')
    """
    if not value.startswith("["):
        return value
    try:
        items = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return "(a list)"
    return f"({len(items)} file{'s' if len(items) != 1 else ''})" if isinstance(items, list) else value


def _figure(value: str | None, fmt: str) -> str:
    try:
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return "-"  # not run yet, failed, or "!" (no metrics at that commit)


def _columns(lines: list[list[str]]) -> str:
    """Left-aligned names, right-aligned figures, the last column as it is."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    out = []
    for line in lines:
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:-1], widths[1:])]
        out.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(out)


def reached(artifacts: Path, wall_s: float) -> str:
    """What a finished run reached, in one line: the end of ``make quick``.

    From ``train_metrics.json`` and ``eval_metrics.json`` under ``artifacts``; "" when a
    stage has not written its file (the run failed, or the pipeline has other outputs).

    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "train_metrics.json").write_text(json.dumps({"steps": 412, "train_seconds": 101.2,
    ...     "tokens_per_s": 6100.0, "best_step": 412}))
    >>> _ = (d / "eval_metrics.json").write_text(json.dumps({"val": {"nats_per_char": 1.61,
    ...     "bits_per_char": 2.3227}}))
    >>> print(reached(d, 175.0).replace("; ", ";\\n"))
    reached: val 1.6100 nats/char = 2.3227 bits/char (whole split), best at step 412 of 412;
    101.2 s of training at 6,100 tokens/s;
    2 min 55 s in all
    """
    from sml.run.progress import duration

    try:
        train = json.loads((artifacts / "train_metrics.json").read_text(encoding="utf-8"))
        val = json.loads((artifacts / "eval_metrics.json").read_text(encoding="utf-8"))["val"]
        return (f"reached: val {val['nats_per_char']:.4f} nats/char = {val['bits_per_char']:.4f} bits/char (whole"
                f" split), best at step {train['best_step']:,} of {train['steps']:,}; {train['train_seconds']:.1f} s"
                f" of training at {train['tokens_per_s']:,.0f} tokens/s; {duration(wall_s)} in all")
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def chat_reached(artifacts: Path) -> str:
    """What fine-tuning reached, in one line (from ``chat_metrics.json``), or "" without one.

    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "chat_metrics.json").write_text(json.dumps({"chat": {"val_bits_per_char": 2.25,
    ...     "ends_with_end": 0.8, "replies": 15, "base": {"val_bits_per_char": 2.62, "ends_with_end": 0.0}}}))
    >>> print(chat_reached(d).replace("; ", ";\\n"))
    fine-tuned: 2.2500 bits/char over held-out replies (before: 2.6200);
    80% of 15 greedy replies end with <|end|> (before: 0%);
    talk to it: make chat
    """
    try:
        chat = json.loads((artifacts / "chat_metrics.json").read_text(encoding="utf-8"))["chat"]
        base = chat.get("base") or {}
        before = f" (before: {base['val_bits_per_char']:.4f})" if "val_bits_per_char" in base else ""
        line = f"fine-tuned: {chat['val_bits_per_char']:.4f} bits/char over held-out replies{before}"
        if chat.get("replies"):
            before = f" (before: {base['ends_with_end']:.0%})" if base.get("ends_with_end") is not None else ""
            line += f"; {chat['ends_with_end']:.0%} of {chat['replies']} greedy replies end with <|end|>{before}"
        return line + "; talk to it: make chat"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def dvc_busy(repo: Path = Path(".")) -> bool:
    """Whether another DVC command holds this repository's lock (``.dvc/tmp/lock``) right now.

    ``dvc exp run`` writes its ``-S`` values into params.yaml before it waits for the lock, so
    a second experiment started beside a running one changes the first one's params: asked
    first, the experiment command refuses instead.
    """
    import zc.lockfile  # DVC's own lock library (a DVC dependency)

    path = Path(repo) / ".dvc" / "tmp" / "lock"
    if not path.exists():
        return False
    try:
        zc.lockfile.LockFile(str(path)).close()
    except zc.lockfile.LockError:
        return True
    return False
