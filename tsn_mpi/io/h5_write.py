"""One HDF5 file written by all ranks together (read back by :mod:`tsn_mpi.io.h5_read`).

Per-neuron datasets have the global neuron id on axis 0; rank r writes its owned rows
``[start_r, stop_r)``.  Ragged per-neuron lists are CSR: ``<group>/indptr`` (n_global + 1, int64,
global offsets) plus value datasets concatenated in gid order.

Write strategies (:func:`strategy`), chosen by name:

- ``serial``: one rank, plain h5py.
- ``mpio``: h5py built with MPI (``launch/install-parallel-hdf5.sh``); collective writes.
- ``turns``: serial h5py on several ranks; rank 0 creates the file and every dataset, then the
  other ranks in rank order open it, write their buffered slices and close it.

Every file is written under a temporary name, fsynced, marked ``complete = True`` last, and
renamed onto its target (``tsn_mpi.io.atomic``); readers refuse files without that mark.

The config key ``run.h5_writes`` ('turns' forces rank-by-rank writes, 'mpio' demands the
collective driver) reaches this module through :func:`set_strategy`, which every phase calls
when it opens its run.  ``MAX_IO_BYTES`` caps the bytes of one write call (1 GiB; tests lower
it to exercise the splitting).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from tsn_mpi import errors
from tsn_mpi.comm.base import Comm
from tsn_mpi.errors import LaunchError
from tsn_mpi.io import atomic
from tsn_mpi.io.h5_read import COMPLETE
from tsn_mpi.io.rows import LazyRows

STRATEGY_KEY = "run.h5_writes"
STRATEGIES = ("auto", "turns", "mpio")
MAX_IO_BYTES = 1 << 30  # no single (MPI-IO) write call larger than this
_forced = "auto"  # set_strategy(): the run's run.h5_writes


def set_strategy(name: str) -> None:
    """Use ``name`` ('auto', 'turns' or 'mpio': config key ``run.h5_writes``) for the files
    this process writes from now on."""
    global _forced
    if name not in STRATEGIES:
        raise LaunchError(f"{STRATEGY_KEY} = {name!r}: expected 'auto', 'turns' or 'mpio'")
    _forced = name



def h5py_has_mpi() -> bool:
    """True when h5py was built against a parallel HDF5."""
    return bool(h5py.get_config().mpi)


def strategy(comm: Comm) -> str:
    """How a file is written with ``comm``: "serial", "mpio" or "turns" (module docstring)."""
    if comm.size == 1:
        return "serial"
    forced = _forced
    if forced == "turns":
        return "turns"
    mpio = getattr(comm, "kind", "") == "mpi" and h5py_has_mpi()
    if forced == "mpio" and not mpio:
        raise LaunchError(
            f"{STRATEGY_KEY} = 'mpio' but this h5py ({h5py.__version__}) has no MPI: build one "
            "with launch/install-parallel-hdf5.sh"
        )
    return "mpio" if mpio else "turns"


def describe() -> dict[str, Any]:
    """Versions and the write strategy a multi-rank run would use (for ``tsn-mpi info``)."""
    mpi = h5py_has_mpi()
    forced = _forced
    return {
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "h5py_mpi": mpi,
        "strategy_multi_rank": "turns" if forced == "turns" or not mpi else "mpio",
        "forced": None if forced == "auto" else forced,
    }


def _io_bytes() -> int:
    return int(MAX_IO_BYTES)


def _remote_error(rank: int, tname: str, msg: str) -> Exception:
    """The exception other ranks raise when ``rank`` failed (same class for TsnErrors)."""
    cls = getattr(errors, tname, None)
    if isinstance(cls, type) and issubclass(cls, errors.TsnError):
        return cls(f"{msg} (on rank {rank})")
    return RuntimeError(f"rank {rank} failed: {tname}: {msg}")


def _write_piece(dset: h5py.Dataset, row0: int, arr: NDArray | None, dxpl: Any) -> None:
    """Write ``arr`` at rows ``row0:`` of ``dset``; an empty/None ``arr`` selects nothing (so a
    rank without rows still takes part in a collective call)."""
    fspace = dset.id.get_space()
    if arr is None or arr.shape[0] == 0:
        fspace.select_none()
        mspace = h5py.h5s.create_simple((1,))
        mspace.select_none()
        buf = np.zeros(1, dtype=dset.dtype)
    else:
        fspace.select_hyperslab((row0,) + (0,) * (arr.ndim - 1), arr.shape)
        mspace = h5py.h5s.create_simple(arr.shape)
        buf = arr
    dset.id.write(mspace, fspace, buf, dxpl=dxpl)


def _write_rows_split(
    dset: h5py.Dataset, row0: int, arr: NDArray, pieces: int, dxpl: Any, rows_per: int
) -> None:
    """Write ``arr`` in ``pieces`` calls of at most ``rows_per`` rows (empty calls at the end)."""
    for i in range(pieces):
        # the slice is a temporary: with LazyRows each piece is materialised, and holding the
        # previous one while the next is built would double the peak
        _write_piece(dset, row0 + i * rows_per, arr[i * rows_per : (i + 1) * rows_per], dxpl)


def _rows_per_call(tail: tuple[int, ...], dtype: np.dtype) -> int:
    row_bytes = max(1, math.prod(tail) * dtype.itemsize)
    return max(1, _io_bytes() // row_bytes)


def _local_error(arr: NDArray, what: str) -> str | None:
    if arr.dtype.hasobject:
        return f"{what}: object arrays cannot be stored"
    if arr.ndim == 0:
        return f"{what}: expected an array with rows on axis 0, got a scalar"
    return None


def _checked_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Raise ValueError naming the first attribute HDF5 cannot store (checked in memory, on
    every rank alike, so that the file's finishing step cannot fail on one rank only)."""
    if COMPLETE in attrs:
        raise ValueError(f"attribute name '{COMPLETE}' is reserved")
    with h5py.File(io.BytesIO(), "w") as f:
        for key, val in attrs.items():
            try:
                f.attrs[key] = val
            except (TypeError, ValueError) as e:
                raise ValueError(f"attribute {key}={val!r} cannot be stored in HDF5: {e}") from None
    return attrs


