"""Where a step of the threaded time loop goes, per thread (one process, default model).

    NUMBA_NUM_THREADS=2 python benchmarks/loop_threads_split.py [--threads 1 2] [--reps 5]

An instrumented copy of ``loop_threads._body_one`` (same calls, same order, results checked
equal to the library's loop) reads the time-stamp counter around each part of a step:
thread 0's serial parts (pending traces, feed-forward draws), the neuron update of the thread's
range, the wait at the meeting, the delivery into the range and the feed-forward delivery.
Also, on one thread, the neuron update of each half called alone: against the same halves run
concurrently on 2 threads, this shows what running side by side costs (shared caches, memory,
the host's scheduling of the virtual CPUs) apart from the meeting.  Train mode in learn_step
chunks, as in training; medians of ``--reps`` trials.  The counter reads cost ~50-100 ns each
on a VM (measured and printed); every part includes its share.  Saves
benchmarks/results/loop_threads_split.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from tsn_mpi.backends.cpu.loop import (  # noqa: E402
    _apply_pending,
    _deliver_spikes,
    _ff_deliver,
    _ff_draw,
    _neuron_phase,
)
from tsn_mpi.backends.cpu.sync import arrive, wait_until  # noqa: E402

PARTS = ("serial", "neuron", "wait", "deliver", "ff_deliver")
N_SLOTS = len(PARTS) + 3  # + steps, half A alone, half B alone


@intrinsic
def _tsc(typingctx):
    """The CPU's time-stamp counter (``llvm.readcyclecounter``)."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return sig, codegen


@njit(nogil=True)
def _body(k, nt, t_first, t_last, mode, task, groups, tc):  # pragma: no cover - jitted
    """``loop_threads._body_one`` with counters; ``halves``: one thread updates its range as
    two calls (each timed alone)."""
    bounds, ctr, counts, flags, all_spk, spin, acc, halves = tc
    lo, hi = bounds[k], bounds[k + 1]
    local_spk = groups[9][2]
    n, gid0 = groups[0].n_owned, groups[0].gid0
    fired = groups[10][5]
    n_pending = groups[5][5]
    s = 0
    for ti in range(t_first, t_last + 1):
        par = ti & 1
        c0 = _tsc()
        if k == 0:
            _apply_pending(ti, mode, groups)
        c1 = _tsc()
        if halves:
            h = (lo + hi) // 2
            h -= h % 64
            ca = _neuron_phase(ti, mode, task, groups, lo, h, local_spk, par * n + lo)
            cm = _tsc()
            cb = _neuron_phase(ti, mode, task, groups, h, hi, local_spk, par * n + lo + ca)
            counts[par, k] = ca + cb
            c2 = _tsc()
            acc[k, 6] += cm - c1
            acc[k, 7] += c2 - cm
        else:
            counts[par, k] = _neuron_phase(ti, mode, task, groups, lo, hi, local_spk,
                                           par * n + lo)  # fmt: skip
            c2 = _tsc()
        if k == 0:
            _ff_draw(ti, mode, groups, fired[par])
        s += 1
        arrive(ctr, 0)
        c3 = _tsc()
        wait_until(ctr, 0, s * nt, spin)
        c4 = _tsc()
        npend = 0 if k == 0 else -1
        for q in range(nt):
            npend = _deliver_spikes(mode, groups, local_spk, par * n + bounds[q], counts[par, q],
                                    gid0, lo, hi, npend)  # fmt: skip
        if k == 0:
            n_pending[0] = max(npend, 0)
        c5 = _tsc()
        _ff_deliver(mode, groups, fired[par], lo, hi)
        c6 = _tsc()
        acc[k, 0] += (c1 - c0) + (c3 - c2)
        acc[k, 1] += c2 - c1
        acc[k, 2] += c4 - c3
        acc[k, 3] += c5 - c4
        acc[k, 4] += c6 - c5
        acc[k, 5] += 1


@njit(parallel=True)
def _run(t_first, t_last, mode, task, g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10, tc):  # noqa: E501  # pragma: no cover - jitted
    nt = tc[0].size - 1
    ctr = tc[1]
    for i in range(ctr.size):
        ctr[i] = 0
    for k in prange(nt):
        _body(k, nt, t_first, t_last, mode, task,
              (g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10), tc)  # fmt: skip
    return 0


