"""How many threads a rank's time loop uses (``run.loop_threads``), and how they split it.

'auto' (the default) takes the rank's numba threads (``NUMBA_NUM_THREADS``, else the cores
available to the rank shared among its node's ranks: ``comm.threads.share_cores``), but no more
than leave each thread ``MIN_NEURONS_PER_THREAD`` owned neurons: the threads meet once or twice
per step (~1 us each while every thread has a core), so a thread needs a few microseconds of
work per step to gain; at run time :class:`Tuner` then keeps one thread while that measures
faster (cores shared with other jobs).  An integer asks for that many (at most the rank's numba
threads).  Results are bitwise the same for any choice.  Pure Python: ``plan`` and ``info``
import it without numba.
"""

from __future__ import annotations

import functools
import os

import numpy as np

MIN_NEURONS_PER_THREAD = 1024  # below this many owned neurons per thread, fewer threads
ALIGN = 64  # thread ranges start at multiples of this (8: the spike-flag words; 64: no
# cache line of a float32 state array is written by two threads)
SPIN_US = 3000.0  # a wait spins this long before sleeping, when each thread has its own core
# (it must outlast a sleeper's wake-up, ~0.6 ms on a VM: else the threads take turns sleeping)
SPIN_US_SHARED = 2.0  # ... and this long when the node's cores are oversubscribed
LAYERS = ("omp", "workqueue")  # threading layers that run one prange chunk per thread


def auto_threads(n_owned: int, rank_threads: int) -> int:
    """'auto': the rank's threads, but at least MIN_NEURONS_PER_THREAD neurons each."""
    return max(1, min(int(rank_threads), int(n_owned) // MIN_NEURONS_PER_THREAD))


def loop_threads(setting: str | int, n_owned: int, rank_threads: int) -> int:
    """Threads of the time loop for ``run.loop_threads = setting`` (no checks; see
    :func:`choose`)."""
    if setting == "auto":
        return auto_threads(n_owned, rank_threads)
    return max(1, min(int(setting), max(int(n_owned), 1)))


def choose(setting: str | int, n_owned: int) -> tuple[int, str]:
    """``(threads, why)`` for this rank; raises ValueError (one line) when an explicit
    setting exceeds the rank's numba threads.  (Under MPI the exchange runs on a prange
    thread: the simulator also checks MPI's thread level.)"""
    import numba

    rank_threads = numba.get_num_threads()
    if setting != "auto" and int(setting) > rank_threads:
        raise ValueError(
            f"run.loop_threads = {setting}: this rank has {rank_threads} numba thread(s) "
            "(set NUMBA_NUM_THREADS, or fewer ranks per node)"
        )
    nt = loop_threads(setting, n_owned, rank_threads)
    if nt > 1:
        why = layer_problem()
        if why is not None:
            return 1, f"1 thread: {why}"
    if setting == "auto":
        if nt < rank_threads:
            why = f"auto: {n_owned} neurons, at least {MIN_NEURONS_PER_THREAD} per thread"
        else:
            why = "auto: the rank's numba threads"
    else:
        why = f"run.loop_threads = {setting}"
    return nt, why


@functools.cache
def threading_layer() -> tuple[str | None, str]:
    """(numba's threading layer, '') once a parallel region has run, or (None, why not)."""
    import numba
    from numba import njit, prange

    @njit(parallel=True)
    def _touch(n):  # pragma: no cover - jitted
        s = 0
        for i in prange(n):
            s += i
        return s

    try:
        _touch(4)
        return numba.threading_layer(), ""
    except Exception as exc:  # noqa: BLE001
        return None, str(exc)


def layer_problem() -> str | None:
    """Why numba's threading layer cannot host the loop's per-step meetings, or None."""
    if os.environ.get("OMP_DYNAMIC", "").strip().lower() in ("true", "1", "yes"):
        return "OMP_DYNAMIC may start fewer threads than the loop waits for"
    layer, why = threading_layer()
    if layer is None:
        return f"no numba threading layer ({why})"
    if layer not in LAYERS:
        return f"numba threading layer {layer!r} (the loop needs 'omp' or 'workqueue')"
    return None


def bounds(n: int, nt: int) -> np.ndarray:
    """Range starts of ``nt`` threads over ``n`` neurons (int64, nt+1 entries, last = n):
    as equal as multiples of ALIGN allow."""
    b = [min(n, (k * n // nt + ALIGN // 2) // ALIGN * ALIGN) for k in range(nt)] + [n]
    return np.asarray(b, np.int64)


def spin_us(threads: int, ranks_on_node: int, setting: str | float = "auto") -> float:
    """How long a wait spins before sleeping (config key ``run.loop_spin_us``): a number is
    taken as it is; 'auto' spins long while every thread of the node's ranks has a core of its
    own, short once they share cores (a spinning thread would take the core from the thread it
    waits for)."""
    if setting != "auto":
        return max(float(setting), 0.0)
    from tsn_mpi.comm.threads import cores_available

    cores = cores_available()
    if cores < (os.cpu_count() or cores):  # bound to a subset: the rank's own cores
        own = threads <= cores
    else:
        own = threads * ranks_on_node <= cores
    return SPIN_US if own else SPIN_US_SHARED


class Tuner:
    """'auto' at run time: the loop on ``most`` threads or on one, whichever measures faster.

    A step's threads meet once or twice, so they only gain while each has a core of its own:
    on a node whose cores other jobs share, a thread waiting for a descheduled one loses more
    than the split saves (measured: 5-10x slower on a 2-core machine running 10 other jobs).
    Results are bitwise the same either way, so the simulator may switch between calls: every
    ``every``-th call (a learning interval) runs on the other count and is compared with the
    median seconds per step of the last three calls on the current one; 10 % faster switches.
    ``every`` doubles (up to ``max_every``) each time the probe confirms the current count, so
    a wrong choice costs little.  The first call on each count (compilation) is not counted.
    """

    def __init__(self, most: int, every: int = 8, max_every: int = 256) -> None:
        self.most, self.current = int(most), int(most)
        self.min_every, self.every, self.max_every = every, every, max_every
        self.since = 0
        self.recent: list[float] = []
        self.seen: set[int] = set()
        self.steps = {1: 0, self.most: 0}  # steps run on each count

    @property
    def other(self) -> int:
        return 1 if self.current != 1 else self.most

    def next(self) -> int:
        """Threads for the next call."""
        if self.most > 1 and self.since >= self.every and len(self.recent) >= 3:
            return self.other
        return self.current

    def record(self, nt: int, seconds: float, steps: int) -> None:
        """A call of ``steps`` steps on ``nt`` threads took ``seconds``."""
        self.steps[nt] = self.steps.get(nt, 0) + steps
        if nt not in self.seen:
            self.seen.add(nt)
            return
        if steps < 10:
            return
        rate = seconds / steps
        if nt == self.current:
            self.recent = (self.recent + [rate])[-3:]
            self.since += 1
            return
        ref = sorted(self.recent)[len(self.recent) // 2]
        self.since = 0
        if rate < 0.9 * ref:
            self.current, self.recent, self.every = nt, [rate], self.min_every
        else:
            self.every = min(2 * self.every, self.max_every)
