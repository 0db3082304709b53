"""tsn-mpi: train spiking recurrent networks with RLS on one process or many MPI ranks.

Public API (each phase is also a CLI subcommand): :func:`new`, :func:`init`, :func:`train`,
:func:`test`, :func:`plot`, :func:`run`, :func:`evaluate`, :func:`status`,
:func:`load_config`.
"""

from tsn_mpi._numba_cache import configure as _configure_numba_cache
from tsn_mpi._version import __version__

_configure_numba_cache()  # before any kernel module is imported

from tsn_mpi.api import evaluate, init, new, plot, run, status, test, train  # noqa: E402
from tsn_mpi.config import load_config  # noqa: E402

__all__ = ["__version__", "new", "init", "train", "test", "plot", "run", "evaluate", "status",
           "load_config"]