class Writer:
    """Collective writer of one HDF5 file (see :func:`create`).  Every method is collective:
    all ranks call the same methods in the same order with the same names.  Arrays handed to
    ``write_*`` may be kept by reference until the ``with`` block ends (strategy "turns"):
    do not modify them before that."""

    def __init__(self, path: Path, comm: Comm, attrs: Mapping[str, Any] | None, strat: str):
        self.path = path
        self.comm = comm
        self.strategy = strat
        self.tmp: Path | None = None
        self._attrs: dict[str, Any] = _checked_attrs(comm.bcast(dict(attrs or {}), root=0))
        self._file: h5py.File | None = None
        self._plan: list[tuple[str, int, NDArray]] = []  # "turns", ranks > 0
        self._names: set[str] = set()
        self._agreed_failure = False
        self._done = False

    # -- collective bookkeeping -------------------------------------------------------------
    def _gather(self, payload: Any, exc: BaseException | None = None) -> list[Any]:
        """allgather ``payload``; if any rank reports an error, raise on every rank."""
        mine = ("fail", type(exc).__name__, str(exc)) if exc is not None else ("ok", payload)
        got = self.comm.allgather_obj(mine) if self.comm.size > 1 else [mine]
        bad = [(r, g) for r, g in enumerate(got) if g[0] == "fail"]
        if bad:
            self._agreed_failure = True
            if exc is not None:
                raise exc
            r, (_, tname, msg) = bad[0]
            raise _remote_error(r, tname, msg)
        return [g[1] for g in got]

    def _open(self) -> None:
        comm, exc = self.comm, None
        job = comm.bcast(atomic.job_tag() if comm.rank == 0 else None, root=0)
        self.tmp = atomic.temp_path(self.path, job)
        try:
            if comm.rank == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.strategy != "mpio":
                    self._file = h5py.File(self.tmp, "w", locking=False)
        except Exception as e:  # noqa: BLE001 - reported to all ranks
            exc = e
        self._gather(None, exc)
        if self.strategy == "mpio":
            self._file = h5py.File(
                self.tmp, "w", driver="mpio", comm=self.comm.mpi_comm, locking=False
            )

    def _check_name(self, name: str) -> None:
        if self._done:
            raise RuntimeError(f"{self.path}: writer already closed")
        if name in self._names:
            raise ValueError(f"{self.path}: dataset '{name}' written twice")
        self._names.add(name)

    def _layout(self, name: str, start: int, n: int, n_global: int, arr: NDArray, err):
        """Gather every rank's (start, n, row shape, dtype); check they tile [0, n_global)."""
        mine = (start, n, n_global, arr.shape[1:], arr.dtype)
        parts = self._gather(mine, ValueError(f"{self.path}: {err}") if err else None)
        full = [p for p in parts if p[1] > 0]
        ref = full[0] if full else parts[0]
        msg = None
        if any(p[2] != n_global for p in parts):
            msg = f"n_global differs between ranks: {[p[2] for p in parts]}"
        elif any(p[3] != ref[3] or p[4] != ref[4] for p in full):
            msg = f"row shapes/dtypes differ between ranks: {[(p[3], str(p[4])) for p in full]}"
        else:
            stop = 0
            for p in sorted(full, key=lambda p: p[0]):
                if p[0] != stop:
                    break
                stop = p[0] + p[1]
            if stop != n_global or sum(p[1] for p in full) != n_global:
                msg = f"rank ranges {[(p[0], p[0] + p[1]) for p in parts]} do not tile 0:{n_global}"
        if msg:
            raise ValueError(f"{self.path}: '{name}': {msg}")
        tail, dtype = tuple(ref[3]), np.dtype(ref[4])
        per = _rows_per_call(tail, dtype)
        pieces = max(math.ceil(p[1] / per) for p in parts)
        return parts, tail, dtype, pieces

    def _create(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> h5py.Dataset | None:
        if self._file is None:
            return None
        return self._file.create_dataset(name, shape=shape, dtype=dtype, fill_time="never")

    def _put(self, dset: h5py.Dataset | None, name: str, row0: int, arr: NDArray, pieces: int):
        """Write (or, in "turns" on ranks > 0, plan) this rank's rows of a dataset."""
        if self.strategy == "turns" and self.comm.rank > 0:
            if arr.shape[0]:
                self._plan.append((name, row0, arr))
            return
        if dset is None or dset.size == 0:
            return
        per = _rows_per_call(dset.shape[1:], dset.dtype)
        if self.strategy == "mpio":
            dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
            dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)
            _write_rows_split(dset, row0, arr, pieces, dxpl, per)
        else:
            _write_rows_split(dset, row0, arr, math.ceil(arr.shape[0] / per), None, per)

    # -- public API ---------------------------------------------------------------------------
    def write_rows(self, name: str, local: NDArray, start: int, n_global: int) -> None:
        """Write this rank's rows ``[start, start + len(local))`` of dataset ``name``, whose
        global shape is ``(n_global, *local.shape[1:])`` and dtype is ``local.dtype``."""
        self._check_name(name)
        lazy = isinstance(local, LazyRows)  # converted piece by piece while written
        if not lazy:
            local = np.asarray(local)
        err = _local_error(local, name)
        n = local.shape[0] if local.ndim else 0
        parts, tail, dtype, pieces = self._layout(name, int(start), n, int(n_global), local, err)
        dset = self._create(name, (int(n_global), *tail), dtype)
        if lazy and n:
            data = local
        else:
            data = np.ascontiguousarray(local, dtype=dtype) if n else np.empty((0, *tail), dtype)
        self._put(dset, name, int(start), data, pieces)

    def write_csr(
        self,
        group: str,
        indptr_local: NDArray,
        values: Mapping[str, NDArray],
        start: int,
        n_global: int,
    ) -> None:
        """Write this rank's rows of a CSR group: ``indptr_local`` (n_local + 1, from 0) and
        value arrays of ``indptr_local[-1]`` entries each, stored as ``<group>/<key>``."""
        self._check_name(group)
        ptr = np.asarray(indptr_local)
        vals = {k: np.asarray(v) for k, v in sorted(values.items())}
        err = None
        if ptr.ndim != 1 or ptr.shape[0] < 1 or ptr.dtype.kind not in "iu":
            err = f"{group}/indptr: expected a 1-d integer array of n_local + 1 entries"
        elif ptr[0] != 0 or np.any(np.diff(ptr) < 0):
            err = f"{group}/indptr: must start at 0 and never decrease"
        elif "indptr" in vals:
            err = f"{group}: 'indptr' cannot be a value name"
        else:
            for k, v in vals.items():
                err = err or _local_error(v, f"{group}/{k}")
                if not err and v.shape[0] != ptr[-1]:
                    err = f"{group}/{k}: {v.shape[0]} entries but indptr[-1] = {ptr[-1]}"
        n = ptr.shape[0] - 1 if not err else 0
        nnz = int(ptr[-1]) if not err else 0
        ptr64 = np.ascontiguousarray(ptr, dtype=np.int64) if not err else np.zeros(1, np.int64)
        parts, _, _, _ = self._layout(
            f"{group}/indptr", int(start), n, int(n_global), ptr64[:n], err
        )
        # global offsets: ranks ordered by their gid ranges (all ranks compute the same thing)
        info = self._gather((nnz, sorted(vals)))
        if any(i[1] != info[0][1] for i in info):
            names = [i[1] for i in info]
            raise ValueError(f"{self.path}: '{group}': value names differ between ranks: {names}")
        nnzs = [i[0] for i in info]
        me = self.comm.rank
        offset = sum(nnzs[r] for r, p in enumerate(parts) if p[1] > 0 and p[0] < int(start))
        total = sum(nnzs)
        tail_rank = next((r for r, p in enumerate(parts) if p[1] and p[0] + p[1] == n_global), 0)
        rows = ptr64 + offset if me == tail_rank else ptr64[:-1] + offset
        counts = [p[1] + (r == tail_rank) for r, p in enumerate(parts)]
        pieces = max(math.ceil(c / _rows_per_call((), np.dtype(np.int64))) for c in counts)
        dset = self._create(f"{group}/indptr", (int(n_global) + 1,), np.dtype(np.int64))
        row0 = int(start) if n else int(n_global)  # a rank without rows writes at most the tail
        self._put(dset, f"{group}/indptr", row0, rows, pieces)
        for key, v in vals.items():
            name = f"{group}/{key}"
            self._check_name(name)
            _, tail, dtype, pieces = self._layout(name, offset, nnz, total, v, None)
            dset = self._create(name, (total, *tail), dtype)
            data = np.ascontiguousarray(v, dtype=dtype) if nnz else np.empty((0, *tail), dtype)
            self._put(dset, name, offset, data, pieces)

    def write_global(self, name: str, arr: NDArray) -> None:
        """Write an array every rank holds identically (rank 0's copy is written)."""
        self._check_name(name)
        arr = np.asarray(arr)
        err = "object arrays cannot be stored" if arr.dtype.hasobject else None
        bad = ValueError(f"{self.path}: '{name}': {err}") if err else None
        shapes = self._gather((arr.shape, arr.dtype), bad)
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{self.path}: '{name}': shapes/dtypes differ between ranks {shapes}")
        dset = self._create(name, arr.shape, arr.dtype)
        if self.comm.rank == 0 and dset is not None and arr.size:
            data = np.ascontiguousarray(arr)
            if arr.ndim == 0:
                dset[()] = data
            else:
                per = _rows_per_call(arr.shape[1:], arr.dtype)
                _write_rows_split(dset, 0, data, math.ceil(len(data) / per), None, per)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Add root attributes (written when the file is finished); rank 0's values win."""
        self._attrs.update(_checked_attrs(self.comm.bcast(dict(attrs), root=0)))

    # -- finishing ----------------------------------------------------------------------------
    def _write_attrs_and_complete(self, f: h5py.File) -> None:
        for key, val in self._attrs.items():
            f.attrs[key] = val
        f.attrs[COMPLETE] = True  # the last thing written

    def _run_plan(self) -> None:
        with h5py.File(self.tmp, "r+", locking=False) as f:
            for name, row0, arr in self._plan:
                dset = f[name]
                per = _rows_per_call(dset.shape[1:], dset.dtype)
                _write_rows_split(dset, row0, arr, math.ceil(arr.shape[0] / per), None, per)
        self._plan.clear()
        atomic.fsync_file(self.tmp)

    def _finish(self) -> None:
        comm, rank, f = self.comm, self.comm.rank, self._file
        if self.strategy == "mpio":
            f.flush()
            if rank == 0:
                atomic.fsync_file(self.tmp)
            self._write_attrs_and_complete(f)
            self._file = None
            f.close()
        else:
            exc = None
            for turn in range(comm.size):  # "serial": one turn
                if turn == rank and exc is None:
                    try:
                        if rank == 0:
                            self._file = None
                            f.close()
                            atomic.fsync_file(self.tmp)
                        elif self._plan:
                            self._run_plan()
                    except Exception as e:  # noqa: BLE001 - reported to all ranks
                        exc = e
                if comm.size > 1:
                    comm.barrier()
            self._gather(None, exc)
        exc = None
        if rank == 0:
            try:
                if self.strategy != "mpio":
                    with h5py.File(self.tmp, "r+", locking=False) as f0:
                        self._write_attrs_and_complete(f0)
                atomic.fsync_file(self.tmp)
                atomic.commit(self.tmp, self.path)
                atomic.remove_leftovers(self.path, keep=self.path)
            except Exception as e:  # noqa: BLE001 - reported to all ranks
                exc = e
        self._gather(None, exc)

    def _cleanup(self) -> None:
        f, self._file = self._file, None
        self._plan.clear()
        if f is not None:
            try:
                f.close()
            except Exception:  # noqa: BLE001 - already failing; keep the first error
                pass
        if self.comm.rank == 0 and self.tmp is not None:
            atomic.discard(self.tmp)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, et, ev, tb) -> bool:
        try:
            if self._agreed_failure:  # every rank already knows: just clean up
                if ev is None:
                    raise RuntimeError(f"{self.path}: not written (a write call failed)")
                raise ev
            self._gather(None, ev)  # raises on every rank if any rank failed in the block
            self._finish()
        except BaseException as exc:
            self._cleanup()
            if exc is ev:
                return False
            raise
        finally:
            self._done = True
        return False


def create(path: str | Path, comm: Comm | None = None, attrs: Mapping[str, Any] | None = None):
    """Start writing ``path`` collectively; use as ``with create(path, comm) as w: ...``.

    The file appears at ``path`` (atomically replacing an older one) only when the ``with``
    block ends without an exception on any rank; otherwise the temporary file is removed and
    the older ``path`` is left as it was.  ``attrs``: root attributes (rank 0's values).
    """
    if comm is None:
        from tsn_mpi.comm.serial import SerialComm

        comm = SerialComm()
    w = Writer(Path(path), comm, attrs, strategy(comm))
    try:
        w._open()
    except BaseException:
        w._cleanup()
        raise
    return w
