"""The time loop on several threads of one rank, bitwise the same as on one thread.

Each thread owns a contiguous range of the rank's neurons (``bounds``, multiples of 64): it
updates them, and it delivers every spike of the step to them, walking the slice of each
spike's outgoing row that falls in its range (rows are sorted by post).  So every input
accumulator is written by one thread only, in the same order as one thread adds to it: no
atomics, and the sums are bitwise those of one thread, for any thread count.  The O(N) and
global pieces (presynaptic traces, the feed-forward draws, the MPI exchange) run on thread 0.

One parallel region covers a whole call (a learning interval, ~100 steps): a region launch
costs tens of microseconds (more when cores are shared), a step only a few.  Inside, the
threads meet through the counters of :mod:`~tsn_mpi.backends.cpu.sync` (spin, then sleep):

- one process: once per step (every thread needs every thread's spikes).  Spike lists and
  drawn feed-forward inputs alternate between two buffers by step parity, since a thread may
  start step t+1 while another still delivers step t;
- under MPI: thread 0 waits for the others' spikes, exchanges (the one allgather per step),
  draws the feed-forward inputs, and releases them; the others wait only for that release.

The region needs every prange iteration on its own thread at the same time, which numba's
'omp' and 'workqueue' layers give (one chunk per thread); :mod:`~tsn_mpi.backends.cpu.threads`
refuses the others.  Spike exchange and delivery are not overlapped: delivery runs in
increasing presynaptic gid (rank-major) order for bitwise rank invariance, so a rank's own
spikes cannot go before those of lower ranks arrive.
"""

from __future__ import annotations

import types

import numba
from numba import njit, prange

from tsn_mpi.backends.cpu.loop import (
    _apply_pending,
    _deliver_spikes,
    _exchange_overflow,
    _ff_deliver,
    _ff_draw,
    _fill_send,
    _neuron_phase,
    _no_clock,
    _rebind_cell_step,
)
from tsn_mpi.backends.cpu.sync import arrive, wait_until

# counters (sync.counters): spikes published, exchange done
SPIKES, RELEASED = 0, 1


@njit(nogil=True, cache=True)
def _body_one(k, nt, t_first, t_last, mode, task, groups, tc):  # pragma: no cover - jitted
    """Thread ``k`` of ``nt`` in one process: steps t_first..t_last, one meeting per step."""
    bounds, ctr, counts, flags, all_spk, spin = tc
    lo, hi = bounds[k], bounds[k + 1]
    local_spk = groups[9][2]  # two halves of n: the spike lists of even and odd steps
    n, gid0 = groups[0].n_owned, groups[0].gid0
    fired = groups[10][5]
    n_pending = groups[5][5]
    s = 0
    for ti in range(t_first, t_last + 1):
        par = ti & 1
        if k == 0:
            _apply_pending(ti, mode, groups)
        counts[par, k] = _neuron_phase(ti, mode, task, groups, lo, hi, local_spk, par * n + lo)
        if k == 0:
            _ff_draw(ti, mode, groups, fired[par])
        s += 1
        arrive(ctr, SPIKES)
        wait_until(ctr, SPIKES, s * nt, spin)
        npend = 0 if k == 0 else -1
        for q in range(nt):
            npend = _deliver_spikes(mode, groups, local_spk, par * n + bounds[q], counts[par, q],
                                    gid0, lo, hi, npend)  # fmt: skip
        if k == 0:
            n_pending[0] = max(npend, 0)
        _ff_deliver(mode, groups, fired[par], lo, hi)


@njit(parallel=True, cache=True)
def run_steps_threads(
    t_first, t_last, mode, task, g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10, tc
):  # pragma: no cover - jitted
    """One process, built-in cell models, ``tc[0].size - 1`` threads: the cached entry point.
    The eleven groups come as separate arguments (``*groups``): numba's parfors pass tuples
    into the region one level deep, and a named tuple only when it is an argument.  The
    caller sets numba's thread count to the loop's (:func:`call`)."""
    nt = tc[0].size - 1
    ctr = tc[1]
    for i in range(ctr.size):
        ctr[i] = 0
    for k in prange(nt):
        _body_one(k, nt, t_first, t_last, mode, task,
                  (g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10), tc)  # fmt: skip
    return 0


def _with_globals(fn, name: str, **repl):
    """A jitted copy of the jitted ``fn`` whose globals ``repl`` are replaced (not cached)."""
    py = fn.py_func
    glb = dict(py.__globals__)
    glb.update(repl)
    return njit(nogil=True)(types.FunctionType(py.__code__, glb, name))


