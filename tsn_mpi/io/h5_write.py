"""One HDF5 file written by all ranks together (read back by :mod:`tsn_mpi.io.h5_read`).

Per-neuron datasets have the global neuron id on axis 0; rank r writes its owned rows
``[start_r, stop_r)``.  Ragged per-neuron lists are CSR: ``<group>/indptr`` (n_global + 1, int64,
global offsets) plus value datasets concatenated in gid order.

Write strategies (:func:`tsn_mpi.io.h5_strategy.strategy`), chosen by name:

- ``serial``: one rank, plain h5py.
- ``mpio``: h5py built with MPI (``launch/install-parallel-hdf5.sh``); collective writes.
- ``turns``: serial h5py on several ranks; rank 0 creates the file and every dataset, then the
  other ranks in rank order open it, write their buffered slices and close it.

Every file is written under a temporary name, fsynced, marked ``complete = True`` last, and
renamed onto its target (``tsn_mpi.io.atomic``); readers refuse files without that mark.
Every dataset carries CRC-32 checksums computed by the ranks that wrote it
(:mod:`tsn_mpi.io.checksum`).  A storage error (disk full, quota, read-only, EIO, permission)
on any rank becomes the same one-line OutputError on every rank (:mod:`tsn_mpi.io.space`),
with the temporary file removed and the previous file, if any, left as it was.

The config key ``run.h5_writes`` ('turns' forces rank-by-rank writes, 'mpio' demands the
collective driver) reaches it through :func:`tsn_mpi.io.h5_strategy.set_strategy`, which every
phase calls when it opens its run.  ``MAX_IO_BYTES`` caps the bytes of one write call (1 GiB;
tests lower it to exercise the splitting).
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
from tsn_mpi.io import atomic, checksum, space
from tsn_mpi.io.h5_read import COMPLETE
from tsn_mpi.io.h5_strategy import strategy
from tsn_mpi.io.rows import LazyRows

MAX_IO_BYTES = 1 << 30  # no single (MPI-IO) write call larger than this


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
    dset: h5py.Dataset,
    row0: int,
    arr: NDArray,
    pieces: int,
    dxpl: Any,
    rows_per: int,
    crc_out: NDArray | None = None,
) -> None:
    """Write ``arr`` in ``pieces`` calls of at most ``rows_per`` rows (empty calls at the end);
    ``crc_out``: receives the checksum of every row written, from the buffer handed to HDF5."""
    for i in range(pieces):
        piece = arr[i * rows_per : (i + 1) * rows_per]  # LazyRows: materialised here
        if crc_out is not None and len(piece):
            crc_out[i * rows_per : i * rows_per + len(piece)] = checksum.row_crcs(piece)
        _write_piece(dset, row0 + i * rows_per, piece, dxpl)
        # holding this piece while the next is built would double the peak (LazyRows)
        del piece


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

    def __init__(
        self,
        path: Path,
        comm: Comm,
        attrs: Mapping[str, Any] | None,
        strat: str,
        size_hint: int | None = None,
        intact: str | None = None,
    ):
        self.path = path
        self.comm = comm
        self.strategy = strat
        self.size_hint = size_hint  # bytes the finished file needs, when the caller knows
        self.intact = intact  # what is left if this write fails (default: the previous file)
        self.nbytes = 0  # bytes of the datasets declared so far
        self._reserved = 0  # bytes of the file allocated ahead of the writes (rank 0)
        self._can_reserve = True  # False where the file system cannot allocate ahead
        self.tmp: Path | None = None
        self._attrs: dict[str, Any] = _checked_attrs(comm.bcast(dict(attrs or {}), root=0))
        self._file: h5py.File | None = None
        self._plan: list[tuple[str, int, NDArray, NDArray | None]] = []  # "turns", ranks > 0
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
            if exc is None:
                r, (_, tname, msg) = bad[0]
                exc = _remote_error(r, tname, msg)
            exc.agreed = True  # raised on every rank: the CLI reports it once, on rank 0
            raise exc
        return [g[1] for g in got]

    def _converted(
        self, exc: BaseException | None, needed: int | None = None
    ) -> BaseException | None:
        """A storage error (disk full, quota, read-only, EIO, permission) as one OutputError
        line naming the file, the bytes needed and free, and what is intact."""
        if exc is None or not space.is_io_error(exc):
            return exc
        tmp = self.tmp if self.tmp is not None and self.tmp.exists() else None
        needed = needed or self.size_hint or self.nbytes or None
        return space.output_error(
            exc, self.path, needed, self.intact, tmp, at_least=self.size_hint is None
        )

    def _open(self) -> None:
        comm, exc = self.comm, None
        job = comm.bcast(atomic.job_tag() if comm.rank == 0 else None, root=0)
        self.tmp = atomic.temp_path(self.path, job)
        try:
            if comm.rank == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.strategy != "mpio":
                    self._file = h5py.File(self.tmp, "w", locking=False)
                    self._reserve()
        except Exception as e:  # noqa: BLE001 - reported to all ranks
            exc = self._converted(e)
        self._gather(None, exc)
        if self.strategy == "mpio":
            try:
                self._file = h5py.File(
                    self.tmp, "w", driver="mpio", comm=self.comm.mpi_comm, locking=False
                )
                if comm.rank == 0:
                    self._reserve()
            except Exception as e:  # noqa: BLE001 - reported to all ranks
                exc = self._converted(e)
            self._gather(None, exc)

    def _reserve(self) -> None:
        """When the file's size is known, allocate its blocks now: no storage error can then
        come from inside a (collective) data write."""
        if self.size_hint:
            self._can_reserve = space.reserve(self.tmp, self.size_hint)
            self._reserved = self.size_hint

    def _grow(self, nbytes: int) -> BaseException | None:
        """Rank 0, before a dataset of ``nbytes`` is declared: allocate the file's blocks up to
        everything declared so far plus it (and some room for metadata), so that a full disk
        or a quota is found here and agreed on in the dataset's layout exchange, never inside
        a collective data write.  Returns the storage error (None where it fits, elsewhere)."""
        if self.comm.rank != 0 or self.tmp is None or not self._can_reserve:
            return None
        target = (
            self.nbytes
            + int(nbytes)
            + space.METADATA_BYTES
            + space.PER_DATASET_BYTES * (len(self._names) + 2)
        )
        if target <= self._reserved:
            return None
        try:
            self._can_reserve = space.reserve(self.tmp, target)
            self._reserved = target
        except OSError as e:
            return self._converted(e, target)
        return None

    def _check_name(self, name: str) -> None:
        if self._done:
            raise RuntimeError(f"{self.path}: writer already closed")
        if name in self._names:
            raise ValueError(f"{self.path}: dataset '{name}' written twice")
        self._names.add(name)

    def _layout(
        self,
        name: str,
        start: int,
        n: int,
        n_global: int,
        arr: NDArray,
        err,
        crc_rows: int | None = None,
    ):
        """Gather every rank's (start, n, row shape, dtype); check they tile [0, n_global).
        Rank 0 first allocates the dataset's blocks (:meth:`_grow`): a full disk is agreed
        on in this same exchange."""
        mine = (start, n, n_global, arr.shape[1:], arr.dtype)
        if not err:
            row = math.prod(arr.shape[1:]) * np.dtype(arr.dtype).itemsize
            crcs = n_global if crc_rows is None else crc_rows
            pre = self._grow(int(n_global) * row + 4 * int(crcs))  # + the checksums
        parts = self._gather(mine, ValueError(f"{self.path}: {err}") if err else pre)
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

    def _create(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        attrs: Mapping[str, Any] | None = None,
    ) -> h5py.Dataset | None:
        """Declare a dataset (every rank: counts its bytes); created where the file is open."""
        self.nbytes += math.prod(shape) * np.dtype(dtype).itemsize
        if self._file is None:
            return None
        dset = self._file.create_dataset(name, shape=shape, dtype=dtype, fill_time="never")
        for key, val in (attrs or {}).items():  # mpio: every rank, the same values
            dset.attrs[key] = val
        return dset

    def _put(
        self,
        dset: h5py.Dataset | None,
        name: str,
        row0: int,
        arr: NDArray,
        pieces: int,
        crc: NDArray | None = None,
    ):
        """Write (or, in "turns" on ranks > 0, plan) this rank's rows of a dataset; ``crc``
        receives their checksums as they are written (for a plan: when it runs)."""
        if self.strategy == "turns" and self.comm.rank > 0:
            if arr.shape[0]:
                self._plan.append((name, row0, arr, crc))
            return
        if dset is None or dset.size == 0:
            return
        per = _rows_per_call(dset.shape[1:], dset.dtype)
        if self.strategy == "mpio":
            dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
            dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)
            _write_rows_split(dset, row0, arr, pieces, dxpl, per, crc)
        else:
            _write_rows_split(dset, row0, arr, math.ceil(arr.shape[0] / per), None, per, crc)

    def _put_checksums(
        self,
        name: str,
        parts: list,
        row0: int,
        crc: NDArray,
        n_rows: int,
        counts: list[int] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ):
        """Write ``checksums/<name>``: one uint32 per row, laid out like the rows of ``name``
        (``parts``: every rank's (start, n, ...) from :meth:`_layout`; ``counts``: rows per
        rank when they differ from ``parts``).  No extra collective."""
        cname = checksum.checksum_name(name)
        self._check_name(cname)
        counts = counts or [p[1] for p in parts]
        per = _rows_per_call((), np.dtype(np.uint32))
        pieces = max(math.ceil(c / per) for c in counts)
        dset = self._create(cname, (int(n_rows),), np.dtype(np.uint32), attrs)
        self._put(dset, cname, row0, crc, pieces)

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
        crc = np.zeros(n, np.uint32)  # filled as the rows are written
        self._put(dset, name, int(start), data, pieces, crc)
        self._put_checksums(name, parts, int(start), crc, int(n_global))

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
        ptr_crc = np.zeros(len(rows), np.uint32)
        self._put(dset, f"{group}/indptr", row0, rows, pieces, ptr_crc)
        self._put_checksums(f"{group}/indptr", parts, row0, ptr_crc, int(n_global) + 1, counts)
        for key, v in vals.items():
            name = f"{group}/{key}"
            self._check_name(name)
            _, tail, dtype, pieces = self._layout(name, offset, nnz, total, v, None, n_global)
            dset = self._create(name, (total, *tail), dtype)
            data = np.ascontiguousarray(v, dtype=dtype) if nnz else np.empty((0, *tail), dtype)
            self._put(dset, name, offset, data, pieces)
            # one checksum per neuron over its entries (rows of the value array are synapses)
            crc = checksum.csr_crcs(ptr64, data) if n else np.zeros(0, np.uint32)
            self._put_checksums(
                name, parts, int(start), crc, int(n_global), attrs={"per": "neuron"}
            )

    def write_global(self, name: str, arr: NDArray) -> None:
        """Write an array every rank holds identically (rank 0's copy is written)."""
        self._check_name(name)
        arr = np.asarray(arr)
        err = "object arrays cannot be stored" if arr.dtype.hasobject else None
        bad = ValueError(f"{self.path}: '{name}': {err}") if err else None
        shapes = self._gather((arr.shape, arr.dtype), bad or self._grow(arr.nbytes))
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{self.path}: '{name}': shapes/dtypes differ between ranks {shapes}")
        crc = checksum.whole_crc(arr) if self.comm.rank == 0 else None
        if self.strategy == "mpio":  # a collective attribute: the same value on every rank
            crc = self.comm.bcast(crc, root=0)
        dset = self._create(name, arr.shape, arr.dtype, {checksum.GLOBAL_ATTR: np.uint32(crc or 0)})
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
        f.attrs[checksum.ROOT_ATTR] = checksum.ALGORITHM
        f.attrs[COMPLETE] = True  # the last thing written

    def _run_plan(self) -> None:
        with h5py.File(self.tmp, "r+", locking=False) as f:
            for name, row0, arr, crc in self._plan:  # a row set's checksums come after it
                dset = f[name]
                per = _rows_per_call(dset.shape[1:], dset.dtype)
                _write_rows_split(dset, row0, arr, math.ceil(arr.shape[0] / per), None, per, crc)
        self._plan.clear()
        atomic.fsync_file(self.tmp)

    def _finish(self) -> None:
        comm, rank, f = self.comm, self.comm.rank, self._file
        if self.strategy == "mpio":
            # collective steps; a storage error comes back on every rank (ROMIO agrees on
            # error codes), each step's outcome is agreed before the next collective
            for step in ("flush", "fsync", "close"):
                exc = None
                try:
                    if step == "flush":
                        f.flush()
                    elif step == "fsync" and rank == 0:
                        atomic.fsync_file(self.tmp)
                    elif step == "close":
                        self._write_attrs_and_complete(f)
                        self._file = None
                        f.close()
                except Exception as e:  # noqa: BLE001 - reported to all ranks
                    exc = self._converted(e)
                self._gather(None, exc)
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
                        exc = self._converted(e)
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
                exc = self._converted(e)
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
            try:
                atomic.discard(self.tmp)
            except OSError:  # already failing: keep the first error
                pass

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, et, ev, tb) -> bool:
        try:
            if self._agreed_failure:  # every rank already knows: just clean up
                if ev is None:
                    raise RuntimeError(f"{self.path}: not written (a write call failed)")
                raise ev
            # raises on every rank if any rank failed in the block (a storage error as one line)
            self._gather(None, self._converted(ev))
            self._finish()
        except BaseException as exc:
            self._cleanup()
            if exc is ev:
                return False
            raise
        finally:
            self._done = True
        return False


def create(
    path: str | Path,
    comm: Comm | None = None,
    attrs: Mapping[str, Any] | None = None,
    size_hint: int | None = None,
    intact: str | None = None,
):
    """Start writing ``path`` collectively; use as ``with create(path, comm) as w: ...``.

    The file appears at ``path`` (atomically replacing an older one) only when the ``with``
    block ends without an exception on any rank; otherwise the temporary file is removed and
    the older ``path`` is left as it was.  ``attrs``: root attributes (rank 0's values).
    ``size_hint`` (bytes of the finished file) and ``intact`` (what is left if the write
    fails) go into the one-line OutputError of a storage failure.
    """
    if comm is None:
        from tsn_mpi.comm.serial import SerialComm

        comm = SerialComm()
    w = Writer(Path(path), comm, attrs, strategy(comm), size_hint, intact)
    try:
        w._open()
    except BaseException:
        w._cleanup()
        raise
    return w
