"""MPI program: write a checkpoint-like file from all ranks, or read one back and check it.

    mpiexec -n N python tests/mpi/h5_write_read.py N write PATH
    mpiexec -n N python tests/mpi/h5_write_read.py N read PATH

The data is a pure function of the global neuron id (``expected_file``), so the pytest side
can write the same file from one process and compare, and any rank count can check its rows.
Uneven partition; with 3 or more ranks rank 0 owns no rows.  Prints one line per rank:
``rank R/N strategy S ok``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

N_CELLS = 23
ROW = 11


def bounds(size: int) -> list[int]:
    """Uneven gid ranges; rank 0 is empty from 3 ranks on."""
    if size == 1:
        return [0, N_CELLS]
    if size == 2:
        return [0, 15, N_CELLS]
    cuts = np.linspace(9, N_CELLS, size - 1).round().astype(int).tolist()
    return [0, 0, *cuts[:-1], N_CELLS]


def expected_file() -> dict:
    """Every dataset of the file as a single process sees it, and the root attributes."""
    rng = np.random.default_rng(1234)
    counts = np.arange(N_CELLS) % 5
    counts[N_CELLS // 2] = 0
    nnz = int(counts.sum())
    return {
        "rows": {
            "P": rng.random((N_CELLS, ROW), dtype=np.float32),
            "v": rng.standard_normal(N_CELLS),
            "ids": rng.integers(-300, 300, (N_CELLS, 2, 3)).astype(np.int16),
            "flags": rng.random(N_CELLS) < 0.5,
        },
        "csr": {
            "static": (
                counts,
                {
                    "pre": rng.integers(0, N_CELLS, nnz).astype(np.int32),
                    "w": rng.standard_normal(nnz).astype(np.float32),
                    "pair": rng.integers(0, 255, (nnz, 2)).astype(np.uint8),
                },
            ),
            "empty": (np.zeros(N_CELLS, np.int64), {"x": np.zeros(0, np.float64)}),
        },
        "global": {"table": np.linspace(0, 1, 7), "scalar": np.float32(2.5)},
        "attrs": {"n_cells": N_CELLS, "model": "lif", "seed": 7, "who": 0},
    }


def csr_slice(counts, values, lo: int, hi: int):
    ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    a, b = ptr[lo], ptr[hi]
    return ptr[lo : hi + 1] - a, {k: v[a:b] for k, v in values.items()}


def write(path: str, comm) -> str:
    """Write the expected file from ``comm`` (each rank its own rows)."""
    from tsn_mpi.io import h5_strategy, h5_write

    data = expected_file()
    edges = bounds(comm.size)
    lo, hi = edges[comm.rank], edges[comm.rank + 1]
    attrs = dict(data["attrs"], who=comm.rank)  # rank 0's value must win
    with h5_write.create(path, comm, attrs={"n_cells": attrs["n_cells"], "who": attrs["who"]}) as w:
        for name, arr in data["rows"].items():
            local = arr[lo:hi]
            if hi == lo:  # a rank without rows may pass an empty array of another dtype
                local = np.zeros((0,) + arr.shape[1:], dtype=np.float64)
            w.write_rows(name, local, lo, N_CELLS)
        for group, (counts, values) in data["csr"].items():
            ptr, vals = csr_slice(counts, values, lo, hi)
            w.write_csr(group, ptr, vals, lo, N_CELLS)
        for name, arr in data["global"].items():
            w.write_global(name, arr)
        w.set_attrs({"model": "lif", "seed": 7 + comm.rank})
    return h5_strategy.strategy(comm)


def check_read(path: str, rank: int, size: int) -> None:
    """Read this rank's rows of every dataset and compare bitwise with the expectation."""
    from tsn_mpi.io import h5_read

    data = expected_file()
    edges = bounds(size)
    rows = range(edges[rank], edges[rank + 1])
    with h5_read.open_read(path) as f:
        for name, arr in data["rows"].items():
            got = h5_read.read_rows(f, name, rows)
            want = arr[rows.start : rows.stop]
            if got.dtype != want.dtype or got.tobytes() != want.tobytes():
                sys.exit(f"rank {rank}: {name} differs")
        for group, (counts, values) in data["csr"].items():
            ptr, vals = h5_read.read_csr(f, group, rows)
            wptr, wvals = csr_slice(counts, values, rows.start, rows.stop)
            if ptr.tolist() != wptr.tolist() or sorted(vals) != sorted(wvals):
                sys.exit(f"rank {rank}: {group} indptr differs")
            for k, v in wvals.items():
                if vals[k].dtype != v.dtype or vals[k].tobytes() != v.tobytes():
                    sys.exit(f"rank {rank}: {group}/{k} differs")
        if h5_read.read_attrs(f) != data["attrs"]:
            sys.exit(f"rank {rank}: attrs {h5_read.read_attrs(f)} != {data['attrs']}")


def main() -> None:
    from _expect import world

    expected, mode, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    comm = world(expected)
    from tsn_mpi.io import h5_strategy, h5_write

    # test knobs (the package reads no environment for these): write strategy, bytes per
    # write call, and a pause before the 'complete' mark (tests/mpi/pause_writes.py)
    h5_strategy.set_strategy(os.environ.get("TSN_TEST_H5_WRITES", "auto"))
    if os.environ.get("TSN_TEST_IO_BYTES"):
        h5_write.MAX_IO_BYTES = int(os.environ["TSN_TEST_IO_BYTES"])
    if os.environ.get("TSN_TEST_PAUSE"):
        from pause_writes import install

        install(float(os.environ["TSN_TEST_PAUSE"]))

    if mode == "write":
        write(path, comm)
    elif mode == "read":
        check_read(path, comm.rank, comm.size)
    else:
        sys.exit(f"unknown mode {mode}")
    print(f"rank {comm.rank}/{comm.size} strategy {h5_strategy.strategy(comm)} ok", flush=True)


if __name__ == "__main__":
    main()
