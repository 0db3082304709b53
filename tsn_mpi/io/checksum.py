"""Checksums of the datasets the writers store, and their verification when read.

Every dataset written by :mod:`tsn_mpi.io.h5_write` carries CRC-32 checksums (zlib's
``crc32`` of the raw bytes, as stored, little-endian) computed by the rank that wrote the data,
from the very buffer it handed to HDF5:

- a per-neuron dataset ``<name>`` (global id on axis 0): ``checksums/<name>``, one uint32 per
  row (``crc32(f[name][i].tobytes())``), so any rank count verifies exactly the rows it reads;
- a value array of a CSR group: ``checksums/<group>/<key>``, one uint32 per neuron over that
  neuron's entries (attribute ``per = "neuron"``); the group's ``indptr`` is checked per row;
- an array every rank holds (``write_global``): attribute ``crc32`` on the dataset.

Files carrying them have the root attribute ``checksums = "crc32"``.  Files of earlier
versions have none and are read unverified.  HDF5's fletcher32 filter is not used: it needs
chunked datasets (a layout change for every reader), parallel HDF5 applies filters only to
collective writes, and its error names a chunk, not the neurons.
"""

from __future__ import annotations

import os
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tsn_mpi.errors import CorruptFileError

ALGORITHM = "crc32"
GROUP = "checksums"  # checksums/<dataset name> holds the per-row checksums of <dataset name>
ROOT_ATTR = "checksums"  # root attribute: the algorithm, on files that carry checksums
GLOBAL_ATTR = "crc32"  # dataset attribute: checksum of a whole (rank-independent) array
_SMALL_ROW = 16  # rows up to this many bytes: vectorised table CRC over all rows at once
_THREAD_BYTES = 32 << 20  # at least this many bytes: rows spread over threads (zlib frees the GIL)


def _crc_table() -> NDArray[np.uint32]:
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _crc_table()


def checksum_name(name: str) -> str:
    """``rows/P`` -> ``checksums/rows/P``."""
    return f"{GROUP}/{name}"


def _threads() -> int:
    numba = sys.modules.get("numba")  # a phase set numba's thread count for this rank
    if numba is not None:
        try:
            return max(1, int(numba.get_num_threads()))
        except Exception:  # noqa: BLE001 - numba not initialised: the affinity mask
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _as_byte_rows(arr: Any) -> NDArray[np.uint8]:
    a = np.ascontiguousarray(arr)
    n = a.shape[0] if a.ndim else 1
    per = int(np.prod(a.shape[1:], dtype=np.int64)) if a.ndim else 1
    return a.reshape(n, per).view(np.uint8) if per else np.zeros((n, 0), np.uint8)


def row_crcs(arr: Any) -> NDArray[np.uint32]:
    """CRC-32 of every row (axis 0) of ``arr``'s bytes, as zlib.crc32 would give."""
    b = _as_byte_rows(arr)
    n, width = b.shape
    if n == 0 or width == 0:
        return np.zeros(n, np.uint32)
    if width <= _SMALL_ROW:
        crc = np.full(n, 0xFFFFFFFF, np.uint32)
        for j in range(width):
            crc = _TABLE[(crc ^ b[:, j]) & 0xFF] ^ (crc >> 8)
        return crc ^ np.uint32(0xFFFFFFFF)
    threads = min(_threads(), n)
    if threads < 2 or b.nbytes < _THREAD_BYTES:
        return np.fromiter(map(zlib.crc32, b), np.uint32, n)
    bounds = np.linspace(0, n, threads + 1).astype(np.int64)

    def part(i: int) -> NDArray[np.uint32]:
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        return np.fromiter(map(zlib.crc32, b[lo:hi]), np.uint32, hi - lo)

    with ThreadPoolExecutor(threads) as pool:
        return np.concatenate(list(pool.map(part, range(threads))))


def csr_crcs(indptr: NDArray, values: NDArray) -> NDArray[np.uint32]:
    """CRC-32 of each neuron's entries ``values[indptr[i]:indptr[i+1]]`` (``indptr`` from any
    offset: only differences count)."""
    ptr = np.asarray(indptr, dtype=np.int64) - int(indptr[0])
    vb = _as_byte_rows(values)
    per, b = vb.shape[1], vb.reshape(-1)
    out = np.empty(len(ptr) - 1, np.uint32)
    for i in range(len(out)):
        out[i] = zlib.crc32(b[ptr[i] * per : ptr[i + 1] * per])
    return out


def whole_crc(arr: Any, crc: int = 0) -> int:
    """CRC-32 of all of ``arr``'s bytes (continuing ``crc``: blocks in order give the whole)."""
    a = np.ascontiguousarray(arr)
    return zlib.crc32(a.reshape(-1).view(np.uint8) if a.size else b"", crc)


def row_ranges(rows: NDArray) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (at most 5 ranges, then '...')."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return ""
    cut = np.flatnonzero(np.diff(rows) != 1) + 1
    parts = [(int(s[0]), int(s[-1])) for s in np.split(rows, cut)]
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts[:5])
    return text + (", ..." if len(parts) > 5 else "")


def mismatch(filename: str, name: str, bad_rows: NDArray, what: str = "rows") -> str:
    """The one-line description of rows that fail their checksum."""
    n = len(bad_rows)
    if n == 1:
        where = f"{what[:-1]} {row_ranges(bad_rows)} does not match its checksum"
    else:
        where = f"{what} {row_ranges(bad_rows)} ({n} {what}) do not match their checksums"
    return f"{filename}: dataset '{name}' {where}: the file is corrupted"


def verify_rows(f: Any, name: str, row0: int, data: NDArray) -> None:
    """Check rows ``row0 .. row0 + len(data)`` of dataset ``name`` just read from ``f``
    against ``checksums/<name>`` (nothing to check in files without checksums).  Raises
    CorruptFileError naming the file, the dataset and the rows."""
    c = f.get(checksum_name(name))
    if c is None or len(data) == 0:
        return
    stored = np.asarray(c[row0 : row0 + len(data)], dtype=np.uint32)
    bad = np.flatnonzero(stored != row_crcs(data))
    if len(stored) != len(data):
        bad = np.arange(len(data))
    if bad.size:
        raise CorruptFileError(mismatch(f.filename, name, bad + row0))


def verify_csr(f: Any, group: str, key: str, row0: int, ptr: NDArray, values: NDArray) -> None:
    """Check the entries of neurons ``row0 ..`` of CSR value ``<group>/<key>`` just read."""
    c = f.get(checksum_name(f"{group}/{key}"))
    n = len(ptr) - 1
    if c is None or n <= 0:
        return
    stored = np.asarray(c[row0 : row0 + n], dtype=np.uint32)
    bad = np.flatnonzero(stored != csr_crcs(ptr, values))
    if bad.size:
        raise CorruptFileError(mismatch(f.filename, f"{group}/{key}", bad + row0, "neurons"))


def verify_global(f: Any, name: str, data: NDArray) -> None:
    """Check a whole array read from dataset ``name`` against its ``crc32`` attribute."""
    want = f[name].attrs.get(GLOBAL_ATTR)
    if want is not None and int(want) != whole_crc(data):
        raise CorruptFileError(
            f"{f.filename}: dataset '{name}' does not match its checksum: the file is corrupted"
        )
