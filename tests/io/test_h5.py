"""The collective HDF5 writer and the readers: serial, threads-as-ranks, and real MPI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.mpi import h5_write_read as prog
from tests.mpi import pause_writes
from tests.mpirun import mpi_env, mpiexec, requires_mpi, run_mpi_script
from tsn_mpi.comm.serial import SerialComm
from tsn_mpi.errors import CheckpointError, DataFileError, LaunchError
from tsn_mpi.io import atomic, h5_read, h5_strategy, h5_write


class _World:
    def __init__(self, n: int) -> None:
        self.barrier = threading.Barrier(n, timeout=20)
        self.slots: list = [None] * n


class ThreadComm:
    """Ranks as threads of one process: enough of Comm for the writer ("turns" strategy)."""

    kind = "threads"

    def __init__(self, world: _World, rank: int) -> None:
        self.w, self.rank, self.size = world, rank, len(world.slots)

    def allgather_obj(self, obj):
        self.w.slots[self.rank] = obj
        self.w.barrier.wait()
        out = list(self.w.slots)
        self.w.barrier.wait()
        return out

    def bcast(self, obj, root: int = 0):
        return self.allgather_obj(obj)[root]

    def barrier(self) -> None:
        self.w.barrier.wait()


def run_ranks(n: int, fn) -> list:
    """Run ``fn(comm)`` on n thread-ranks; per rank its return value or its exception."""
    world = _World(n)
    out: list = [None] * n

    def body(r: int) -> None:
        try:
            out[r] = fn(ThreadComm(world, r))
        except BaseException as e:  # noqa: BLE001
            out[r] = e

    threads = [threading.Thread(target=body, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def file_contents(path: Path) -> dict:
    """Every dataset (dtype, shape, bytes) and root attribute of a file."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda n, o: (
                out.__setitem__(n, (o.dtype.str, o.shape, o[()].tobytes()))
                if isinstance(o, h5py.Dataset)
                else None
            )
        )
        out["@attrs"] = {k: np.asarray(v).tolist() for k, v in f.attrs.items()}
    return out


def reference_file(tmp_path: Path) -> Path:
    ref = tmp_path / "ref" / "serial.h5"
    prog.write(str(ref), SerialComm())
    return ref


# -- strategy and describe -------------------------------------------------------------------
def test_strategy(monkeypatch):
    monkeypatch.setattr(h5_strategy, "_forced", "auto")
    assert h5_strategy.strategy(SerialComm()) == "serial"
    comm = ThreadComm(_World(2), 0)
    assert h5_strategy.strategy(comm) == "turns"  # not an MPI communicator
    h5_strategy.set_strategy("turns")
    assert h5_strategy.strategy(comm) == "turns"
    assert h5_strategy.strategy(SerialComm()) == "serial"
    h5_strategy.set_strategy("mpio")
    with pytest.raises(LaunchError, match="run.h5_writes = 'mpio'"):
        h5_strategy.strategy(comm)
    with pytest.raises(LaunchError, match="run.h5_writes = 'fast': expected"):
        h5_strategy.set_strategy("fast")


def test_describe():
    d = h5_strategy.describe()
    assert d["h5py"] == h5py.__version__ and d["hdf5"] == h5py.version.hdf5_version
    assert d["h5py_mpi"] == h5py.get_config().mpi
    assert d["strategy_multi_rank"] in ("mpio", "turns")


# -- serial round trips ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtype", [np.float32, np.float64, np.int8, np.uint16, np.int64, np.bool_, np.complex64]
)
def test_rows_round_trip_dtypes(tmp_path, dtype):
    arr = (np.arange(6 * 4 * 2).reshape(6, 4, 2) % 7).astype(dtype)
    with h5_write.create(tmp_path / "a.h5") as w:
        w.write_rows("x", arr, 0, 6)
    with h5_read.open_read(tmp_path / "a.h5", what="data file") as f:
        got = h5_read.read_rows(f, "x", range(2, 5))
        assert got.dtype == arr.dtype and np.array_equal(got, arr[2:5])
        assert h5_read.read_rows(f, "x", range(3, 3)).shape == (0, 4, 2)


