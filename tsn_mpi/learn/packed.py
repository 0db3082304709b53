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

import mmap

import numpy as np
from numpy.typing import DTypeLike, NDArray

from tsn_mpi.io.rows import LazyRows, block_rows

TILE_W = 32  # neurons per AoSoA tile (infra notes §3: W=32 reaches ~35 GB/s)
_HUGE = 1 << 21  # transparent huge page size (x86-64 and most Linux arm64 kernels)


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


def alloc_tiles(n_tiles: int, length: int, dtype: DTypeLike, w: int = TILE_W) -> NDArray:
    """Zeroed tiles (n_tiles, length, w); on Linux backed by transparent huge pages if large.

    The RLS kernel streams P through each core; with 4 KB pages the hardware prefetchers stop
    at every page boundary, and 2 MB pages gave 5-15% more bandwidth per core (Zen 5).  numpy's own
    huge-page advice does not reach zero-filled allocations, so big arrays (>= 8 MB) are mapped
    here (anonymous, private, 2 MB aligned) and advised with MADV_HUGEPAGE; it is only advice,
    and elsewhere this is plain ``np.zeros``.  The mapping is freed with the array.
    """
    dtype = np.dtype(dtype)
    shape = (n_tiles, length, w)
    nbytes = n_tiles * length * w * dtype.itemsize
    if nbytes < 4 * _HUGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.zeros(shape, dtype)
    mapping = mmap.mmap(-1, nbytes + _HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        mapping.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # kernel without THP: still a valid zeroed mapping
        pass
    buf = np.frombuffer(mapping, np.uint8)
    start = -buf.ctypes.data % _HUGE
    return buf[start : start + nbytes].view(dtype).reshape(shape)


def rows_to_tiles(rows: NDArray | LazyRows, w: int = TILE_W,
                  dtype: DTypeLike | None = None) -> NDArray:  # fmt: skip
    """One-neuron-per-row (n_owned, L) -> AoSoA tiles (n_tiles, L, w); padding lanes are zero.

    ``rows`` may be a :class:`~tsn_mpi.io.rows.LazyRows` (e.g. P read from a checkpoint or P0
    computed on demand): it is consumed in blocks, so only the tiles are ever held in full.
    ``dtype`` defaults to the dtype of ``rows`` (the CPU kernels take float16 tiles or their
    ``np.uint16`` view).  The result comes from :func:`alloc_tiles` (huge pages when large).
    """
    if not isinstance(rows, LazyRows):
        rows = np.asarray(rows)
    n_owned, length = rows.shape
    nt = n_tiles(n_owned, w)
    out = alloc_tiles(nt, length, dtype or rows.dtype, w)
    per = block_rows(length, rows.dtype.itemsize, w)
    for b0 in range(0, n_owned, per):
        block = rows[b0 : min(b0 + per, n_owned)]
        for lo in range(0, block.shape[0], w):
            hi = min(lo + w, block.shape[0])
            out[(b0 + lo) // w, :, : hi - lo] = block[lo:hi].T
    return out


def tile_rows(tiles: NDArray, n_owned: int) -> LazyRows:
    """The rows view of AoSoA tiles, converted block by block when sliced (checkpoints)."""
    nt, length, w = tiles.shape
    if n_owned > nt * w:
        raise ValueError(f"{nt} tiles of {w} lanes cannot hold {n_owned} neurons")

    def rows(lo: int, hi: int) -> NDArray:
        out = np.empty((hi - lo, length), dtype=tiles.dtype)
        g = lo
        while g < hi:
            t, lane = divmod(g, w)
            take = min(w - lane, hi - g)
            out[g - lo : g - lo + take] = tiles[t, :, lane : lane + take].T
            g += take
        return out

    return LazyRows(n_owned, length, tiles.dtype, rows)


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
