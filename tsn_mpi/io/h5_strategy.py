"""How a multi-rank HDF5 file is written: the strategy chosen from the communicator, h5py's
build and the config key ``run.h5_writes`` (see :mod:`tsn_mpi.io.h5_write` for what each
strategy does).

- ``serial``: one rank, plain h5py.
- ``mpio``: h5py built with MPI (``launch/install-parallel-hdf5.sh``); collective writes.
- ``turns``: serial h5py on several ranks, one rank after another.
"""

from __future__ import annotations

from typing import Any

import h5py

from tsn_mpi.comm.base import Comm
from tsn_mpi.errors import LaunchError

STRATEGY_KEY = "run.h5_writes"
STRATEGIES = ("auto", "turns", "mpio")
_forced = "auto"  # set_strategy(): the run's run.h5_writes


def set_strategy(name: str) -> None:
    """Use ``name`` ('auto', 'turns' or 'mpio': config key ``run.h5_writes``) for the files
    this process writes from now on."""
    global _forced
    if name not in STRATEGIES:
        raise LaunchError(f"{STRATEGY_KEY} = {name!r}: expected 'auto', 'turns' or 'mpio'")
    _forced = name


def h5py_has_mpi() -> bool:
    """True when h5py was built against a parallel HDF5."""
    return bool(h5py.get_config().mpi)


def strategy(comm: Comm) -> str:
    """How a file is written with ``comm``: "serial", "mpio" or "turns" (module docstring)."""
    if comm.size == 1:
        return "serial"
    forced = _forced
    if forced == "turns":
        return "turns"
    mpio = getattr(comm, "kind", "") == "mpi" and h5py_has_mpi()
    if forced == "mpio" and not mpio:
        raise LaunchError(
            f"{STRATEGY_KEY} = 'mpio' but this h5py ({h5py.__version__}) has no MPI: build one "
            "with launch/install-parallel-hdf5.sh"
        )
    return "mpio" if mpio else "turns"


def describe() -> dict[str, Any]:
    """Versions and the write strategy a multi-rank run would use (for ``tsn-mpi info``)."""
    mpi = h5py_has_mpi()
    forced = _forced
    return {
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "h5py_mpi": mpi,
        "strategy_multi_rank": "turns" if forced == "turns" or not mpi else "mpio",
        "forced": None if forced == "auto" else forced,
    }