def test_attrs_round_trip(tmp_path):
    attrs = {"i": 3, "f": 0.25, "s": "lif", "b": True, "l": [1, 2], "n": np.float32(1.5)}
    with h5_write.create(tmp_path / "a.h5", attrs=attrs) as w:
        w.set_attrs({"s": "glif", "hash": "ab12"})
    with h5_read.open_read(tmp_path / "a.h5") as f:
        got = h5_read.read_attrs(f)
    assert got == {**attrs, "s": "glif", "hash": "ab12"}
    assert type(got["i"]) is int and type(got["b"]) is bool and type(got["n"]) is float


def test_serial_file_matches_expectation(tmp_path):
    ref = reference_file(tmp_path)
    prog.check_read(str(ref), 0, 1)
    for size in (2, 3, 4):
        for rank in range(size):
            prog.check_read(str(ref), rank, size)
    with h5_read.open_read(ref) as f:
        assert f["static/indptr"].dtype == np.int64 and f["static/indptr"].shape == (24,)
        assert np.array_equal(f["table"][()], np.linspace(0, 1, 7))
        assert f["scalar"][()] == np.float32(2.5) and f["scalar"].dtype == np.float32
        assert f["empty/x"].shape == (0,)


def test_zero_rows_everywhere(tmp_path):
    with h5_write.create(tmp_path / "z.h5") as w:
        w.write_rows("P", np.zeros((0, 5), np.float32), 0, 0)
        w.write_csr("c", np.array([0]), {"v": np.zeros(0, np.int32)}, 7, 0)  # start unused
    with h5_read.open_read(tmp_path / "z.h5") as f:
        assert h5_read.read_rows(f, "P", range(0)).shape == (0, 5)
        ptr, vals = h5_read.read_csr(f, "c", range(0))
        assert ptr.tolist() == [0] and vals["v"].dtype == np.int32 and vals["v"].size == 0


def test_split_writes_give_the_same_file(tmp_path, monkeypatch):
    ref = reference_file(tmp_path)
    monkeypatch.setattr(h5_write, "MAX_IO_BYTES", 50)  # ~one row per write call
    prog.write(str(tmp_path / "split.h5"), SerialComm())
    assert file_contents(tmp_path / "split.h5") == file_contents(ref)


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="do not tile"):
        with h5_write.create(tmp_path / "b.h5") as w:
            w.write_rows("x", np.zeros((3, 2)), 1, 4)
    with pytest.raises(ValueError, match="indptr"):
        with h5_write.create(tmp_path / "b.h5") as w:
            w.write_csr("c", np.array([1, 2]), {"v": np.zeros(1)}, 0, 1)
    with pytest.raises(ValueError, match="entries but indptr"):
        with h5_write.create(tmp_path / "b.h5") as w:
            w.write_csr("c", np.array([0, 2]), {"v": np.zeros(3)}, 0, 1)
    with pytest.raises(ValueError, match="written twice"):
        with h5_write.create(tmp_path / "b.h5") as w:
            w.write_global("g", np.zeros(2))
            w.write_global("g", np.zeros(2))
    with pytest.raises(ValueError, match="reserved"):
        h5_write.create(tmp_path / "b.h5", attrs={"complete": False})
    with pytest.raises(ValueError, match="attribute bad=None"):
        h5_write.create(tmp_path / "b.h5", attrs={"bad": None})
    assert not (tmp_path / "b.h5").exists()
    assert os.listdir(tmp_path) == []


# -- atomicity ---------------------------------------------------------------------------------
def write_small(path: Path, value: float) -> None:
    with h5_write.create(path, attrs={"value": value}) as w:
        w.write_rows("x", np.full((4, 3), value), 0, 4)


