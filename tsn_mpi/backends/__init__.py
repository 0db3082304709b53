"""Compute backends chosen by name: ``cpu`` (numba kernels) or ``gpu`` (numba-cuda kernels).

Both packages expose the same submodules, functions and signatures (e.g. ``rls.rls_fast``), so
a driver picks one with :func:`get_backend` once and calls it without knowing which it got.
numba-cuda is imported only when the ``gpu`` backend is requested.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tsn_mpi.errors import ConfigError

BACKENDS = ("cpu", "gpu")


def get_backend(name: str) -> ModuleType:
    """The backend package ``tsn_mpi.backends.<name>`` (imported on first use)."""
    if name not in BACKENDS:
        raise ConfigError(f"backend = {name!r}: expected one of {', '.join(BACKENDS)}")
    return importlib.import_module(f"tsn_mpi.backends.{name}")
