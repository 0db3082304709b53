"""Shared prologue of MPI test programs: check the communicator size we were promised."""

from __future__ import annotations

import sys


def world(expected: int):
    """Return MpiComm.world(), exiting non-zero unless its size is ``expected``."""
    from tsn_mpi.comm.mpi import MpiComm

    comm = MpiComm.world(expected=expected)
    if comm.size != expected:  # pragma: no cover - MpiComm.world already raises
        sys.exit(f"expected {expected} ranks, got {comm.size}")
    return comm
