"""Checkpoints: learned weights, P (or the small-mode history), cell state, learning curve.

One HDF5 file per checkpoint, ``<run>/checkpoints/ckpt-<label>.h5``, written by all ranks
(``tsn_mpi.io.h5_write``: atomic rename, ``complete`` mark).  Per-neuron arrays live under ``rows/``
(global id on axis 0), rank-independent arrays under ``global/``; an interrupted checkpoint
(label ``<loop>i``) also holds the mid-trial state under ``trial/`` so resuming continues the
interrupted loop exactly.  Any rank count can read any checkpoint.  Every dataset carries
checksums (:mod:`tsn_mpi.io.checksum`), verified while it is read; before writing, rank 0
checks that the file system has room for the whole file (:func:`tsn_mpi.io.space.check_free`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from tsn_mpi.errors import CheckpointError
from tsn_mpi.io import h5_read, h5_write, space
from tsn_mpi.io.names import list_checkpoints
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
    """Collective write; ``rows`` hold the owned neurons' rows, ``globals_`` equal on all ranks.

    Stops with a one-line OutputError before writing anything when the file system lacks the
    room (the size is known), and with one after a storage error while writing; either way
    every older checkpoint is intact."""
    needed = space.estimate_bytes(rows, n_cells, globals_)
    intact = intact_text(path)
    space.check_free(path, needed, comm, intact)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5_write.create(
        path, comm, attrs={"format": FORMAT, **attrs}, size_hint=needed, intact=intact
    ) as w:
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
                rows[n] = LazyRows(
                    len(owned),
                    int(np.prod(shape[1:])),
                    dtype,
                    functools.partial(_read_block, path, f"rows/{n}", owned),
                )
            else:
                rows[n] = h5_read.read_rows(f, f"rows/{n}", owned)
        globs = {n: h5_read.read_global(f, f"global/{n}") for n in f.get("global", {}).keys()}
    return attrs, rows, globs


def intact_text(path: Path) -> str:
    """What a failed write of checkpoint ``path`` leaves: the older checkpoints, by name."""
    older = [c for c in list_checkpoints(path.parent) if c.path.name != path.name]
    same = f"the previous {path.name} is unchanged" if path.exists() else ""
    if not older:
        return same or "no older checkpoint exists"
    text = f"the older checkpoints are intact (newest: {older[-1].path.name})"
    return f"{same} and {text[4:]}" if same else text


def _read_block(path: Path, name: str, owned: range, lo: int, hi: int) -> np.ndarray:
    with h5_read.open_read(path, what="checkpoint") as f:
        block = h5_read.read_rows(f, name, range(owned.start + lo, owned.start + hi))
    return block.reshape(hi - lo, -1)
