"""MPI program: every rank starts training; one rank raises mid-way. All must stop promptly.

argv: expected size, run dir, failing rank, kind ('bug' or 'input').
"""

from __future__ import annotations

import sys

from _expect import world

comm = world(int(sys.argv[1]))
run_dir, bad_rank, kind = sys.argv[2], int(sys.argv[3]), sys.argv[4]

import tsn_mpi.backends.cpu.learner as learner_mod  # noqa: E402
from tsn_mpi.cli import main  # noqa: E402
from tsn_mpi.errors import DataFileError  # noqa: E402

original = learner_mod.CpuLearner.update
calls = {"n": 0}


def failing_update(self, *args):
    calls["n"] += 1
    if comm.rank == bad_rank and calls["n"] == 5:
        if kind == "bug":
            raise RuntimeError("injected failure on one rank")
        raise DataFileError("injected bad input on one rank")
    return original(self, *args)


learner_mod.CpuLearner.update = failing_update
sys.exit(main(["train", run_dir, "--nloops", "3"]))
