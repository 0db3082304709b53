"""Strong scaling of the default config on R = 1, 2 (and memory at R = 1, 2, 4).

    python benchmarks/scaling.py [--ranks 1 2 4] [--nloops 6]

For each R: ``mpiexec -n R`` trains the default model (initialised once, serially) with
NUMBA_NUM_THREADS = cores // R, then prints per-loop seconds split into time loop (neuron
update + delivery), spike exchange (the per-step allgather incl. waiting), sync (chunk-boundary
agreement = load imbalance), RLS and I/O, the speed-up over R = 1, and peak RSS per rank.
Saves benchmarks/results/scaling.json.  Loop 1 (JIT loading) is excluded from the means.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIELDS = ("elapsed_s", "sim_s", "exchange_s", "deliver_s", "sync_s", "rls_s", "io_s",
          "firing_rate_hz")


def mpiexec() -> str:
    local = Path(sys.executable).parent / "mpiexec"
    return os.environ.get("TSN_MPIEXEC") or (str(local) if local.exists() else "mpiexec")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--nloops", type=int, default=6)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-scaling"))
    args = ap.parse_args()
    base = args.work / "base"
    shutil.rmtree(args.work, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "tsn_mpi", "new", str(base)], check=True, env=env)
    subprocess.run([sys.executable, "-m", "tsn_mpi", "--quiet", "init", str(base)], check=True,
                   env=env)
    cores = os.cpu_count() or 1
    rows = {}
    for r in args.ranks:
        run = args.work / f"r{r}"
        shutil.copytree(base, run)
        e = dict(env, NUMBA_NUM_THREADS=str(max(1, cores // r)))
        out = subprocess.run(
            [mpiexec(), "-n", str(r), sys.executable, str(HERE / "_train_ranks.py"), str(r),
             str(run), str(args.nloops)], capture_output=True, text=True, env=e, check=True)
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
        res = json.loads(line[7:])
        rows[r] = {f: float(np.mean(res[f][1:])) for f in FIELDS}
        rows[r]["rss_mb_per_rank"] = [x / 1e6 for x in res["rss"]]
        rows[r]["oversubscribed"] = r > cores
    t1 = rows[args.ranks[0]]["elapsed_s"]
    print(f"\ndefault config, {args.nloops} loops (means of loops 2..N), {cores} cores\n")
    print(f"{'R':>3} {'s/loop':>8} {'speed-up':>8} {'time loop':>9} {'exchange':>9} "
          f"{'sync':>7} {'RLS':>7} {'I/O':>7}  peak RSS per rank (MB)")
    for r, row in rows.items():
        row["speedup"] = t1 / row["elapsed_s"]
        rss = ", ".join(f"{x:.0f}" for x in row["rss_mb_per_rank"])
        flag = " (oversubscribed)" if row["oversubscribed"] else ""
        print(f"{r:>3} {row['elapsed_s']:8.3f} {row['speedup']:8.2f} {row['sim_s']:9.3f} "
              f"{row['exchange_s']:9.3f} {row['sync_s']:7.3f} {row['rls_s']:7.3f} "
              f"{row['io_s']:7.3f}  {rss}{flag}")
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    out = save_json(HERE / "results" / "scaling.json",
                    {"nloops": args.nloops, "cores": cores, "rows": rows}, __file__)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
