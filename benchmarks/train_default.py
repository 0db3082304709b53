"""Train the default configuration for N loops with a fixed seed; save s/loop and the curve.

    python benchmarks/train_default.py [--nloops 100] [--ranks 1] [--out DIR]

Prints a summary table and writes benchmarks/results/train_default_r<R>.json with the
learning curve, s/loop (median of loops 2..N, loop 1 includes JIT loading) and the mean
correlation over the last three loops (the reference tutorial: 0.769, 0.661, 0.728 at 98-100).
Run under mpiexec for R > 1 (``mpiexec -n 2 python benchmarks/train_default.py --ranks 2``).
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import time
from pathlib import Path

import numpy as np

import tsn_mpi
from tsn_mpi.comm import make_comm

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nloops", type=int, default=100)
    ap.add_argument("--ranks", type=int, default=1, help="expected communicator size")
    ap.add_argument("--out", type=Path, default=Path("/tmp/tsn-bench-default"))
    args = ap.parse_args()
    comm = make_comm()
    if comm.size != args.ranks:
        raise SystemExit(f"expected {args.ranks} ranks, got {comm.size}")
    run = args.out
    if comm.rank == 0:
        shutil.rmtree(run, ignore_errors=True)
        tsn_mpi.new(run)
    comm.barrier()
    t0 = time.perf_counter()
    init = tsn_mpi.init(run, comm=comm)
    t_init = time.perf_counter() - t0
    curve = tsn_mpi.train(run, nloops=args.nloops, comm=comm)
    rss = comm.allgather_obj(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    if comm.rank != 0:
        return
    el = curve["elapsed_s"]
    cor = curve["correlation"]
    res = {
        "config": "configs/default.toml", "ranks": comm.size, "nloops": args.nloops,
        "machine": f"{platform.node()} {platform.processor()}", "init_s": t_init,
        "init_rates_hz": [init["rate_e"], init["rate_i"]],
        "s_per_loop_median": float(np.median(el[1:])) if el.size > 1 else float(el[0]),
        "s_per_loop_mean": float(np.mean(el[1:])) if el.size > 1 else float(el[0]),
        "first_loop_s": float(el[0]), "mean_correlation_last3": float(np.mean(cor[-3:])),
        "peak_rss_bytes_per_rank": rss,
        "curve": {k: v.tolist() for k, v in curve.items()},
    }
    from _provenance import save_json

    out = save_json(HERE / "results" / f"train_default_r{comm.size}.json", res, __file__)
    print(f"\n{'ranks':>24}  {comm.size}")
    print(f"{'init (s)':>24}  {t_init:.2f}")
    print(f"{'s/loop (median 2..N)':>24}  {res['s_per_loop_median']:.3f}")
    print(f"{'correlation loops N-2..N':>24}  {', '.join(f'{c:.3f}' for c in cor[-3:])}")
    print(f"{'mean of those':>24}  {res['mean_correlation_last3']:.3f}")
    print(f"{'peak RSS per rank (MB)':>24}  {', '.join(f'{r / 1e6:.0f}' for r in rss)}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
