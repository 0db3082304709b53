"""Storage errors while writing: one line, bytes needed and free, nothing intact lost."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from tests import tmpfs
from tests.io.test_h5 import run_ranks
from tests.mpirun import requires_mpi, run_mpi_script
from tsn_mpi.comm.serial import SerialComm
from tsn_mpi.errors import OutputError
from tsn_mpi.io import h5_read, h5_write, space
from tsn_mpi.io.checkpoint import write_checkpoint

MB = 1_000_000
small_fs = tmpfs.small_fs  # fixture: a size-limited tmpfs made by the test
remount = tmpfs.remount


def test_errno_is_found_in_h5py_messages():
    e = OSError(
        "Can't synchronously write data (file write failed: time = x, filename = 'a', "
        "file descriptor = 5, errno = 28, error message = 'No space left on device')"
    )
    assert space.errno_of(e) == errno.ENOSPC and space.is_io_error(e)
    assert space.errno_of(OSError(errno.EROFS, "Read-only file system")) == errno.EROFS
    assert not space.is_io_error(OSError("Unable to create dataset (name already exists)"))
    assert not space.is_io_error(ValueError("errno = 28"))


def test_one_line_names_file_bytes_and_what_is_intact(tmp_path):
    path = tmp_path / "ckpt-7.h5"
    e = space.output_error(
        OSError(errno.ENOSPC, "No space"),
        path,
        52_400_000,
        "the older checkpoints are intact (newest: ckpt-6.h5)",
    )
    msg = str(e)
    assert msg.startswith(f"cannot write {path}: no space left on device (ENOSPC)")
    assert "it needs 52.4 MB" in msg and f"free in {tmp_path}" in msg
    assert msg.endswith("(newest: ckpt-6.h5)") and "\n" not in msg and e.exit_code == 74
    assert "ckpt-7.h5 was not created" in str(space.output_error(OSError(errno.EIO, "x"), path))


class _Comm:
    def __init__(self, rank: int = 0, size: int = 1) -> None:
        self.rank, self.size = rank, size

    def bcast(self, obj, root: int = 0):
        return obj


def test_check_free_refuses_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(space, "free_bytes", lambda p: 10 * MB)
    space.check_free(tmp_path / "a.h5", 9 * MB, _Comm())
    with pytest.raises(OutputError, match=r"needs 11\.0 MB, 10\.0 MB free in .*nothing was"):
        space.check_free(tmp_path / "a.h5", 11 * MB, _Comm())
    assert os.listdir(tmp_path) == []


def test_estimate_covers_the_file(tmp_path):
    rows = {"P": np.ones((64, 500), np.float32), "w": np.ones((64, 20), np.float32)}
    globs = {"curve": np.arange(100.0)}
    need = space.estimate_bytes(rows, 64, globs)
    write_checkpoint(tmp_path / "c.h5", SerialComm(), range(64), 64, {}, rows, globs)
    size = (tmp_path / "c.h5").stat().st_size
    assert size <= need <= size + 64 * 1024


def _payload(mb: float) -> np.ndarray:
    return np.ones((int(mb * MB) // 4000, 1000), np.float32)


@pytest.mark.parametrize("allocates", [True, False])
def test_full_disk_during_write_gives_one_line_and_keeps_the_old_file(
    small_fs, monkeypatch, allocates
):
    """Size unknown: each dataset's blocks are allocated as it is declared (the error comes
    from there), or, on a file system that cannot allocate ahead, from HDF5's own writes."""
    if not allocates:
        monkeypatch.setattr(space, "reserve", lambda *a: False)
    fs = small_fs(3 * MB)
    path = fs / "data.h5"
    with h5_write.create(path) as w:
        w.write_rows("x", _payload(1), 0, len(_payload(1)))
    before = path.read_bytes()
    big = _payload(2.5)
    with pytest.raises(OutputError) as e:
        with h5_write.create(path) as w:  # size unknown: the error comes from the write itself
            w.write_rows("x", big, 0, len(big))
    msg = str(e.value)
    assert f"cannot write {path}: no space left on device (ENOSPC)" in msg
    assert "it needs at least 2.5 MB" in msg and "free in" in msg
    assert "temporary file was removed" in msg and "previous data.h5 is unchanged" in msg
    assert sorted(os.listdir(fs)) == ["data.h5"] and path.read_bytes() == before


