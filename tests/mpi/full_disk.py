"""MPI program: every rank writes its rows of a file larger than the (small) file system.

    mpiexec -n N python tests/mpi/full_disk.py N DIR MB

Two writes of about MB megabytes into DIR: ``write_checkpoint`` (its free-space check stops
every rank before anything is written) and a collective ``create`` with the size known (the
blocks are allocated before the data: the disk-full error comes from there, on rank 0, and
never from inside a collective write, so no rank waits).  Each rank prints
``rank R: <case> OutputError agreed=<bool>: <message>`` (gathered, printed by rank 0) and
exits 0 when both cases raised it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from _expect import world

comm = world(int(sys.argv[1]))
folder, mb = Path(sys.argv[2]), float(sys.argv[3])

from tsn_mpi.errors import OutputError  # noqa: E402
from tsn_mpi.io import h5_write  # noqa: E402
from tsn_mpi.io.checkpoint import write_checkpoint  # noqa: E402

width = 1000
n = int(mb * 1e6) // (4 * width)
lo, hi = comm.rank * n // comm.size, (comm.rank + 1) * n // comm.size
rows = np.ones((hi - lo, width), np.float32)
out = []
for case in ("checkpoint", "reserved"):
    try:
        if case == "checkpoint":
            write_checkpoint(folder / "ckpt-1.h5", comm, range(lo, hi), n, {}, {"P": rows}, {})
        else:
            with h5_write.create(folder / "big.h5", comm, size_hint=n * width * 4) as w:
                w.write_rows("P", rows, lo, n)
        out.append(f"rank {comm.rank}: {case} written?!")
    except OutputError as e:
        out.append(
            f"rank {comm.rank}: {case} OutputError agreed={getattr(e, 'agreed', False)}: {e}"
        )
lines = comm.allgather_obj(out)  # printed by rank 0: ranks' output does not interleave
if comm.rank == 0:
    print("\n".join(ln for rank_lines in lines for ln in rank_lines), flush=True)
sys.exit(0 if all("OutputError" in ln for ln in out) else 1)
