"""Helper run under mpiexec by scaling.py: train, then print one JSON line (rank 0)."""

from __future__ import annotations

import json
import resource
import sys

import numpy as np

import tsn_mpi
from tsn_mpi.comm import make_comm

expected, run_dir, nloops = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
comm = make_comm()
if comm.size != expected:
    raise SystemExit(f"expected {expected} ranks, got {comm.size}")
curve = tsn_mpi.train(run_dir, nloops=nloops, comm=comm, quiet=True)
rss = comm.allgather_obj(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
if comm.rank == 0:
    print("RESULT " + json.dumps({k: np.asarray(v).tolist() for k, v in curve.items()}
                                 | {"rss": rss}))
