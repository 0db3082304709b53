"""Free space and I/O errors of output files, as one-line :class:`~tsn_mpi.errors.OutputError`.

A full disk (ENOSPC), an exceeded quota (EDQUOT), a read-only file system (EROFS), a device
error (EIO) or a refused permission (EACCES, EPERM) while writing an output becomes one line
naming the file, the bytes needed and free, and what is intact (exit code 74).
:func:`check_free` refuses to start a write whose size is known when it cannot fit, and
:func:`reserve` allocates its blocks before any data is written (a quota, or another job
filling the disk meanwhile, then fails before the collective writes, where parallel HDF5
cannot report an error on one rank without leaving the others waiting).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from tsn_mpi.errors import OutputError

IO_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM, errno.EFBIG}
)
_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)")  # HDF5's messages: "... errno = 28, ..."
METADATA_BYTES = 16 << 10  # HDF5 superblock and root group (measured: ~1-2 kB per dataset)
PER_DATASET_BYTES = 4 << 10


def human(n: float | None) -> str:
    """Bytes as ``52.4 MB`` (decimal units, like ``tsn-mpi plan``)."""
    if n is None:
        return "unknown"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def errno_of(exc: BaseException) -> int | None:
    """The errno of an OSError, also when h5py only put it in the message text."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno:
        return int(exc.errno)
    m = _ERRNO_IN_TEXT.search(str(exc))
    return int(m.group(1)) if m else None


def is_io_error(exc: BaseException) -> bool:
    """True for the storage errors this module turns into one line (see IO_ERRNOS)."""
    return errno_of(exc) in IO_ERRNOS


def free_bytes(path: str | Path) -> int | None:
    """Bytes available to this user on the file system holding ``path`` (or its nearest
    existing parent); None when unknown."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return int(st.f_bavail) * int(st.f_frsize)


def _size(path: Path | None) -> int:
    """Bytes ``path`` occupies on disk (allocated blocks: unwritten parts are holes)."""
    try:
        return path.stat().st_blocks * 512 if path is not None else 0
    except (OSError, AttributeError):
        return 0


def default_intact(path: Path) -> str:
    """What is left when writing ``path`` failed (files are replaced atomically)."""
    if path.exists():
        return f"the previous {path.name} is unchanged"
    return f"{path.name} was not created"


def output_error(
    exc: BaseException,
    path: Path,
    needed: int | None = None,
    intact: str | None = None,
    tmp: Path | None = None,
    at_least: bool = False,
) -> OutputError:
    """One line for a failed write of ``path``: the cause, bytes needed and free (free counted
    as if the partial temporary file ``tmp``, removed on failure, were gone), what is intact."""
    code = errno_of(exc)
    name = errno.errorcode.get(code, "") if code else ""
    reason = os.strerror(code).lower() if code else str(exc).splitlines()[0]
    free = free_bytes(path.parent)
    if free is not None:
        free += _size(tmp)
    size = f"it needs {'at least ' if at_least else ''}{human(needed)}, " if needed else ""
    quota = " (a quota is not shown by the free space)" if code == errno.EDQUOT else ""
    where = f"{human(free)} free in {path.parent}{quota}"
    removed = "; the temporary file was removed" if tmp is not None else ""
    return OutputError(
        f"cannot write {path}: {reason}{f' ({name})' if name else ''}; {size}"
        f"{where}{removed}; {intact or default_intact(path)}"
    )


def _fallocate():
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = getattr(libc, "fallocate64", None) or libc.fallocate
    except (OSError, AttributeError):  # not Linux/glibc
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


def reserve(path: Path, nbytes: int) -> bool:
    """Allocate the disk blocks of the first ``nbytes`` of ``path`` now (Linux fallocate), so
    a full disk or an exceeded quota fails here, before any data is written, and never inside
    a collective HDF5 write.  Returns False where the file system cannot (nothing is
    emulated: no zero-filling); raises OSError (ENOSPC, EDQUOT, ...) naming ``path``."""
    import ctypes

    fn = _fallocate()
    if fn is None or nbytes <= 0:
        return False
    fd = os.open(path, os.O_WRONLY)
    try:
        if fn(fd, 0, 0, int(nbytes)) == 0:
            return True
        code = ctypes.get_errno()
    finally:
        os.close(fd)
    if code in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(path))


def check_free(path: Path, needed: int, comm, intact: str | None = None) -> None:
    """Stop before writing ``path`` (``needed`` bytes) when its file system has less free
    space: rank 0 looks, every rank raises the same OutputError (collective)."""
    free = free_bytes(path.parent) if comm.rank == 0 else None
    if comm.size > 1:
        free = comm.bcast(free, root=0)
    if free is not None and free < needed:
        exc = OutputError(
            f"not enough space for {path}: it needs {human(needed)}, {human(free)} free in "
            f"{path.parent}; nothing was written; {intact or default_intact(path)}"
        )
        exc.agreed = True  # every rank raises it (decided by rank 0)
        raise exc


def estimate_bytes(row_arrays: dict, n_global: int, globals_: dict) -> int:
    """Size of a file of per-neuron arrays (their local blocks give the row shape) and global
    arrays, with checksums and HDF5 metadata."""
    total = METADATA_BYTES
    for arr in row_arrays.values():
        row = int(arr.dtype.itemsize)
        for s in arr.shape[1:]:
            row *= int(s)
        total += n_global * (row + 4) + PER_DATASET_BYTES
    for arr in globals_.values():
        total += int(getattr(arr, "nbytes", 0)) + PER_DATASET_BYTES
    return total