@njit
def _tsc_pair_cost(n):  # pragma: no cover - jitted
    s = 0
    for _ in range(n):
        a = _tsc()
        s += _tsc() - a
    return s / n


def tsc_hz() -> float:
    """Counter ticks per second, against perf_counter over 0.3 s."""
    _tsc_pair_cost(1)
    t0, c0 = time.perf_counter(), _tsc_now()
    time.sleep(0.3)
    return (_tsc_now() - c0) / (time.perf_counter() - t0)


@njit
def _tsc_now():  # pragma: no cover - jitted
    return _tsc()


def trial(sim, d) -> np.ndarray:
    """One train-mode trial in learn_step chunks; returns the spike counts."""
    sim.start_trial("train", 1, 0)
    step, ls = 1, d.learn_step
    while step <= d.n_steps:
        end = min((step // ls + 1) * ls - 1, d.n_steps)
        sim.advance(step, end)
        step = end + 1
    return sim.finish_trial().ns.copy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-loop-threads"))
    args = ap.parse_args()
    import numba
    from loop_threads import make_run
    from memory_per_neuron import build_live

    from tsn_mpi.backends.cpu import sync
    from tsn_mpi.backends.cpu.simulator import _threaded

    if max(args.threads) > numba.config.NUMBA_NUM_THREADS:
        sys.exit(f"--threads up to {numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS)")
    live = build_live(make_run(args.work, "default", 0))
    live["learner"].apply = False
    sim, d = live["sim"], live["d"]
    sim.set_loop_threads(1)
    ref = trial(sim, d)  # the library's own loop
    hz = tsc_hz()
    pair_ns = _tsc_pair_cost(100_000) / hz * 1e9
    configs = [(nt, False) for nt in args.threads] + [(1, True)]
    rows = {}
    for nt, halves in configs:
        name = f"{nt} thread{'s' if nt > 1 else ''}" + (", range as two halves" if halves else "")
        sim.set_loop_threads(1)
        sim.local_spk = np.zeros(2 * max(sim.n, 1), np.int32)  # two halves by step parity
        acc = np.zeros((nt, N_SLOTS), np.int64)
        tc = sim._thread_control(nt, sync.spins_for(3000)) + (acc, halves)
        sim.tc, sim._run = tc, _threaded(_run, nt, tc)
        assert np.array_equal(trial(sim, d), ref), "instrumented loop differs from the library's"
        secs, per = [], []
        for _ in range(args.reps):
            acc[:] = 0
            t = time.perf_counter()
            trial(sim, d)
            secs.append(time.perf_counter() - t)
            steps = acc[:, 5:6].astype(float)
            per.append(np.concatenate([acc[:, :5], acc[:, 6:]], axis=1) / steps / hz * 1e9)
        med = np.median(np.stack(per), axis=0)
        rows[name] = {
            "threads": nt,
            "halves": halves,
            "seconds_per_trial": statistics.median(secs),
            "ns_per_step": {
                f"thread {k}": dict(zip((*PARTS, "half A alone", "half B alone"),
                                        map(float, med[k]), strict=True))  # fmt: skip
                for k in range(nt)
            },
        }
    print(f"default model, {d.n_steps} steps per trial, train mode in chunks of {d.learn_step}; "
          f"counter {hz / 1e9:.2f} GHz, a pair of reads {pair_ns:.0f} ns; medians of "
          f"{args.reps}")  # fmt: skip
    head = "".join(f"{p:>11}" for p in PARTS)
    print(f"{'':34}{'s/trial':>8}{head}{'half A':>9}{'half B':>9}   (ns per step)")
    for name, r in rows.items():
        for k, v in r["ns_per_step"].items():
            label = name if k == "thread 0" else ""
            cols = "".join(f"{v[p]:11.0f}" for p in PARTS)
            ha = f"{v['half A alone']:9.0f}{v['half B alone']:9.0f}" if r["halves"] else ""
            sec = f"{r['seconds_per_trial']:8.3f}" if k == "thread 0" else " " * 8
            print(f"{label:24}{k:>10}{sec}{cols}{ha}")
    from _provenance import save_json

    out = {"reps": args.reps, "tsc_ghz": hz / 1e9, "tsc_pair_ns": pair_ns, "rows": rows}
    path = save_json(HERE / "results" / "loop_threads_split.json", out, __file__)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
