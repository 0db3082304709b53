"""Per-step spike exchange within and between (emulated) nodes, and the default loop on 2 nodes.

    launch/emulated-cluster.sh up 2                 # as root; see launch/README.md
    python benchmarks/internode.py [--layouts 1x2 2x1 2x2] [--counts 33 257 2049 16385]
                                   [--steps 2000] [--repeats 5] [--default-model] [--nloops 4]

Part 1, exchange: for each layout NODESxRANKS_PER_NODE (block placement through
launch/emulated-cluster.sh: each node a network + UTS + IPC namespace, TCP between nodes,
shared memory within one) and each message size (int32 ids per rank, the training loop's
``cap + 1``; 33 is the default model's at 2048 neurons per rank), a worker times ``--steps``
exchanges of:

- ``flat``: one MPI_Allgather on all ranks from a jitted loop (numba-mpi), as the time loop does;
- ``flat-py``: the same from a Python loop (mpi4py), the baseline of the two below;
- ``hier``: node-aware, the ranks of a node Gather their ids to the node's first rank, the first
  ranks Allgather among the nodes, and Bcast the result within the node (mpi4py);
- ``hier-shm``: node-aware through an MPI-3 shared-memory window: each rank writes its ids into
  the node's window, a node barrier, the first rank of each node Allgathers the node's block
  into a shared receive window, a node barrier, and every rank reads the result in place.

Every variant's result is checked bitwise against ``flat``.  A step's cost is the slowest
rank's mean; each configuration runs ``--repeats`` times (fresh launches) and the table shows
the median and the spread (min-max) over the repeats.

Part 2 (``--default-model``): the default model (4096 neurons) initialised once, trained for
``--nloops`` loops on each layout of ``--model-layouts`` (default 1x2 and 2x1), seconds per loop
and the exchange share (loops 2..N, median over repeats), against ``tsn-mpi plan`` with the
matching ``--interconnect`` (``shm`` on one node, ``ethernet-tcp`` across the emulated nodes).
The emulated nodes share this machine's cores, so each rank gets ``cores / nodes / ranks per
node`` numba threads and the plan is asked for nodes of ``cores / nodes`` cores.

Saves benchmarks/results/internode.json (with the load average before and after each launch:
the machine is shared, so quote medians and spreads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLUSTER = ROOT / "launch" / "emulated-cluster.sh"
sys.path.insert(0, str(HERE))


# ---- worker (runs under mpiexec on the emulated nodes) ------------------------------------
def worker(counts: list[int], steps: int) -> None:
    import numba_mpi
    from mpi4py import MPI
    from numba import njit

    comm = MPI.COMM_WORLD
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    leaders = comm.Split(0 if node.Get_rank() == 0 else MPI.UNDEFINED, comm.Get_rank())
    hosts = comm.allgather(MPI.Get_processor_name())

    @njit
    def flat_loop(send, recv, count, steps):  # pragma: no cover - jitted
        for _ in range(steps):
            numba_mpi.allgather(send[:count], recv, count)

    out: dict = {
        "size": comm.Get_size(),
        "ranks_per_node": node.Get_size(),
        "nodes": len(set(hosts)),
        "hosts": hosts,
        "counts": {},
    }
    for count in counts:
        out["counts"][str(count)] = _one_size(MPI, comm, node, leaders, flat_loop, count, steps)
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps(out), flush=True)


def _one_size(MPI, comm, node, leaders, flat_loop, count: int, steps: int) -> dict:
    """Time every variant for ``count`` ids per rank; check each against ``flat`` bitwise."""
    rank, size = comm.Get_rank(), comm.Get_size()
    first, ppn = node.Get_rank() == 0, node.Get_size()
    n_nodes = len(set(comm.allgather(MPI.Get_processor_name())))
    send = (np.arange(count, dtype=np.int32) + rank * 100_003).astype(np.int32)
    ref = np.empty(count * size, np.int32)
    flat_loop(send, ref, count, 20)  # compile and warm up
    res: dict[str, float] = {}

    def timed(fn, n: int) -> float:
        comm.Barrier()
        t0 = MPI.Wtime()
        fn(n)
        dt = (MPI.Wtime() - t0) / n
        return float(comm.allreduce(dt, op=MPI.MAX))

    res["flat"] = timed(lambda n: flat_loop(send, ref, count, n), steps)
    recv = np.empty_like(ref)

    def flat_py(n: int) -> None:
        for _ in range(n):
            comm.Allgather(send, recv)

    res["flat-py"] = timed(flat_py, steps)
    ok = {"flat-py": recv.tobytes() == ref.tobytes()}
    if n_nodes > 1 and ppn > 1:
        block = np.empty(count * ppn, np.int32) if first else None
        recv_h = np.empty_like(ref)

        def hier(n: int) -> None:
            for _ in range(n):
                node.Gather(send, block, root=0)
                if first:
                    leaders.Allgather(block, recv_h)
                node.Bcast(recv_h, root=0)

        hier(5)
        ok["hier"] = recv_h.tobytes() == ref.tobytes()
        res["hier"] = timed(hier, steps)
        # shared-memory windows on the node's first rank: the node's ids and the full result
        item = 4
        win_s = MPI.Win.Allocate_shared(count * ppn * item if first else 0, item, comm=node)
        win_r = MPI.Win.Allocate_shared(count * size * item if first else 0, item, comm=node)
        node_send = np.ndarray((count * ppn,), np.int32, win_s.Shared_query(0)[0])
        shared_recv = np.ndarray((count * size,), np.int32, win_r.Shared_query(0)[0])
        mine = node_send[node.Get_rank() * count : (node.Get_rank() + 1) * count]
        win_s.Lock_all()
        win_r.Lock_all()

        def hier_shm(n: int) -> None:
            for _ in range(n):
                mine[:] = send
                win_s.Sync()
                node.Barrier()
                if first:
                    leaders.Allgather(node_send, shared_recv)
                    win_r.Sync()
                node.Barrier()
                win_r.Sync()

        hier_shm(5)
        ok["hier-shm"] = shared_recv.tobytes() == ref.tobytes()
        res["hier-shm"] = timed(hier_shm, steps)
        win_s.Unlock_all()
        win_r.Unlock_all()
        win_s.Free()
        win_r.Free()
    oks = comm.allgather(ok)
    return {
        "us_per_step": {k: v * 1e6 for k, v in res.items()},
        "bitwise": {k: all(o[k] for o in oks) for k in ok},
    }


# ---- driver ---------------------------------------------------------------------------------
def _load() -> float:
    return os.getloadavg()[0]


def _launch(
    layout: str,
    args: list[str],
    env: dict[str, str],
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    nodes, ppn = (int(x) for x in layout.split("x"))
    cmd = [
        "bash",
        str(CLUSTER),
        "mpiexec",
        "--nodes",
        str(nodes),
        "--ppn",
        str(ppn),
        "-n",
        str(nodes * ppn),
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _env(threads: int = 1) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS=str(threads))
    local = Path(sys.executable).parent / "mpiexec"
    env.setdefault("MPIEXEC", str(local) if local.exists() else "mpiexec")
    return env


def exchange_part(layouts: list[str], counts: list[int], steps: int, repeats: int) -> dict:
    runs: dict[str, list] = {lay: [] for lay in layouts}
    for rep in range(repeats):
        for lay in layouts:
            before = _load()
            res = _launch(
                lay,
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--worker",
                    "--counts",
                    *map(str, counts),
                    "--steps",
                    str(steps),
                ],
                _env(),
            )
            if res.returncode != 0:
                raise SystemExit(f"{lay}: worker failed\n{res.stdout}\n{res.stderr}")
            line = next(ln for ln in res.stdout.splitlines() if ln.startswith("RESULT "))
            data = json.loads(line[7:])
            data["load_before_after"] = [before, _load()]
            runs[lay].append(data)
            print(
                f"  repeat {rep + 1}/{repeats} {lay}: "
                + ", ".join(
                    f"{c}: {data['counts'][str(c)]['us_per_step']['flat']:.1f}" for c in counts
                )
                + " us (flat)",
                flush=True,
            )
    table: dict = {}
    for lay, reps in runs.items():
        table[lay] = {}
        for c in counts:
            variants = reps[0]["counts"][str(c)]["us_per_step"].keys()
            table[lay][str(c)] = {
                v: _stats([r["counts"][str(c)]["us_per_step"][v] for r in reps]) for v in variants
            }
            table[lay][str(c)]["bitwise"] = all(
                all(r["counts"][str(c)]["bitwise"].values()) for r in reps
            )
    return {"steps": steps, "repeats": repeats, "counts": counts, "summary": table, "runs": runs}


def _stats(xs: list[float]) -> dict[str, float]:
    return {
        "median": float(statistics.median(xs)),
        "min": float(min(xs)),
        "max": float(max(xs)),
        "n": len(xs),
    }


def _curve(run: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(run / "learning-curve.h5", "r") as f:
        return {
            k: np.asarray(f[k][...])
            for k in ("elapsed_s", "exchange_s", "sim_s", "rls_s")
            if k in f
        }


def model_part(layouts: list[str], nloops: int, repeats: int, work: Path) -> dict:
    from tsn_mpi.config import load_config
    from tsn_mpi.plan import plan

    base = work / "base"
    shutil.rmtree(work, ignore_errors=True)
    env = _env(threads=os.cpu_count() or 1)
    subprocess.run(
        [sys.executable, "-m", "tsn_mpi", "new", str(base)],
        check=True,
        env=env,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-m", "tsn_mpi", "--quiet", "init", str(base)], check=True, env=env
    )
    cfg = load_config(base / "config.toml")
    import h5py

    with h5py.File(base / "network.h5", "r") as f:
        rate = 0.5 * (float(f.attrs["rate_e_hz"]) + float(f.attrs["rate_i_hz"]))
    cores = os.cpu_count() or 1
    out: dict = {"nloops": nloops, "rate_hz": rate, "layouts": {}}
    for lay in layouts:
        nodes, ppn = (int(x) for x in lay.split("x"))
        per_loop, exch = [], []
        for _ in range(repeats):
            run = work / f"{lay}"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(base, run)
            threads = max(1, cores // nodes // ppn)  # the emulated nodes share this machine
            res = _launch(
                lay,
                [sys.executable, "-m", "tsn_mpi", "train", str(run), "--nloops", str(nloops)],
                _env(threads),
            )
            if res.returncode != 0:
                raise SystemExit(f"{lay}: train failed\n{res.stdout}\n{res.stderr}")
            cur = _curve(run)
            per_loop.append(float(np.median(cur["elapsed_s"][1:])))
            exch.append(float(np.median(cur["exchange_s"][1:])))
            print(
                f"  default model {lay}: {per_loop[-1]:.3f} s/loop, exchange {exch[-1]:.3f} s",
                flush=True,
            )
        icn = "shm" if nodes == 1 else "ethernet-tcp"
        # the emulated nodes share this machine: each has cores / nodes of its cores
        p = plan(
            cfg,
            nodes * ppn,
            ranks_per_node=ppn,
            cores_per_node=max(1, cores // nodes),
            rate_hz=rate,
            interconnect=icn,
        )
        med = statistics.median(per_loop)
        out["layouts"][lay] = {
            "threads_per_rank": max(1, cores // nodes // ppn),
            "seconds_per_loop": _stats(per_loop),
            "exchange_s": _stats(exch),
            "plan_interconnect": icn,
            "plan_seconds_per_loop": p["seconds_per_loop"],
            "plan_time": p["time"],
            "plan_error": p["seconds_per_loop"] / med - 1.0,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--layouts",
        nargs="+",
        default=["1x2", "2x1", "2x2"],
        help="NODESxRANKS_PER_NODE (default 1x2 2x1 2x2)",
    )
    ap.add_argument("--counts", type=int, nargs="+", default=[33, 257, 2049, 16385])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--default-model", action="store_true")
    ap.add_argument("--model-layouts", nargs="+", default=["1x2", "2x1"])
    ap.add_argument("--nloops", type=int, default=4)
    ap.add_argument("--model-repeats", type=int, default=3)
    ap.add_argument("--no-exchange", action="store_true", help="only the default-model part")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-internode"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "internode.json")
    args = ap.parse_args()
    if args.worker:
        worker(args.counts, args.steps)
        return
    if not (Path("/run/tsn-cluster") / "ssh").exists():
        raise SystemExit("the emulated cluster is not up: launch/emulated-cluster.sh up 2")
    from _provenance import save_json

    data: dict = {"load_start": _load(), "cores": os.cpu_count()}
    t0 = time.time()
    if not args.no_exchange:
        data["exchange"] = exchange_part(args.layouts, args.counts, args.steps, args.repeats)
        print(
            f"\n{'layout':<7}{'ids/rank':>9}"
            + "".join(f"{v:>22}" for v in ("flat", "flat-py", "hier", "hier-shm"))
        )
        for lay, rows in data["exchange"]["summary"].items():
            for c, row in rows.items():
                cells = []
                for v in ("flat", "flat-py", "hier", "hier-shm"):
                    s = row.get(v)
                    cells.append(
                        f"{s['median']:8.1f} ({s['min']:.0f}-{s['max']:.0f})" if s else "-"
                    )
                print(
                    f"{lay:<7}{c:>9}"
                    + "".join(f"{x:>22}" for x in cells)
                    + ("" if row["bitwise"] else "  NOT BITWISE")
                )
    if args.default_model:
        data["default_model"] = model_part(
            args.model_layouts, args.nloops, args.model_repeats, args.work
        )
        print(
            f"\n{'layout':<7}{'s/loop (median, min-max)':>28}{'exchange s':>12}{'plan':>8}"
            f"{'error':>8}"
        )
        for lay, row in data["default_model"]["layouts"].items():
            s = row["seconds_per_loop"]
            print(
                f"{lay:<7}{s['median']:>12.3f} ({s['min']:.3f}-{s['max']:.3f})"
                f"{row['exchange_s']['median']:>12.3f}{row['plan_seconds_per_loop']:>8.3f}"
                f"{100 * row['plan_error']:>7.0f}%"
            )
    data["load_end"] = _load()
    data["wall_s"] = time.time() - t0
    save_json(args.out, data, __file__)
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
