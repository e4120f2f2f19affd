"""Watching a training run as it goes: the log (a TSV row per log step), the window of steps
since the last row, the progress line (a bar on a terminal, plain lines otherwise), and
Ctrl-C as a request to stop.

Left out on purpose: curses, colours and progress libraries; a line of text is enough.
"""

import signal
import sys
import threading
import time

import torch

from sml.run.device import Runtime

# train_loss and val_loss are in nats/token (what the optimizer sees); the *_bits_per_char
# columns are the same losses per character of text, the unit every chart and table uses.
# model_flops_per_s: tokens/s x FLOPs/token; mfu: that over the devices' peak; peak_memory_gb: CUDA only.
LOG_COLUMNS = ("step", "tokens", "train_loss", "val_loss", "train_bits_per_char", "val_bits_per_char",
               "lr", "tokens_per_s", "model_flops_per_s", "mfu", "peak_memory_gb", "elapsed_s")
LOG_RETRY = "the run goes on; the whole log is written again at the next log step"


def peak_memory_gb(runtime: Runtime) -> float | None:
    """The most GPU memory tensors have held so far (CUDA only: other devices do not say)."""
    if runtime.device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(runtime.device) / 1e9


def log_text(history: list[dict]) -> str:
    """The whole TSV log (a few hundred rows): rewritten each time, so it matches the checkpoint."""
    lines = ["\t".join(LOG_COLUMNS)]
    for row in history:
        lines.append("\t".join("" if row.get(c) is None else f"{row[c]:.6g}" for c in LOG_COLUMNS))
    return "\n".join(lines) + "\n"


def write_log(path, history: list[dict]) -> None:
    """Write the whole log; one that cannot be replaced (a viewer holds it) is a warning, not a lost run."""
    from sml.run.atomic import write_text_or_warn

    write_text_or_warn(path, log_text(history), then=LOG_RETRY)


class Window:
    """The steps since the last log row: their summed loss (kept on the device: no sync) and time."""

    def __init__(self, saved: dict, device: torch.device):
        self.steps, self.timed_steps, self.seconds = saved["steps"], saved["timed_steps"], saved["seconds"]
        self.loss = torch.tensor(saved["loss"], device=device)
        self.restart_clock()

    def add(self, loss: torch.Tensor, timed: bool = True) -> None:
        self.loss += loss
        self.steps += 1
        self.timed_steps += timed

    def restart_clock(self) -> None:
        """Time counts from now on, on top of ``seconds``: what came since the last restart is left out."""
        self._start = time.perf_counter()

    def elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self._start

    def reset(self) -> None:
        self.steps = self.timed_steps = 0
        self.seconds = 0.0
        self.loss.zero_()
        self._start = time.perf_counter()

    def saved(self) -> dict:
        return {"steps": self.steps, "loss": self.loss.item(), "timed_steps": self.timed_steps,
                "seconds": self.elapsed()}


class StopOnCtrlC:
    """Turn Ctrl-C into a request that the loop honours at the next step boundary.

    A checkpoint taken in the middle of a step (batches drawn, gradients half-summed) would
    not resume exactly, so the first Ctrl-C only sets ``requested``. A second one stops at
    once, saving nothing: the last checkpoint stays as it was. Under torchrun one Ctrl-C
    reaches each process twice, from the terminal and passed on by torchrun, so there a
    second signal within ``merge_s`` of the first counts as the same one.
    """

    def __init__(self, merge_s: float = 0.0):
        self.merge_s = merge_s

    def __enter__(self) -> "StopOnCtrlC":
        self.requested, self._at = False, 0.0
        self._previous = None
        if threading.current_thread() is threading.main_thread():  # signals reach only it
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if not self.requested:
            self.requested, self._at = True, time.monotonic()
            print("\nCtrl-C: stopping after this step (again to stop at once, unsaved)", file=sys.stderr)
        elif time.monotonic() - self._at >= self.merge_s:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Progress:
    """A one-line progress bar on a terminal; plain log lines otherwise (CI, DVC, files).

    How far the run is: steps of ``total``, or, with a time budget of ``budget_s``
    seconds, training seconds of it if that is further. The time left is this session's
    wall time (evaluations and compilation included) per unit of that, times what is left.

    A row at less than ``SLOW`` of this session's fastest tokens/s says so: on a machine that
    something else keeps busy, a time budget quietly trains fewer steps (a worse model).
    """

    SLOW = 1 / 3

    def __init__(self, total: int, start_step: int, out, budget_s: float = 0.0, start_s: float = 0.0):
        self.total, self.out, self.budget_s = total, out, budget_s
        self.fastest = 0.0  # tokens/s, the best row of this session
        self.start_done, self.start_time = self.done(start_step, start_s), time.perf_counter()
        self.tty = hasattr(out, "isatty") and out.isatty()

    def done(self, step: int, trained_s: float) -> float:
        """How far the run is, from 0 to 1."""
        steps = step / self.total
        return min(1.0, max(steps, trained_s / self.budget_s)) if self.budget_s else steps

    def update(self, row: dict, trained_s: float = 0.0) -> None:
        """Show a log row; ``trained_s``: the training seconds so far (what a time budget counts)."""
        val = f" val {row['val_bits_per_char']:.3f}" if row["val_loss"] is not None else ""
        speed = "first step (compiling)" if row["tokens_per_s"] is None else (
            f"{row['tokens_per_s']:,.0f} tokens/s" + (f", MFU {row['mfu']:.1%}" if row["mfu"] else ""))
        done = self.done(row["step"], trained_s)
        gone = done - self.start_done
        left = (time.perf_counter() - self.start_time) / gone * (1.0 - done) if gone > 0 else 0.0
        where = (f"{row['step']:>6} steps, {trained_s:.0f}/{self.budget_s:.0f} s" if self.budget_s
                 else f"{row['step']:>6}/{self.total}")
        text = (f"step {where}  train {row['train_bits_per_char']:.3f}{val} bits/char"
                f"  lr {row['lr']:.2e}  {speed}"
                f"  {duration(row['elapsed_s'])}, {duration(left)} left") + self.slow(row["tokens_per_s"])
        if self.tty:
            bar = int(30 * done)
            print(f"\r[{'#' * bar}{'.' * (30 - bar)}] {text}", end="" if val == "" else "\n",
                  file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)

    def slow(self, rate: float | None) -> str:
        """A warning when ``rate`` (tokens/s) fell far below this session's fastest, else "".

        >>> p = Progress(100, 0, None)
        >>> p.slow(15_563), p.slow(12_000), p.slow(977)
        ('', '', '  SLOW: 977 tokens/s, 6% of the 15,563 earlier (another program busy? README, "Threads")')
        """
        if rate is None:
            return ""
        self.fastest = max(self.fastest, rate)
        if rate >= self.SLOW * self.fastest:
            return ""
        return (f"  SLOW: {rate:,.0f} tokens/s, {rate / self.fastest:.0%} of the {self.fastest:,.0f} earlier"
                ' (another program busy? README, "Threads")')

    def close(self) -> None:
        if self.tty:
            print(file=self.out)


def duration(seconds: float) -> str:
    """A time span for people.

    >>> duration(42.4), duration(185), duration(7260)
    ('42 s', '3 min 05 s', '2 h 01 min')
    """
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
