"""Per-neuron rows produced block by block, so that large arrays never exist twice in memory.

P of a million neurons is 8-16 GB per rank; converting it between the in-memory AoSoA tiles
and the one-row-per-neuron file layout in one piece would double the peak.  A
:class:`LazyRows` looks like a 2-D array to the HDF5 writer and to the tile builders, but
materialises only the rows it is sliced for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import DTypeLike, NDArray

BLOCK_BYTES = 256 << 20  # rows converted per block when a consumer streams a LazyRows


class LazyRows:
    """A read-only ``(n, length)`` array of ``dtype`` whose rows ``[lo, hi)`` come from
    ``fn(lo, hi)``; supports ``len``, ``shape``, ``dtype``, contiguous slices and ``np.asarray``."""

    ndim = 2

    def __init__(self, n: int, length: int, dtype: DTypeLike,
                 fn: Callable[[int, int], NDArray]) -> None:  # fmt: skip
        self.shape = (int(n), int(length))
        self.dtype = np.dtype(dtype)
        self._fn = fn

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, sl: slice) -> NDArray:
        if not isinstance(sl, slice):
            raise TypeError("LazyRows supports contiguous row slices only")
        lo, hi, step = sl.indices(self.shape[0])
        if step != 1:
            raise TypeError("LazyRows supports contiguous row slices only")
        hi = max(hi, lo)
        out = np.asarray(self._fn(lo, hi), dtype=self.dtype)
        if out.shape != (hi - lo, self.shape[1]):
            raise ValueError(f"row block {lo}:{hi} has shape {out.shape}")
        return out

    def __array__(self, dtype=None, copy=None) -> NDArray:
        out = self[0 : self.shape[0]]
        return out if dtype is None else out.astype(dtype)


def block_rows(length: int, itemsize: int, multiple: int = 1) -> int:
    """Rows per block of about BLOCK_BYTES, a positive multiple of ``multiple``."""
    per = max(1, BLOCK_BYTES // max(1, length * itemsize))
    return max(multiple, per // multiple * multiple)