def test_known_size_is_reserved_before_any_data(small_fs, monkeypatch):
    """With the size known, the blocks are allocated up front: the failure comes before the
    first data write (this is what keeps parallel HDF5 writes from failing on one rank)."""
    fs = small_fs(2 * MB)
    writes = []
    real = h5_write._write_piece
    monkeypatch.setattr(h5_write, "_write_piece", lambda *a: (writes.append(1), real(*a)))
    big = _payload(2.5)
    with pytest.raises(OutputError, match="needs 2.5 MB"):
        with h5_write.create(fs / "r.h5", size_hint=big.nbytes) as w:
            w.write_rows("x", big, 0, len(big))
    assert writes == [] and os.listdir(fs) == []


def test_checkpoint_precheck_on_a_small_disk(small_fs):
    fs = small_fs(1 * MB)
    p = _payload(1.2)
    with pytest.raises(OutputError) as e:
        write_checkpoint(fs / "ckpt-3.h5", SerialComm(), range(len(p)), len(p), {}, {"P": p}, {})
    assert str(e.value).startswith(f"not enough space for {fs / 'ckpt-3.h5'}: it needs 1.2 MB")
    assert "nothing was written; no older checkpoint exists" in str(e.value)
    assert os.listdir(fs) == []


def test_read_only_file_system(small_fs):
    fs = small_fs(1 * MB)
    remount(fs, "ro")
    with pytest.raises(OutputError, match=r"read-only file system \(EROFS\)"):
        with h5_write.create(fs / "x.h5") as w:
            w.write_global("g", np.zeros(3))


def test_full_disk_on_one_of_three_ranks_stops_all(small_fs, monkeypatch):
    """ "turns" on a file system that cannot allocate ahead: rank 2 writes last and finds the
    disk full; every rank raises the same error, marked agreed (the CLI prints it once), the
    temporary file is gone."""
    monkeypatch.setattr(space, "reserve", lambda *a: False)
    fs = small_fs(3 * MB)
    n = 3 * 500

    def body(comm):
        lo, hi = comm.rank * 500, (comm.rank + 1) * 500
        with h5_write.create(fs / "t.h5", comm) as w:
            w.write_rows("x", np.ones((hi - lo, 1000), np.float32), lo, n)

    out = run_ranks(3, body)
    assert all(isinstance(o, OutputError) and getattr(o, "agreed", False) for o in out), out
    assert "no space left on device" in str(out[0]) and "(on rank" in str(out[0])
    assert os.listdir(fs) == []


def test_written_file_larger_than_its_data_reads_back(tmp_path):
    """A reservation larger than the file (the size estimate) leaves a readable file."""
    path = tmp_path / "r.h5"
    with h5_write.create(path, size_hint=5 * MB) as w:
        w.write_rows("x", np.arange(12.0).reshape(4, 3), 0, 4)
    with h5_read.open_read(path) as f:
        assert h5_read.read_rows(f, "x", range(1, 3)).tolist() == [[3, 4, 5], [6, 7, 8]]


def test_free_bytes_of_a_missing_path_uses_its_parent(tmp_path: Path):
    assert space.free_bytes(tmp_path / "no" / "such" / "dir") == space.free_bytes(tmp_path)


@pytest.mark.mpi
@requires_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_full_disk_under_mpiexec_no_rank_waits(small_fs, n):
    """Real ranks, whatever the write strategy of this h5py (CI also runs it with parallel
    HDF5, "mpio"): every rank raises the same agreed OutputError, nothing is left behind."""
    fs = small_fs(2 * MB)
    r = run_mpi_script(n, "full_disk.py", str(fs), "3", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("rank ")]
    assert len(lines) == 2 * n and all("OutputError agreed=True" in ln for ln in lines), lines
    assert any("not enough space for" in ln and "ckpt-1.h5" in ln for ln in lines)
    assert any("no space left on device (ENOSPC)" in ln and "big.h5" in ln for ln in lines)
    assert os.listdir(fs) == []
