"""Checkpoints: learned weights, P (or the small-mode history), cell state, learning curve.

One HDF5 file per checkpoint, ``<run>/checkpoints/ckpt-<label>.h5``, written by all ranks
(``tsn_mpi.io.h5_write``: atomic rename, ``complete`` mark).  Per-neuron arrays live under ``rows/``
(global id on axis 0), rank-independent arrays under ``global/``; an interrupted checkpoint
(label ``<loop>i``) also holds the mid-trial state under ``trial/`` so resuming continues the
interrupted loop exactly.  Any rank count can read any checkpoint.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from tsn_mpi.errors import CheckpointError
from tsn_mpi.io import h5_read, h5_write
from tsn_mpi.io.rows import LazyRows

FORMAT = "tsn-mpi checkpoint 1"


def write_checkpoint(
    path: Path,
    comm,
    owned: range,
    n_cells: int,
    attrs: dict[str, Any],
    rows: dict[str, np.ndarray],
    globals_: dict[str, np.ndarray],
) -> None:
    """Collective write; ``rows`` hold the owned neurons' rows, ``globals_`` equal on all ranks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5_write.create(path, comm, attrs={"format": FORMAT, **attrs}) as w:
        for name, arr in rows.items():
            if not isinstance(arr, LazyRows):  # LazyRows are converted block by block
                arr = np.ascontiguousarray(arr)
            w.write_rows(f"rows/{name}", arr, owned.start, n_cells)
        for name, arr in globals_.items():
            w.write_global(f"global/{name}", np.ascontiguousarray(arr))


def read_checkpoint(
    path: Path, owned: range, expect: dict[str, Any], lazy: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Read a checkpoint's attrs, the owned rows and the global arrays, checking ``expect``.

    ``expect`` maps attribute names to the values this model requires (model hash, sizes...);
    a mismatch raises a one-line CheckpointError saying what differs.  Row datasets named in
    ``lazy`` come back as :class:`LazyRows` that read blocks of rows when sliced (P of large
    models is converted to tiles block by block instead of being held twice).
    """
    with h5_read.open_read(path, what="checkpoint") as f:
        attrs = h5_read.read_attrs(f)
        if attrs.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a tsn-mpi checkpoint")
        for key, want in expect.items():
            have = attrs.get(key)
            if have != want:
                raise CheckpointError(
                    f"{path}: belongs to another model ({key} = {have!r}, this run has {want!r})"
                )
        rows: dict[str, Any] = {}
        for n in f.get("rows", {}).keys():
            if n in lazy:
                shape, dtype = f[f"rows/{n}"].shape, f[f"rows/{n}"].dtype
                rows[n] = LazyRows(len(owned), int(np.prod(shape[1:])), dtype,
                                   functools.partial(_read_block, path, f"rows/{n}", owned))
            else:
                rows[n] = h5_read.read_rows(f, f"rows/{n}", owned)
        globs = {n: np.asarray(f[f"global/{n}"][...]) for n in f.get("global", {}).keys()}
    return attrs, rows, globs


def _read_block(path: Path, name: str, owned: range, lo: int, hi: int) -> np.ndarray:
    with h5_read.open_read(path, what="checkpoint") as f:
        block = h5_read.read_rows(f, name, range(owned.start + lo, owned.start + hi))
    return block.reshape(hi - lo, -1)
