"""What one meeting of the time loop's threads costs: 2 threads, a step of fixed work, with and
without the per-step meeting of ``tsn_mpi.backends.cpu.sync`` (arrive + wait_until, as the
threaded loop uses once per step in one process).

    NUMBA_NUM_THREADS=2 python benchmarks/thread_meeting.py [--steps 20000] [--reps 5]

Work per step: W dependent square roots on each thread (no memory traffic).  The meeting's
cost is the difference per step, median over --reps; printed as a table, saved to
benchmarks/results/thread_meeting.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit, prange

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tsn_mpi.backends.cpu.sync import arrive, counters, spins_for, wait_until  # noqa: E402


@njit(parallel=True)
def _with_meeting(ctr, steps, spin, work, out):  # pragma: no cover - jitted
    for k in prange(2):
        s = 0
        acc = 0.0
        for _t in range(steps):
            x = 1.0 + k
            for i in range(work):
                x = np.sqrt(x + i)
            acc += x
            s += 1
            arrive(ctr, 0)
            wait_until(ctr, 0, s * 2, spin)
        out[k] = acc


@njit(parallel=True)
def _without(steps, work, out):  # pragma: no cover - jitted
    for k in prange(2):
        acc = 0.0
        for _t in range(steps):
            x = 1.0 + k
            for i in range(work):
                x = np.sqrt(x + i)
            acc += x
        out[k] = acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--work", type=int, nargs="+", default=[0, 200, 1000, 3000])
    a = ap.parse_args()
    import numba

    if numba.get_num_threads() < 2:
        sys.exit("thread_meeting.py: needs 2 numba threads (NUMBA_NUM_THREADS=2)")
    numba.set_num_threads(2)
    spin = spins_for(2000)  # as the time loop's waits: spin ~2 ms, then sleep
    out = np.zeros(2)
    _with_meeting(counters(1), 10, spin, 10, out)  # compile
    _without(10, 10, out)
    rows = []
    print(f"{'work':>6} {'step, no meeting us':>20} {'step, meeting us':>17} {'meeting us':>11}")
    for work in a.work:
        w, wo = [], []
        for _ in range(a.reps):
            c = counters(1)
            t = time.perf_counter()
            _with_meeting(c, a.steps, spin, work, out)
            w.append((time.perf_counter() - t) / a.steps * 1e6)
            t = time.perf_counter()
            _without(a.steps, work, out)
            wo.append((time.perf_counter() - t) / a.steps * 1e6)
        diff = [x - y for x, y in zip(w, wo, strict=True)]
        row = {
            "work": work,
            "step_without_us": statistics.median(wo),
            "step_with_us": statistics.median(w),
            "meeting_us_median": statistics.median(diff),
            "meeting_us_min": min(diff),
            "meeting_us_max": max(diff),
        }
        rows.append(row)
        print(f"{work:>6} {row['step_without_us']:>20.2f} {row['step_with_us']:>17.2f} "
              f"{row['meeting_us_median']:>7.2f} ({row['meeting_us_min']:.2f}-"
              f"{row['meeting_us_max']:.2f})")  # fmt: skip
    from _provenance import save_json

    path = save_json(HERE / "results" / "thread_meeting.json",
                     {"steps": a.steps, "reps": a.reps, "rows": rows}, __file__)  # fmt: skip
    print(f"saved {path}")


if __name__ == "__main__":
    main()
