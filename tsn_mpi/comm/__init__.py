"""Communicators: :func:`make_comm` picks MPI when launched by mpiexec/srun, else serial."""

from __future__ import annotations

import os

from tsn_mpi.comm.base import Comm
from tsn_mpi.comm.serial import SerialComm

# Variables that launchers set in every rank they start.  If any says "more than one rank"
# and MPI cannot give us a communicator of that size, the job was launched wrongly.
LAUNCHER_SIZE_VARS = (
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "MPI_LOCALNRANKS",
    "PMIX_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "SLURM_NTASKS",
)


def launcher_size() -> tuple[int, str] | None:
    """The number of ranks the environment claims this job has, with the variable's name."""
    for var in LAUNCHER_SIZE_VARS:
        val = os.environ.get(var)
        if val and val.isdigit():
            n = int(val)
            if var == "SLURM_NTASKS" and "SLURM_STEP_ID" not in os.environ:
                continue  # inside sbatch but outside srun: the batch shell itself
            if var == "MPI_LOCALNRANKS":
                continue  # node-local count, not the world size
            return n, var
    return None


def under_launcher() -> bool:
    """True when an MPI launcher (mpiexec, srun) started this process."""
    if launcher_size() is not None:
        return True
    return any(v in os.environ for v in ("PMI_RANK", "PMI_FD", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"))


def make_comm(force: str | None = None) -> Comm:
    """Return an MPI communicator when launched under MPI (or forced), else SerialComm.

    ``force`` may be "serial" or "mpi"; the environment variable ``TSN_MPI_COMM`` does the same.
    """
    choice = force or os.environ.get("TSN_MPI_COMM", "auto")
    if choice == "serial":
        return SerialComm()
    if choice == "mpi" or (choice == "auto" and under_launcher()):
        from tsn_mpi.comm.mpi import MpiComm

        return MpiComm.world()
    return SerialComm()


__all__ = ["Comm", "SerialComm", "make_comm", "launcher_size", "under_launcher"]
