"""Generation of the default static connectivity (Erdős–Rényi, 2K partners per neuron) by threads.

    python benchmarks/static_connectivity.py [--n 1000000] [--k 512] [--pres 20000] [--reps 3]

Times ``network.static.erdos_renyi`` (Floyd sampling + sort per presynaptic neuron, the
generator's part of ``tsn-mpi init``) for ``--pres`` presynaptic neurons of the paper's 1M model
(K = 512: 1024 partners each) with 1, 2, ... numba threads up to the machine's cores, checks that
every thread count gives the same lists, and reports ns per synapse and the speed-up.  Best of
--reps calls after one warm-up.  Saves benchmarks/results/static_connectivity.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tsn_mpi.config import derive, from_dict  # noqa: E402
from tsn_mpi.network import static  # noqa: E402
from tsn_mpi.network.context import PluginContext  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--pres", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    cfg = from_dict({"network": {"n_cells": args.n, "p_ee": args.k / (args.n / 2)}})
    d = derive(cfg)
    ctx = PluginContext(cfg, d, range(0, args.n), Path("."))
    pres = range(0, min(args.pres, args.n))
    max_threads = numba.config.NUMBA_NUM_THREADS
    threads = sorted({1, *[t for t in (2, 4, 8, 16, 32, 64) if t <= max_threads], max_threads})
    rows, first = [], None
    for t in threads:
        numba.set_num_threads(t)
        out = static.erdos_renyi(ctx, pres)  # warm-up (and compile at the first count)
        if first is None:
            first = out
        same = all(np.array_equal(a, b) for a, b in zip(first, out, strict=True))
        best = float("inf")
        for _ in range(args.reps):
            t0 = time.perf_counter()
            static.erdos_renyi(ctx, pres)
            best = min(best, time.perf_counter() - t0)
        syn = int(out[0][-1])
        rows.append({"threads": t, "seconds": best, "synapses": syn,
                     "ns_per_synapse": 1e9 * best / syn, "same_lists": same})  # fmt: skip
    base = rows[0]["seconds"]
    print(f"\nN = {args.n:,}, K = {d.k}, {len(pres):,} presynaptic neurons, "
          f"{rows[0]['synapses']:,} synapses")  # fmt: skip
    print(f"{'threads':>8} {'s':>8} {'ns/synapse':>11} {'speed-up':>9} {'same lists':>11}")
    for r in rows:
        print(f"{r['threads']:>8} {r['seconds']:>8.3f} {r['ns_per_synapse']:>11.1f} "
              f"{base / r['seconds']:>9.2f} {str(r['same_lists']):>11}")  # fmt: skip
    res = {"host": platform.node(), "cpus": os.cpu_count(), "n": args.n, "k": d.k,
           "pres": len(pres), "rows": rows}  # fmt: skip
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    out_path = save_json(HERE / "results" / "static_connectivity.json", res, __file__)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
