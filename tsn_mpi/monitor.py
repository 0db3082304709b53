"""Watching a training run: its seconds per loop and ETA, and ``--monitor-resources S``.

:class:`LoopTimes` turns loop wall times into the table's ETA, leaving out numba's
compilation.  :class:`ResourceMonitor` samples CPU %, RSS and GPU memory of every rank every S
seconds: a daemon thread per rank samples its own process (from /proc, no extra dependency);
the main thread gathers the latest samples to rank 0 at loop boundaries (collectives never run
in the sampling thread) and rank 0 prints one line per rank.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from tsn_mpi.sysmem import rss_bytes

ETA_WINDOW = 5  # loops averaged for the ETA


class LoopTimes:
    """Seconds per loop as the ETA should see them: each loop's wall time minus the numba
    compilation inside it (:class:`tsn_mpi.log.CompileWatch`); the run's first loop (cold
    caches, first touch of P) counts only until a second loop exists; then the mean of the
    last :data:`ETA_WINDOW` loops."""

    def __init__(self) -> None:
        self.own: list[float] = []

    def add(self, wall_s: float, compile_s: float = 0.0) -> None:
        self.own.append(max(wall_s - compile_s, 0.0))

    def per_loop(self) -> float:
        """The current estimate of seconds per loop (NaN before the first loop)."""
        recent = (self.own[1:] if len(self.own) > 1 else self.own)[-ETA_WINDOW:]
        return sum(recent) / len(recent) if recent else float("nan")

    def eta(self, remaining_loops: int) -> float:
        """Seconds until ``remaining_loops`` more loops are done."""
        return self.per_loop() * remaining_loops if remaining_loops > 0 else 0.0


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _gpu_bytes() -> int | None:
    """Memory in use on the GPU this rank's GPU backend selected (the whole device's, as the
    driver reports it); None when the process uses no GPU."""
    device = sys.modules.get("tsn_mpi.backends.gpu.device")
    dev = getattr(device, "SELECTED", None)
    if dev is None:
        return None
    try:
        from numba import cuda

        cuda.select_device(dev)  # this sampling thread joins the device's primary context
        free, total = cuda.current_context().get_memory_info()
    except Exception:  # noqa: BLE001 - driver gone, simulator: no reading
        return None
    return int(total - free)


class ResourceMonitor:
    """Samples this process every ``interval`` seconds in a daemon thread."""

    def __init__(self, interval: float) -> None:
        self.interval = float(interval)
        self.latest: dict[str, float] = {}
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="tsn-monitor")

    def __enter__(self) -> ResourceMonitor:
        self._sample(time.monotonic(), _cpu_seconds())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.interval + 1)

    def _sample(self, t_prev: float, c_prev: float) -> tuple[float, float]:
        t, c = time.monotonic(), _cpu_seconds()
        rss = rss_bytes()
        self.peak_rss = max(self.peak_rss, rss)
        cpu = 100.0 * (c - c_prev) / (t - t_prev) if t > t_prev else 0.0
        gpu = _gpu_bytes()
        self.latest = {"cpu_percent": cpu, "rss_mb": rss / 1e6,
                       "peak_rss_mb": self.peak_rss / 1e6,
                       "gpu_mb": float("nan") if gpu is None else gpu / 1e6}
        return t, c

    def _loop(self) -> None:
        t, c = time.monotonic(), _cpu_seconds()
        while not self._stop.wait(self.interval):
            t, c = self._sample(t, c)

    def report(self, comm, out) -> list[dict[str, float]]:
        """Gather every rank's latest sample (collective) and print them on rank 0."""
        rows = comm.allgather_obj(dict(self.latest))
        for r, row in enumerate(rows):
            gpu = "" if row.get("gpu_mb", float("nan")) != row.get("gpu_mb") else (
                f", GPU {row['gpu_mb']:.0f} MB")
            out.info(f"  resources rank {r}: CPU {row.get('cpu_percent', 0):5.0f} %, RSS "
                     f"{row.get('rss_mb', 0):.0f} MB (peak {row.get('peak_rss_mb', 0):.0f}){gpu}")
        return rows
