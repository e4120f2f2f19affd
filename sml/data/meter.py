"""A progress line for work counted in bytes: MB done, of how many, and MB/s.

On a terminal one line is rewritten (``\\r``) at most 4 times a second. In a log (DVC's
output piped to a file, CI) rewriting would leave hundreds of lines, so a plain line is
printed every 10 % instead (every 30 s when the total is unknown): a 2 GB download or
encode logs 11 lines. MB/s counts this session's bytes over this session's seconds, so the
bytes a resumed download already had do not pass for speed.

Left out on purpose: a time-left estimate (the rate already says it), and colours.
"""

import time
from typing import TextIO

TTY_EVERY_S = 0.25
LOG_EVERY_S = 30.0


class Meter:
    """Progress of one piece of work on a stream (None: count, print nothing)."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None):
        self.label, self.total, self.stream = label, total, stream
        self.tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
        self.start_s = self.shown_s = time.monotonic()
        self.done = self.session_bytes = 0
        self.tenths_shown = -1
        self.line = self.shown = ""  # the latest state, and the line last printed

    def add(self, n_bytes: int) -> None:
        """``n_bytes`` more are done."""
        self.update(self.done + n_bytes, n_bytes)

    def update(self, done: int, new_bytes: int) -> None:
        """``done`` bytes (of ``self.total``) are done, ``new_bytes`` of them just now."""
        self.done = done
        self.session_bytes += new_bytes
        if self.stream is None:
            return
        now = time.monotonic()
        percent = 100 * done // self.total if self.total else 0
        size = f"{done / 1e6:,.1f}" + (f" / {self.total / 1e6:,.1f} MB ({percent} %)" if self.total else " MB")
        self.line = f"{self.label}: {size}, {self.session_bytes / 1e6 / max(now - self.start_s, 1e-6):,.1f} MB/s"
        if self.tty:
            due = now - self.shown_s >= TTY_EVERY_S
        else:
            due = percent // 10 > self.tenths_shown if self.total else now - self.shown_s >= LOG_EVERY_S
        if due:
            self._print()
            self.shown_s, self.tenths_shown = now, percent // 10

    def close(self) -> None:
        """Show where the work ended, and end the terminal line."""
        if self.line != self.shown:
            self._print()
        if self.tty and self.shown:
            print(file=self.stream, flush=True)

    def _print(self) -> None:
        if self.tty:  # over the line before, padded to cover it
            print("\r" + self.line.ljust(len(self.shown)), end="", file=self.stream, flush=True)
        else:
            print(self.line, file=self.stream, flush=True)
        self.shown = self.line
