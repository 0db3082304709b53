"""MPI program: train, after making one neuron's P NaN on one rank before one RLS update.

argv: expected size, run dir, rank, local id, update call (1-based, counted on that rank since
this process started), then the ``tsn-mpi train`` options.  Size 1 runs the serial CLI path
(no MPI at all).  The CLI's exit code is this program's exit code.
"""

from __future__ import annotations

import sys

expected = int(sys.argv[1])
run_dir, bad_rank, bad_lid, bad_call = (
    sys.argv[2],
    int(sys.argv[3]),
    int(sys.argv[4]),
    int(sys.argv[5]),
)
if expected > 1:
    from _expect import world

    rank = world(expected).rank
else:
    rank = 0

import numpy as np  # noqa: E402

import tsn_mpi.backends.cpu.learner as learner_mod  # noqa: E402
from tsn_mpi.cli import main  # noqa: E402

original = learner_mod.CpuLearner.update
calls = {"n": 0}


def update_with_nan(self, *args):
    calls["n"] += 1
    if rank == bad_rank and calls["n"] == bad_call:
        rows = np.array(self.p_rows())
        rows[bad_lid, 0] = np.nan  # one entry of this neuron's P
        self.P = self._to_tiles(rows)
        # the partition is balanced by work, so say which global neuron this is
        print(f"poisoned gid {self.net.owned.start + bad_lid}", flush=True)
    return original(self, *args)


learner_mod.CpuLearner.update = update_with_nan
sys.exit(main(["train", run_dir, *sys.argv[6:]]))
