"""CPU backend: numba kernels (``@njit(cache=True)``, parallel over numba threads).

- :mod:`~tsn_mpi.backends.cpu.rls`: RLS updates, fast mode on AoSoA tiles and small mode.
"""

from __future__ import annotations

from tsn_mpi.backends.cpu import rls

__all__ = ["rls"]
