"""numba threads per rank: the node's cores shared among the ranks on it, unless the user chose.

Several ranks on one node each starting one numba (OpenMP) thread per core oversubscribe the
cores during RLS, and idle OpenMP threads spin for a while after each parallel region, taking
cores from the other ranks' time loops.  When ``NUMBA_NUM_THREADS`` is not set, each rank uses
``cores available to it // ranks on its node`` threads (at least 1).
"""

from __future__ import annotations

import os

from tsn_mpi.comm.base import Comm


def cores_available() -> int:
    """CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def share_cores(comm: Comm) -> int | None:
    """Set numba's thread count for this rank (collective); returns it, or None when the user
    set ``NUMBA_NUM_THREADS`` (left alone)."""
    local = comm.node_size() if comm.size > 1 else 1
    if os.environ.get("NUMBA_NUM_THREADS"):
        return None
    import numba

    threads = max(1, min(cores_available() // max(local, 1), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads
