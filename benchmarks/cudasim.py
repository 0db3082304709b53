"""numba's CUDA simulator as shipped, with our locks, and with our serial schedule (issue #24).

    python benchmarks/cudasim.py [--launches 300] [--switch 1e-4] [--rls-updates 4]

Three modes, each in its own process under ``NUMBA_ENABLE_CUDASIM=1``:
- ``stock``: the simulator as installed (threads of a block run at once as OS threads);
- ``locks``: ``cudasim_fixes`` without greenlet (shared-array allocation and module swap made
  thread-safe; the schedule stays random);
- ``serial``: ``cudasim_fixes`` with greenlet (a block's threads one at a time, in order).

Workloads: (a) a 64-thread kernel that exchanges values through shared memory across a
``syncthreads`` and adds 64 values of very different magnitude with a float atomic, launched
``--launches`` times on 4 blocks: launches with a wrong value (the shared-array race), distinct
values of the atomic sum (1 = repeatable), seconds; (b) the block RLS kernel (float32, 48
neurons, n = 38), ``--rls-updates`` launches: seconds, and whether two runs give the same bits.
``--switch`` is the GIL switch interval the simulator runs under (our tests used 1e-4 s until
this change, which made the races frequent).  Saves benchmarks/results/cudasim.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODES = ("stock", "locks", "serial")


def worker(mode: str, launches: int, switch: float, updates: int) -> dict:
    sys.setswitchinterval(switch)
    if mode == "locks":
        sys.modules["greenlet"] = None  # the fixes without the serial schedule
    import hashlib

    global cuda, np  # module globals: the simulator swaps ``cuda`` in a kernel's globals
    import numpy as np
    from numba import cuda

    from tsn_mpi.backends.gpu import cudasim_fixes

    if mode != "stock":
        cudasim_fixes.apply()
    n = 64

    @cuda.jit
    def exchange(out, vals, acc):
        sh = cuda.shared.array(n, np.float64)
        t = cuda.threadIdx.x
        sh[t] = t
        cuda.syncthreads()
        out[cuda.blockIdx.x, t] = sh[(t + 1) % n]
        cuda.atomic.add(acc, 0, vals[t])  # a float sum whose bits depend on the order

    want = (np.arange(n) + 1) % n
    vals = np.random.default_rng(1).normal(size=n) * 10.0 ** np.arange(-32, 32, dtype=float)
    bad, sums = 0, set()
    t0 = time.perf_counter()
    for _ in range(launches):
        out, acc = np.zeros((4, n)), np.zeros(1)
        exchange[4, n](out, vals, acc)
        bad += int((out != want).any())
        sums.add(float(acc[0]))
    t_exchange = time.perf_counter() - t0

    from tsn_mpi.backends.gpu import rls as R
    from tsn_mpi.learn.initial_p import initial_p_rows

    g = np.random.default_rng(3)
    n_ff, m, owned, N = 2, 36, 48, 200
    pre = g.integers(0, N, (owned, m)).astype(np.int32)
    w0 = g.normal(size=(owned, m)).astype(np.float32)
    p0 = initial_p_rows(w0, pre >= 0, n_ff, 0.8, 1.0, 0.01).astype(np.float32)
    launch = R.rls_launch(n_ff, m, "float32", "block")
    digests, t_rls = [], 0.0
    for _ in range(2):
        P, w, wff = p0.copy(), w0.copy(), np.ones((owned, n_ff), np.float32)
        gr = np.random.default_rng(4)
        t0 = time.perf_counter()
        for _ in range(updates):
            launch(owned, P, pre, w, gr.random(N), gr.random(n_ff), wff,
                   np.zeros(owned, np.float32), np.ones(owned, np.float32), 1.0, 0, 1,
                   np.zeros(owned, np.uint8), np.zeros(1, np.int32))  # fmt: skip
        t_rls = time.perf_counter() - t0
        digests.append(hashlib.sha256(P.tobytes() + w.tobytes()).hexdigest()[:16])
    return {
        "mode": mode,
        "serial_schedule": cudasim_fixes.serial_schedule(),
        "exchange_launches": launches,
        "exchange_bad_launches": bad,
        "exchange_s": round(t_exchange, 2),
        "atomic_sum_distinct_values": len(sums),
        "rls_updates": updates,
        "rls_s": round(t_rls, 2),
        "rls_repeatable": digests[0] == digests[1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launches", type=int, default=300)
    ap.add_argument("--switch", type=float, default=1e-4)
    ap.add_argument("--rls-updates", type=int, default=4)
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "cudasim.json")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.launches, args.switch, args.rls_updates)))
        return
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    rows = []
    print(f"{'mode':8s} {'serial':>6s} {'bad launches':>13s} {'sums':>5s} {'exchange s':>11s} "
          f"{'rls s':>7s} {'repeatable':>10s}")  # fmt: skip
    for mode in MODES:
        cmd = [sys.executable, __file__, "--worker", mode, "--launches", str(args.launches),
               "--switch", str(args.switch), "--rls-updates", str(args.rls_updates)]  # fmt: skip
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{mode:8s} {str(r['serial_schedule']):>6s} "
              f"{r['exchange_bad_launches']:>6d} / {r['exchange_launches']:<5d} "
              f"{r['atomic_sum_distinct_values']:>5d} "
              f"{r['exchange_s']:>11.2f} {r['rls_s']:>7.2f} {str(r['rls_repeatable']):>10s}",
              flush=True)  # fmt: skip
    stock = rows[0]
    for r in rows:
        r["speedup_vs_stock_exchange"] = round(stock["exchange_s"] / r["exchange_s"], 2)
        r["speedup_vs_stock_rls"] = round(stock["rls_s"] / r["rls_s"], 2)
    print("speed-up over stock (exchange, rls): " + ", ".join(
        f"{r['mode']} {r['speedup_vs_stock_exchange']}x {r['speedup_vs_stock_rls']}x"
        for r in rows))  # fmt: skip
    save_json(args.out, {"switch_interval_s": args.switch, "rows": rows}, __file__)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
