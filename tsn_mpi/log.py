"""Rank-aware output: progress and tables on rank 0 only, warnings from any rank.

Interactive terminals get a live progress line; logs (non-tty) get plain lines with no control
characters: a stage that runs longer than :data:`PROGRESS_FIRST_S` prints its percentage at
most every :data:`PROGRESS_EVERY_S` seconds, and every stage ends with one line giving its
time.  :class:`CompileWatch` tells numba's compilations (cache misses) apart from the work.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PROGRESS_FIRST_S = 5.0  # logs: a stage's first percentage line after this many seconds
PROGRESS_EVERY_S = 15.0  # logs: then at most one line per this many seconds
LIVE_EVERY_S = 0.2  # terminals: redraw the live line at most this often


def format_seconds(s: float) -> str:
    """A duration for people: ``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``10 h 02 min``."""
    if s != s or s < 0:
        return "?"
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        m, sec = divmod(int(round(s)), 60)
        return f"{m} min {sec:02d} s"
    h, m = divmod(int(round(s / 60)), 60)
    return f"{h} h {m:02d} min"


class Stage:
    """One named step of a phase, timed; :meth:`update` reports its progress."""

    def __init__(self, out: Reporter, label: str) -> None:
        self.out = out
        self.label = label
        self.t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def update(self, done: float, total: float) -> None:
        self.out.progress(self.label, done, total, self.t0)


class Reporter:
    """Prints on rank 0 only; ``quiet`` silences everything but warnings.

    ``on_progress(label, fraction or None)``, when set, is told every stage start and
    progress update (the run's heartbeat file shows them)."""

    def __init__(self, rank: int = 0, quiet: bool = False, stream=None) -> None:
        self.rank = rank
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() and os.environ.get("TERM", "") != "dumb"
        self.on_progress: Callable[[str, float | None], None] | None = None
        self._live = False
        self._last_line: dict[str, float] = {}
        self._lock = threading.Lock()

    def info(self, msg: str) -> None:
        if self.rank == 0 and not self.quiet:
            with self._lock:
                self._end_live()
                print(msg, file=self.stream, flush=True)

    def warn(self, msg: str) -> None:
        with self._lock:
            self._end_live()
            print(f"warning (rank {self.rank}): {msg}", file=sys.stderr, flush=True)

    def progress(self, label: str, done: float, total: float, t0: float) -> None:
        """``done`` of ``total`` of stage ``label`` (started at ``t0``, perf_counter): a live
        bar on terminals; in logs a line once the stage has run PROGRESS_FIRST_S, then at
        most one per PROGRESS_EVERY_S."""
        if self.rank != 0:
            return
        frac = min(max(done / total if total else 1.0, 0.0), 1.0)
        if self.on_progress is not None:
            self.on_progress(label, frac)
        if self.quiet or frac >= 1.0:
            return
        now = time.perf_counter()
        el = now - t0
        eta = el / frac - el if frac > 0 else float("nan")
        left = f", about {format_seconds(eta)} left" if frac > 0 else ""
        with self._lock:
            if self.tty:
                if now - self._last_line.get(label, -1e9) < LIVE_EVERY_S:
                    return
                self._last_line[label] = now
                width = 30
                bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
                self.stream.write(
                    f"\r\033[K{label} [{bar}] {100 * frac:3.0f} %  {format_seconds(el)}{left}"
                )
                self.stream.flush()
                self._live = True
                return
            if el < PROGRESS_FIRST_S or now - self._last_line.get(label, -1e9) < PROGRESS_EVERY_S:
                return
            self._last_line[label] = now
            print(
                f"{label}: {100 * frac:.0f} % ({format_seconds(el)}{left})",
                file=self.stream,
                flush=True,
            )

    @contextmanager
    def stage(self, label: str, done_text: str | None = None) -> Iterator[Stage]:
        """Time a stage; on success print ``<label>: <time>`` (or ``done_text`` before the
        time), on rank 0.  Yields the :class:`Stage` whose ``update`` reports progress."""
        st = Stage(self, label)
        if self.rank == 0 and self.on_progress is not None:
            self.on_progress(label, None)
        yield st
        self._last_line.pop(label, None)
        self.info(f"{done_text or label}: {format_seconds(st.elapsed)}")

    def _end_live(self) -> None:
        if self._live:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._live = False


class CompileWatch:
    """Counts the seconds numba spends compiling (cache misses: a kernel loaded from numba's
    cache is not a compilation) while active, and has ``out`` say so once per process.

    Use as ``with CompileWatch(out) as cw: ...``; ``cw.seconds`` is the total so far, so a
    loop's own time is its wall time minus the growth of ``cw.seconds`` during it."""

    _said: set[str] = set()  # each message is printed once per process
    CACHED = "compiling kernels (first run only)"
    UNCACHED = "compiling kernels (those numba cannot cache, e.g. the MPI time loop: every start)"

    def __init__(self, out: Reporter | None = None) -> None:
        self.out = out
        self._total = 0.0
        self._depth = 0
        self._t0 = 0.0
        self._listener = None

    @property
    def seconds(self) -> float:
        """Seconds compiled so far (a compilation in progress counts up to now)."""
        extra = time.perf_counter() - self._t0 if self._depth else 0.0
        return self._total + extra

    def _start(self, dispatcher=None) -> None:
        if self._depth == 0:
            self._t0 = time.perf_counter()
            cache = type(getattr(dispatcher, "_cache", None)).__name__
            msg = self.UNCACHED if cache == "NullCache" else self.CACHED
            if msg not in CompileWatch._said and self.out is not None:
                CompileWatch._said.add(msg)
                self.out.info(msg)
        self._depth += 1

    def _end(self) -> None:
        self._depth = max(self._depth - 1, 0)
        if self._depth == 0:
            self._total += time.perf_counter() - self._t0

    def __enter__(self) -> CompileWatch:
        try:
            from numba.core import event
        except ImportError:  # pragma: no cover - numba always has it (>= 0.53)
            return self
        watch = self

        class _Listener(event.Listener):
            def on_start(self, ev) -> None:
                if threading.current_thread() is threading.main_thread():
                    data = ev.data if isinstance(ev.data, dict) else {}
                    watch._start(data.get("dispatcher"))

            def on_end(self, ev) -> None:
                if threading.current_thread() is threading.main_thread():
                    watch._end()

        self._listener = _Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc) -> None:
        if self._listener is not None:
            from numba.core import event

            event.unregister("numba:compile", self._listener)
            self._listener = None


def format_row(
    loop: int,
    task: int,
    elapsed: float,
    rate: float,
    cor: float | None,
    n_nan: int,
    eta: float | None = None,
) -> str:
    """One row of the training table, the reference's columns (spec §2.4) rounded for
    reading (times and rates to 3 decimals, correlation to 4), plus the ETA."""
    row = f"{loop:6d}  {task:6d}  {elapsed:16.3f}  {rate:16.3f}  "
    if cor is not None:
        row += f"{cor:11.4f}"
        if n_nan:
            row += f" ({n_nan} are NaN)"
    else:
        row += " " * 11
    if eta is not None:
        row += f"   eta {format_seconds(eta)}"
    return row


TABLE_HEADER = "loop #  task #  elapsed time (s)  firing rate (Hz)  correlation"
