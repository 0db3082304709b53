"""Write/read throughput of checkpoint-shaped HDF5 files through tsn_mpi.io.h5_write / h5_read.

    python benchmarks/h5_throughput.py                    # 1 rank ("serial")
    mpiexec -n 2 python benchmarks/h5_throughput.py       # 2 ranks ("turns" or "mpio")
    mpiexec.mpich -n 2 .venv-mpi/bin/python benchmarks/h5_throughput.py --strategy turns

Files: P packed (n × 1711 float32, L = 58) + plastic weights (n × 58 float32), for the default
model (4096 neurons) and a bigger one (50k).  "write" runs from the first write call to the
renamed file (fsync included); "(calls)" is the time inside the write calls only (with "turns",
ranks > 0 only queue their rows there and write them when the file is closed).  Reads: every
rank reads its own rows; "cold" after evicting the file from the page cache (posix_fadvise
DONTNEED), "warm" straight after.  Prints a table and saves
benchmarks/results/h5_throughput_<strategy>_r<R>[_<tag>].json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tsn_mpi.comm import make_comm
from tsn_mpi.io import h5_read, h5_strategy, h5_write
from tsn_mpi.partition import partition

L = 58
PACKED = L * (L + 1) // 2  # 1711
SIZES = {"default": 4096, "big": 50_000}


def evict(path: Path) -> None:
    """Drop this file's (clean) pages from the page cache so the next read hits the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def one_size(comm, n: int, directory: Path, repeat: int) -> dict:
    owned = partition(n, comm.size).range_of(comm.rank)
    rng = np.random.default_rng(comm.rank)
    p = rng.standard_normal((len(owned), PACKED), dtype=np.float32)
    w = rng.standard_normal((len(owned), L), dtype=np.float32)
    nbytes = n * (PACKED + L) * 4
    path = directory / f"bench-{n}.h5"
    t_write, t_body, t_cold, t_warm = [], [], [], []
    for _ in range(repeat):
        comm.barrier()
        t0 = time.perf_counter()
        with h5_write.create(path, comm, attrs={"n_cells": n}) as wr:
            wr.write_rows("P", p, owned.start, n)
            wr.write_rows("wp", w, owned.start, n)
            t1 = time.perf_counter()
        comm.barrier()
        t2 = time.perf_counter()
        t_body.append(comm.allreduce_max(np.array([t1 - t0]))[0])
        t_write.append(t2 - t0)
        if comm.rank == 0:
            evict(path)
        for times in (t_cold, t_warm):
            comm.barrier()
            t0 = time.perf_counter()
            with h5_read.open_read(path, what="benchmark file") as f:
                got = h5_read.read_rows(f, "P", owned)
                h5_read.read_rows(f, "wp", owned)
            comm.barrier()
            times.append(time.perf_counter() - t0)
        if not np.array_equal(got, p):
            raise SystemExit(f"rank {comm.rank}: read back differs")
    comm.barrier()
    if comm.rank == 0:
        path.unlink()
    mb = nbytes / 1e6

    def stats(ts: list[float]) -> dict:
        return {
            "best_s": min(ts),
            "median_s": statistics.median(ts),
            "best_MB_s": mb / min(ts),
            "median_MB_s": mb / statistics.median(ts),
        }

    return {
        "n_cells": n,
        "MB": mb,
        "write": stats(t_write),
        "write_calls_only": stats(t_body),
        "read_cold": stats(t_cold),
        "read_warm": stats(t_warm),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="default,big", help="comma list of: default, big, <n>")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the files go (default: a temp dir)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--tag", default="", help="suffix of the JSON name (e.g. the HDF5 build)")
    ap.add_argument("--strategy", default="auto", choices=("auto", "turns", "mpio"),
                    help="multi-rank write strategy (config key run.h5_writes)")
    args = ap.parse_args()
    comm = make_comm()
    h5_strategy.set_strategy(args.strategy)
    strat = h5_strategy.strategy(comm)
    base = args.dir or (tempfile.mkdtemp(prefix="tsn-h5bench-") if comm.rank == 0 else None)
    directory = Path(comm.bcast(base, root=0))
    results = []
    for key in args.sizes.split(","):
        n = SIZES.get(key) or int(key)
        results.append(one_size(comm, n, directory, args.repeat))
    if comm.rank != 0:
        return
    if args.dir is None:
        directory.rmdir()
    print(f"h5 throughput: strategy {strat}, {comm.size} rank(s), {h5_strategy.describe()}")
    print(
        f"{'n_cells':>8} {'MB':>8} {'write MB/s':>11} {'(calls)':>9} {'read cold':>10} {'warm':>8}"
    )
    for r in results:
        print(
            f"{r['n_cells']:>8} {r['MB']:>8.1f} {r['write']['best_MB_s']:>11.0f} "
            f"{r['write_calls_only']['best_MB_s']:>9.0f} {r['read_cold']['best_MB_s']:>10.0f} "
            f"{r['read_warm']['best_MB_s']:>8.0f}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "strategy": strat,
        "ranks": comm.size,
        "repeat": args.repeat,
        "describe": h5_strategy.describe(),
        "machine": {
            "node": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "dir": str(directory),
        "note": "best of `repeat`; MB = 1e6 bytes of P + wp; write includes fsync and rename",
        "results": results,
    }
    tag = f"_{args.tag}" if args.tag else ""
    from _provenance import save_json

    dest = save_json(out / f"h5_throughput_{strat}_r{comm.size}{tag}.json", doc, __file__, indent=2)
    print(f"saved {dest}")


if __name__ == "__main__":
    main()
