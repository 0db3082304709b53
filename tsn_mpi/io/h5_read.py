"""Reading the HDF5 files of :mod:`tsn_mpi.io.h5_write`, by any rank, at any rank count.

Every rank opens the file read-only with serial h5py and reads only its own rows: per-neuron
datasets have the global neuron id on axis 0 (:func:`read_rows`), ragged per-neuron lists are
CSR groups (:func:`read_csr`).  Only files whose writer finished, i.e. that carry the
``complete = True`` root attribute the writer sets last, are opened (:func:`open_read`,
:func:`is_complete`).  Every read is checked against the checksums the writer stored
(:mod:`tsn_mpi.io.checksum`): corrupted rows raise a one-line CorruptFileError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from tsn_mpi import errors
from tsn_mpi.errors import CheckpointError, DataFileError
from tsn_mpi.io import checksum

COMPLETE = "complete"  # root attribute set last by the writer: the file is finished
WRITER_ATTRS = (COMPLETE, checksum.ROOT_ATTR)  # the writer's bookkeeping, not the caller's


def _error_class(what: str) -> type[errors.TsnError]:
    return CheckpointError if "checkpoint" in what else DataFileError


def _open_ro(path: str | Path) -> h5py.File:
    """Open read-only without HDF5 file locks (several ranks read at once; some parallel file
    systems refuse locks).  HDF5 refuses a second handle with other lock flags in the same
    process, so a file already opened elsewhere with plain ``h5py.File`` is reopened so too."""
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as e:
        if "locking flag" not in str(e):
            raise
        return h5py.File(path, "r")


def is_complete(path: str | Path) -> bool:
    """True when ``path`` is an HDF5 file whose writer finished (``complete = True``)."""
    try:
        with _open_ro(path) as f:
            return bool(f.attrs.get(COMPLETE, False))
    except (OSError, ValueError):
        return False


def open_read(path: str | Path, what: str = "checkpoint") -> h5py.File:
    """Open a finished file read-only (serial h5py; several ranks may read at once).

    Raises CheckpointError (``what`` mentions "checkpoint") or DataFileError with a one-line
    message naming the file when it is missing, not HDF5, or not marked complete.
    """
    path = Path(path)
    cls = _error_class(what)
    if not path.is_file():
        raise cls(f"{what} {path}: no such file")
    if not h5py.is_hdf5(path):
        raise cls(f"{what} {path} is not an HDF5 file")
    try:
        f = _open_ro(path)
    except OSError as e:
        raise cls(f"{what} {path} cannot be opened: {str(e).splitlines()[0]}") from None
    if not f.attrs.get(COMPLETE, False):
        f.close()
        raise cls(f"{what} {path} is incomplete (no '{COMPLETE}' mark; its writer was stopped)")
    return f


def _dataset(f: h5py.File, name: str) -> h5py.Dataset:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise DataFileError(f"{f.filename}: no dataset '{name}'")
    return obj


def _check_rows(f: h5py.File, name: str, rows: range, n: int) -> None:
    if rows.step != 1 or not 0 <= rows.start <= rows.stop <= n:
        raise DataFileError(
            f"{f.filename}: rows {rows.start}:{rows.stop}:{rows.step} out of range for '{name}' "
            f"({n} rows)"
        )


def read_rows(f: h5py.File, name: str, rows: range, verify: bool = True) -> NDArray:
    """Rows ``rows`` (a contiguous range of gids) of dataset ``name``, checked against their
    checksums (``verify``)."""
    d = _dataset(f, name)
    _check_rows(f, name, rows, d.shape[0] if d.ndim else 0)
    out = np.empty((len(rows), *d.shape[1:]), dtype=d.dtype)
    if len(rows) and out.size:
        d.read_direct(out, np.s_[rows.start : rows.stop])
    if verify:
        checksum.verify_rows(f, name, rows.start, out)
    return out


def read_global(f: h5py.File, name: str, verify: bool = True) -> NDArray:
    """The whole dataset ``name`` (an array written by every rank alike), checked."""
    out = np.asarray(_dataset(f, name)[()])
    if verify:
        checksum.verify_global(f, name, out)
    return out


def read_csr(f: h5py.File, group: str, rows: range) -> tuple[NDArray[np.int64], dict[str, NDArray]]:
    """Rows ``rows`` of a CSR group: (indptr from 0, {value name: entries of those rows})."""
    ptr_d = _dataset(f, f"{group}/indptr")
    _check_rows(f, f"{group}/indptr", rows, ptr_d.shape[0] - 1)
    ptr = ptr_d[rows.start : rows.stop + 1].astype(np.int64)
    checksum.verify_rows(f, f"{group}/indptr", rows.start, ptr)
    lo, hi = int(ptr[0]), int(ptr[-1])
    if not 0 <= lo <= hi:
        raise DataFileError(
            f"{f.filename}: '{group}/indptr' rows {rows.start}:{rows.stop} "
            f"are not non-decreasing offsets (file damaged)"
        )
    values = {}
    for key in f[group]:
        if key != "indptr":
            d = _dataset(f, f"{group}/{key}")
            out = np.empty((hi - lo, *d.shape[1:]), dtype=d.dtype)
            if out.size:
                d.read_direct(out, np.s_[lo:hi])
            checksum.verify_csr(f, group, key, rows.start, ptr, out)
            values[key] = out
    return ptr - lo, values


def _py(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return [_py(x) for x in v.tolist()]
    return v


def read_attrs(f: h5py.File) -> dict[str, Any]:
    """Root attributes as plain Python values, without the writer's ``complete`` and
    ``checksums``: numpy scalars become int/float/bool, bytes str, arrays lists (so ``==``
    comparisons just work)."""
    return {k: _py(v) for k, v in f.attrs.items() if k not in WRITER_ATTRS}
