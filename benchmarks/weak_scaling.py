"""Weak scaling: a model sized per rank (N = R x n0, fixed K), trained on R = 1, 2, 4 ranks.

For each R, ``mpiexec -n R`` runs init and then ``train`` for a few loops of a network of
``R * n0`` neurons with K static inputs per population (``p_ee = K / Ne``) and the default
plastic inputs, ``NUMBA_NUM_THREADS = max(1, cores // R)`` per rank.
Prints s/loop with its split (time loop, of which the per-step allgather incl. waiting and
the spike delivery; RLS; sync; I/O) as means over loops 2..N, and the cost model's
prediction (``tsn_mpi.plan``) next to it.  On this 2-core machine R = 4 is oversubscribed,
which inflates the allgather (a descheduled rank makes everyone wait).
Saves benchmarks/results/weak_scaling.json.

    python benchmarks/weak_scaling.py [--ranks 1 2 4] [--n0 8192] [--k 128] [--loops 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.paper_1m import run_phase  # noqa: E402

SPLIT = ("sim_s", "exchange_s", "deliver_s", "rls_s", "sync_s", "io_s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--n0", type=int, default=8192, help="neurons per rank")
    ap.add_argument("--k", type=int, default=128, help="static inputs per population")
    ap.add_argument("--loops", type=int, default=4)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-weak"))
    args = ap.parse_args()
    import tsn_mpi
    from tsn_mpi.plan import plan

    cores = os.cpu_count() or 1
    rows = []
    for r in args.ranks:
        n = r * args.n0
        run = args.work / f"r{r}"
        shutil.rmtree(run, ignore_errors=True)
        tsn_mpi.new(run)
        cfg_text = (run / "config.toml").read_text()
        cfg_text = cfg_text.replace("n_cells = 4096", f"n_cells = {n}").replace(
            "p_ee = 0.1", f"p_ee = {args.k / (n // 2)!r}")
        (run / "config.toml").write_text(cfg_text)
        print(f"== R = {r}: N = {n}", flush=True)
        init = run_phase(r, "init", run)
        train = run_phase(r, "train", run, str(args.loops))
        c = train["curve"]
        sl = slice(1, None) if len(c["loop"]) > 1 else slice(None)
        mean = {k: float(np.mean(c[k][sl])) for k in ("elapsed_s", *SPLIT)}
        rate = float(np.mean([init["init"]["rate_e"], init["init"]["rate_i"]]))
        pl = plan(tsn_mpi.load_config(run / "config.toml"), r, rate_hz=rate)
        rows.append(dict(ranks=r, n_cells=n, k=args.k, mean=mean, rss=train["rss"],
                         rate_hz=rate, predicted_s=pl["seconds_per_loop"],
                         predicted=pl["time"], curve=c))  # fmt: skip
        shutil.rmtree(run, ignore_errors=True)
    base = rows[0]["mean"]["elapsed_s"]
    print(f"\n{'R':>3}{'N':>9}{'s/loop':>9}{'model':>8}{'eff':>6}{'loop':>8}{'allg':>7}"
          f"{'deliv':>7}{'RLS':>7}{'sync':>7}{'RSS/rank':>10}")  # fmt: skip
    for row in rows:
        m = row["mean"]
        print(f"{row['ranks']:>3}{row['n_cells']:>9}{m['elapsed_s']:9.2f}"
              f"{row['predicted_s']:8.2f}{base / m['elapsed_s']:6.2f}{m['sim_s']:8.2f}"
              f"{m['exchange_s']:7.2f}{m['deliver_s']:7.2f}{m['rls_s']:7.2f}{m['sync_s']:7.2f}"
              f"{max(row['rss']) / 1e6:8.0f}MB")  # fmt: skip
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    out = save_json(HERE / "results" / "weak_scaling.json",
                    dict(n0=args.n0, k=args.k, loops=args.loops, cores=cores, rows=rows), __file__)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