def test_exception_inside_with_keeps_old_file(tmp_path):
    path = tmp_path / "ckpt-1.h5"
    write_small(path, 1.0)
    with pytest.raises(KeyError, match="boom"):
        with h5_write.create(path, attrs={"value": 2.0}) as w:
            w.write_rows("x", np.full((4, 3), 2.0), 0, 4)
            raise KeyError("boom")
    assert os.listdir(tmp_path) == ["ckpt-1.h5"]  # no temporary file left
    with h5_read.open_read(path) as f:
        assert h5_read.read_attrs(f) == {"value": 1.0} and f["x"][0, 0] == 1.0
    write_small(path, 3.0)  # and the path can be replaced later
    with h5_read.open_read(path) as f:
        assert f["x"][0, 0] == 3.0


def test_unreadable_files_give_one_line_errors(tmp_path):
    missing = tmp_path / "ckpt-9.h5"
    with pytest.raises(CheckpointError, match=r"checkpoint .*ckpt-9.h5: no such file"):
        h5_read.open_read(missing)
    text = tmp_path / "net.h5"
    text.write_text("not hdf5\n")
    with pytest.raises(DataFileError, match="net.h5 is not an HDF5 file") as e:
        h5_read.open_read(text, what="network file")
    assert "\n" not in str(e.value)
    partial = tmp_path / "ckpt-2.h5"
    with h5py.File(partial, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CheckpointError, match="ckpt-2.h5 is incomplete") as e:
        h5_read.open_read(partial)
    assert "\n" not in str(e.value)
    assert not any(h5_read.is_complete(p) for p in (partial, text, missing))
    write_small(tmp_path / "ok.h5", 1.0)
    with h5_read.open_read(tmp_path / "ok.h5") as f:
        with pytest.raises(DataFileError, match="no dataset 'y'"):
            h5_read.read_rows(f, "y", range(1))
        with pytest.raises(DataFileError, match="out of range"):
            h5_read.read_rows(f, "x", range(2, 5))
        with pytest.raises(DataFileError, match="no dataset 'c/indptr'"):
            h5_read.read_csr(f, "c", range(1))


