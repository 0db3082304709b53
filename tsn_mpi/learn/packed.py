"""Index math and layout changes for per-neuron symmetric matrices P (spec §4.4).

Three layouts hold the P of ``n_owned`` neurons, each P an ``n x n`` symmetric matrix:

- full: ``(k, n, n)``, the plain matrices (tests, small problems);
- rows: ``(n_owned, L)``, one neuron per row, used in files; ``L = n_packed(n)`` for the packed
  upper triangle (element ``(a, b)``, ``a <= b``, at ``a + b*(b+1)//2``: column by column, as
  SymmetricFormats.jl) or ``L = n*n`` for full storage (row-major ``a*n + b``);
- tiles: ``(n_tiles, L, W)``, the in-memory CPU layout (AoSoA): ``W = TILE_W`` neurons interleaved
  so that kernels run their innermost loop across neurons.  Neuron ``lid`` lives in tile
  ``lid // W``, lane ``lid % W``; lanes past ``n_owned`` are zero padding.

Nothing here is hot: these run once at start-up, checkpoint and test time.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

TILE_W = 32  # neurons per AoSoA tile (infra notes §3: W=32 reaches ~35 GB/s)


def packed_index(a: int, b: int) -> int:
    """0-based position of element ``(a, b)`` in the packed upper triangle (swapped if a > b)."""
    if a > b:
        a, b = b, a
    return a + b * (b + 1) // 2


def n_packed(n: int) -> int:
    """Length ``n*(n+1)//2`` of the packed upper triangle of an ``n x n`` matrix."""
    return n * (n + 1) // 2


def n_from_packed(length: int) -> int:
    """Inverse of :func:`n_packed`; raises ValueError if ``length`` is not triangular."""
    n = int((np.sqrt(8 * length + 1) - 1) // 2)
    while n_packed(n) < length:
        n += 1
    if n_packed(n) != length:
        raise ValueError(f"{length} is not a triangular number n*(n+1)/2")
    return n


def upper_indices(n: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Row and column indices ``(a, b)``, ``a <= b``, in packed order; each (n_packed(n),)."""
    b = np.repeat(np.arange(n), np.arange(1, n + 1))
    a = np.arange(n_packed(n)) - b * (b + 1) // 2
    return a, b


def pack_rows(full: NDArray) -> NDArray:
    """Packed upper triangles of a stack of matrices: (k, n, n) -> (k, n_packed(n)), same dtype."""
    full = np.asarray(full)
    a, b = upper_indices(full.shape[-1])
    return np.ascontiguousarray(full[:, a, b])


def unpack_rows(packed: NDArray) -> NDArray:
    """Symmetric matrices from packed upper triangles: (k, n_packed) -> (k, n, n), same dtype."""
    packed = np.asarray(packed)
    n = n_from_packed(packed.shape[-1])
    a, b = upper_indices(n)
    full = np.zeros((packed.shape[0], n, n), dtype=packed.dtype)
    full[:, a, b] = packed
    full[:, b, a] = packed
    return full


def symmetrize_full_rows(rows: NDArray, n: int) -> NDArray:
    """Full-storage rows (k, n*n) -> (k, n, n) symmetric, taking the upper triangle as truth.

    The full-storage kernels read and write only the upper triangle (``a <= b``, like Julia's
    ``Symmetric``), so the lower triangle of their output is stale.
    """
    full = np.asarray(rows).reshape(-1, n, n)
    a, b = upper_indices(n)
    out = np.empty_like(full)
    out[:, a, b] = full[:, a, b]
    out[:, b, a] = full[:, a, b]
    return out


def n_tiles(n_owned: int, w: int = TILE_W) -> int:
    """Number of tiles ``ceil(n_owned / w)`` that hold ``n_owned`` neurons."""
    return -(-n_owned // w)


def rows_to_tiles(rows: NDArray, w: int = TILE_W, dtype: DTypeLike | None = None) -> NDArray:
    """One-neuron-per-row (n_owned, L) -> AoSoA tiles (n_tiles, L, w); padding lanes are zero.

    ``dtype`` defaults to the dtype of ``rows``; for float16 storage pass ``np.float16`` and view
    the result as ``np.uint16`` for the CPU kernels.
    """
    rows = np.asarray(rows)
    n_owned, length = rows.shape
    nt = n_tiles(n_owned, w)
    out = np.zeros((nt, length, w), dtype=dtype or rows.dtype)
    for t in range(nt):
        lo, hi = t * w, min((t + 1) * w, n_owned)
        out[t, :, : hi - lo] = rows[lo:hi].T
    return out


def tiles_to_rows(tiles: NDArray, n_owned: int) -> NDArray:
    """AoSoA tiles (n_tiles, L, w) -> one-neuron-per-row (n_owned, L), same dtype."""
    tiles = np.asarray(tiles)
    nt, length, w = tiles.shape
    if n_owned > nt * w:
        raise ValueError(f"{nt} tiles of {w} lanes cannot hold {n_owned} neurons")
    out = np.empty((n_owned, length), dtype=tiles.dtype)
    for t in range(nt):
        lo, hi = t * w, min((t + 1) * w, n_owned)
        if hi > lo:
            out[lo:hi] = tiles[t, :, : hi - lo].T
    return out
