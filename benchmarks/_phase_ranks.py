"""Helper run under mpiexec by paper_1m.py / weak_scaling.py: run one phase, print one JSON line.

Usage: ``_phase_ranks.py EXPECTED_RANKS init|train RUN_DIR [NLOOPS]``.  Rank 0 prints
``RESULT {...}`` with the wall time, every rank's peak RSS and, for train, the learning curve
(including its per-loop time split).
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

import tsn_mpi
from tsn_mpi.comm import make_comm

expected, phase, run_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
comm = make_comm()
if comm.size != expected:
    raise SystemExit(f"expected {expected} ranks, got {comm.size}")
t0 = time.perf_counter()
out: dict = {}
if phase == "init":
    out["init"] = tsn_mpi.init(run_dir, comm=comm)
else:
    curve = tsn_mpi.train(run_dir, nloops=int(sys.argv[4]), comm=comm)
    out["curve"] = {k: np.asarray(v).tolist() for k, v in curve.items()}
out["wall_s"] = time.perf_counter() - t0
out["rss"] = comm.allgather_obj(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
if comm.rank == 0:
    print("RESULT " + json.dumps(out, default=float), flush=True)