def wait_for_pause(proc: subprocess.Popen) -> None:
    """Read the writer's stderr until the test hook says the data is written."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if pause_writes.MARK in line:
            return
    pytest.fail("writer ended without pausing:\n" + "".join(seen))


def test_sigkill_mid_write_keeps_previous_file(tmp_path):
    """A writer killed between its data and its 'complete' mark leaves the old file intact."""
    path = tmp_path / "ckpt-3.h5"
    write_small(path, 1.0)
    code = (
        "import sys, numpy as np; from tsn_mpi.io import h5_write\n"
        "from tests.mpi import pause_writes; pause_writes.install(60)\n"
        "with h5_write.create(sys.argv[1], attrs={'value': 2.0}) as w:\n"
        "    w.write_rows('x', np.full((4, 3), 2.0), 0, 4)\n"
        "    w.write_rows('big', np.ones((2_000, 10_000), np.float32), 0, 2_000)\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_pause(proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    leftovers = [p for p in os.listdir(tmp_path) if atomic.is_temp_name(p)]
    assert len(leftovers) == 1 and os.path.getsize(tmp_path / leftovers[0]) > 80e6
    with h5_read.open_read(path) as f:
        assert h5_read.read_attrs(f) == {"value": 1.0} and "big" not in f
    with pytest.raises(CheckpointError, match="incomplete"):
        h5_read.open_read(tmp_path / leftovers[0])
    write_small(path, 4.0)  # the next successful write removes the leftover
    assert os.listdir(tmp_path) == ["ckpt-3.h5"]


def test_concurrent_readers(tmp_path):
    path = reference_file(tmp_path)
    plain = h5py.File(path, "r")  # opened elsewhere in the process, with default locking
    handles = [h5_read.open_read(path) for _ in range(3)] + [plain]  # several open at once
    try:
        for k, f in enumerate(handles):
            assert h5_read.read_rows(f, "P", range(k, k + 2)).shape == (2, prog.ROW)
    finally:
        for f in handles:
            f.close()


# -- threads as ranks ("turns") ----------------------------------------------------------------
@pytest.mark.parametrize("size", [2, 3])
def test_turns_file_equals_serial_file(tmp_path, size, monkeypatch):
    ref = reference_file(tmp_path)
    monkeypatch.setattr(h5_write, "MAX_IO_BYTES", 100)
    path = tmp_path / f"turns{size}.h5"
    res = run_ranks(size, lambda c: prog.write(str(path), c))
    assert res == ["turns"] * size
    assert file_contents(path) == file_contents(ref)
    assert sorted(os.listdir(tmp_path)) == ["ref", f"turns{size}.h5"]


def test_failure_on_one_rank_aborts_all(tmp_path):
    path = tmp_path / "ckpt-4.h5"
    write_small(path, 1.0)

    def body(comm):
        with h5_write.create(path, comm) as w:
            w.write_rows("x", np.zeros((2, 3)), 2 * comm.rank, 4)
            if comm.rank == 1:
                raise CheckpointError("disk trouble")
            w.write_global("g", np.zeros(3))

    res = run_ranks(2, body)
    assert isinstance(res[1], CheckpointError) and str(res[1]) == "disk trouble"
    assert isinstance(res[0], CheckpointError) and "(on rank 1)" in str(res[0])
    assert os.listdir(tmp_path) == ["ckpt-4.h5"]
    with h5_read.open_read(path) as f:
        assert h5_read.read_attrs(f) == {"value": 1.0}


def test_inconsistent_ranks_raise_everywhere(tmp_path):
    def body(comm):
        with h5_write.create(tmp_path / "x.h5", comm) as w:
            w.write_rows("x", np.zeros((3, 2)), 0, 5)  # both claim rows 0:3

    res = run_ranks(2, body)
    assert all(isinstance(r, ValueError) and "do not tile" in str(r) for r in res)

    def body2(comm):
        with h5_write.create(tmp_path / "x.h5", comm) as w:
            w.write_rows("x", np.zeros((2, 2 + comm.rank)), 2 * comm.rank, 4)

    res = run_ranks(2, body2)
    assert all(isinstance(r, ValueError) and "differ" in str(r) for r in res)
    assert os.listdir(tmp_path) == []


# -- real MPI ------------------------------------------------------------------------------------
STRATEGIES = [
    "turns",
    pytest.param(
        "mpio",
        marks=pytest.mark.skipif(not h5_strategy.h5py_has_mpi(), reason="h5py built without MPI"),
    ),
]


@pytest.mark.mpi
@requires_mpi
@pytest.mark.parametrize("strat", STRATEGIES)
@pytest.mark.parametrize("n_write, n_read", [(2, 3), (3, 2)])
def test_mpi_write_then_read_elsewhere(tmp_path, monkeypatch, strat, n_write, n_read):
    monkeypatch.setenv("TSN_TEST_H5_WRITES", strat)  # read by the test program
    monkeypatch.setenv("TSN_TEST_IO_BYTES", "100")  # several (collective) calls per dataset
    path = tmp_path / "mpi.h5"
    out = run_mpi_script(n_write, "h5_write_read.py", "write", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(f"strategy {strat} ok") == n_write, out.stdout
    assert file_contents(path) == file_contents(reference_file(tmp_path))
    out = run_mpi_script(n_read, "h5_write_read.py", "read", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(" ok") == n_read
    assert sorted(os.listdir(tmp_path)) == ["mpi.h5", "ref"]


@pytest.mark.mpi
@requires_mpi
def test_mpi_sigkill_mid_write_keeps_previous_file(tmp_path):
    path = tmp_path / "ckpt-5.h5"
    write_small(path, 1.0)
    env = dict(mpi_env(), TSN_TEST_PAUSE="60")  # read by the test program
    script = Path(prog.__file__)
    cmd = [mpiexec(), "-n", "2", sys.executable, str(script), "2", "write", str(path)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_pause(proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    with h5_read.open_read(path) as f:
        assert h5_read.read_attrs(f) == {"value": 1.0}
    assert any(atomic.is_temp_name(p) for p in os.listdir(tmp_path))