def make_run_steps_threads(exchange=None, cell_step=None, clock=None):
    """A threaded entry point ``run(t_first, t_last, mode, task, *groups, tc)``.

    ``exchange`` None: one process (one meeting per step); else the jitted allgather (e.g.
    numba-mpi), called by thread 0.  ``cell_step``: a user cell model (None: built-in).
    ``clock``: a jitted wall clock; thread 0's delivery seconds go to ``timer[1]``.  Compiled
    on first call (not cached) unless both are None (:func:`run_steps_threads`).
    """
    if exchange is None and cell_step is None:
        return run_steps_threads
    neuron_phase = _neuron_phase if cell_step is None else _rebind_cell_step(cell_step)
    if exchange is None:
        body = _with_globals(_body_one, "_body_one_user", _neuron_phase=neuron_phase)
    else:
        body = _mpi_body(exchange, neuron_phase, _no_clock if clock is None else clock)

    @njit(parallel=True)
    def run(
        t_first, t_last, mode, task, g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10, tc
    ):  # pragma: no cover - jitted
        nt = tc[0].size - 1
        ctr = tc[1]
        for i in range(ctr.size):
            ctr[i] = 0
        for k in prange(nt):
            body(k, nt, t_first, t_last, mode, task,
                 (g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10), tc)  # fmt: skip
        return 0

    return run


def _mpi_body(exchange, neuron_phase, now):
    @njit(nogil=True)
    def body(k, nt, t_first, t_last, mode, task, groups, tc):  # pragma: no cover - jitted
        """Thread ``k`` of ``nt`` under MPI: thread 0 gathers, exchanges, releases."""
        bounds, ctr, counts, flags, all_spk, spin = tc
        lo, hi = bounds[k], bounds[k + 1]
        send, recv, local_spk, cap_arr, n_ranks, overflow = groups[9]
        overflow_t = groups[10][4]
        fired = groups[10][5][0]
        n, gid0 = groups[0].n_owned, groups[0].gid0
        n_pending = groups[5][5]
        s = 0
        for ti in range(t_first, t_last + 1):
            if k == 0:
                _apply_pending(ti, mode, groups)
            counts[0, k] = neuron_phase(ti, mode, task, groups, lo, hi, local_spk, lo)
            s += 1
            t0 = 0.0
            if k == 0:
                wait_until(ctr, SPIKES, s * (nt - 1), spin)
                nsp = 0
                for q in range(nt):
                    for i in range(counts[0, q]):
                        all_spk[nsp] = local_spk[bounds[q] + i]
                        nsp += 1
                cap = cap_arr[0]
                _fill_send(send, all_spk, nsp, gid0, cap)
                exchange(send, recv, cap + 1, overflow_t)
                max_count, send2, recv2 = _exchange_overflow(
                    send, recv, all_spk, nsp, gid0, cap, n_ranks, overflow
                )
                _ff_draw(ti, mode, groups, fired)
                t0 = now()
                flags[0] = 0
                if max_count > cap:
                    # rare (the buffer then grows): thread 0 delivers this step alone
                    exchange(send2, recv2, max_count + 1, overflow_t)
                    t0 = now()
                    npend = 0
                    stride = max_count + 1
                    for rr in range(n_ranks):
                        npend = _deliver_spikes(mode, groups, recv2, rr * stride + 1,
                                                recv2[rr * stride], 0, 0, n, npend)  # fmt: skip
                    n_pending[0] = max(npend, 0)
                    flags[0] = 1
                arrive(ctr, RELEASED)
            else:
                arrive(ctr, SPIKES)
                wait_until(ctr, RELEASED, s, spin)
            if flags[0] == 0:
                stride = cap_arr[0] + 1
                npend = 0 if k == 0 else -1
                for rr in range(n_ranks):
                    npend = _deliver_spikes(mode, groups, recv, rr * stride + 1,
                                            recv[rr * stride], 0, lo, hi, npend)  # fmt: skip
                if k == 0:
                    n_pending[0] = max(npend, 0)
            _ff_deliver(mode, groups, fired, lo, hi)
            if k == 0:
                overflow_t[1] += now() - t0

    return body


def call(
    run, nt: int, t_first: int, t_last: int, mode: int, task: int, groups: tuple, tc: tuple
) -> None:
    """Run a threaded entry point with numba's thread count set to its ``nt`` threads (set in
    Python: ``numba.set_num_threads`` inside the kernel would keep it from being cached)."""
    old = numba.get_num_threads()
    if old != nt:
        numba.set_num_threads(nt)
    try:
        run(t_first, t_last, mode, task, *groups, tc)
    finally:
        if old != nt:
            numba.set_num_threads(old)
