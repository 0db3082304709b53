"""Rank-aware output: progress and tables on rank 0 only, warnings from any rank.

Interactive terminals get a live progress line; logs (non-tty) get plain lines with no control
characters.
"""

from __future__ import annotations

import os
import sys
import time


class Reporter:
    """Prints on rank 0 only; ``quiet`` silences everything but warnings."""

    def __init__(self, rank: int = 0, quiet: bool = False, stream=None) -> None:
        self.rank = rank
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() and os.environ.get("TERM", "") != "dumb"
        self._live = False

    def info(self, msg: str) -> None:
        if self.rank == 0 and not self.quiet:
            self._end_live()
            print(msg, file=self.stream, flush=True)

    def warn(self, msg: str) -> None:
        self._end_live()
        print(f"warning (rank {self.rank}): {msg}", file=sys.stderr, flush=True)

    def progress(self, label: str, done: int, total: int, t0: float) -> None:
        """A live progress bar on terminals; nothing in non-interactive logs."""
        if self.rank != 0 or self.quiet or not self.tty:
            return
        frac = done / max(total, 1)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        el = time.perf_counter() - t0
        eta = el / frac - el if frac > 0 else 0.0
        self.stream.write(f"\r{label} [{bar}] {done}/{total}  {el:6.1f}s  eta {eta:6.1f}s")
        self.stream.flush()
        self._live = True

    def _end_live(self) -> None:
        if self._live:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._live = False


def format_row(loop: int, task: int, elapsed: float, rate: float, cor: float | None,
               n_nan: int, eta: float | None = None) -> str:
    """One row of the training table, as the reference prints it (spec §2.4), plus ETA."""
    row = f"{loop:6d}  {task:6d}  {elapsed:16.11g}  {rate:16.11g}  "
    if cor is not None:
        row += f"{cor:11.6g}"
        if n_nan:
            row += f" ({n_nan} are NaN)"
    else:
        row += " " * 11
    if eta is not None:
        row += f"   eta {eta:8.1f} s"
    return row


TABLE_HEADER = "loop #  task #  elapsed time (s)  firing rate (Hz)  correlation"
