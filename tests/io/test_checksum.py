"""Checksums: computed by the writing ranks, verified on every read, and by ``tsn-mpi verify``."""

from __future__ import annotations

import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.io.test_h5 import file_contents, run_ranks
from tsn_mpi.comm.serial import SerialComm
from tsn_mpi.errors import CorruptFileError
from tsn_mpi.io import checksum, h5_read, h5_write, verify
from tsn_mpi.io.checkpoint import read_checkpoint, write_checkpoint
from tsn_mpi.io.rows import LazyRows

N = 23


def _zlib_rows(a: np.ndarray) -> np.ndarray:
    return np.array([zlib.crc32(np.ascontiguousarray(r).tobytes()) for r in a], np.uint32)


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(40, dtype=np.float64),  # 8-byte rows: vectorised table CRC
        np.arange(40 * 3, dtype=np.int8).reshape(40, 3),
        np.random.default_rng(0).random((40, 5, 7)).astype(np.float32),  # zlib per row
        np.zeros((5, 0), np.float32),
        np.array([True, False, True]),
    ],
)
def test_row_crcs_are_zlib_crc32_of_each_row(arr):
    assert np.array_equal(checksum.row_crcs(arr), _zlib_rows(arr))


def test_row_crcs_on_threads_match(monkeypatch):
    a = np.random.default_rng(1).random((301, 97))
    monkeypatch.setattr(checksum, "_THREAD_BYTES", 1)
    monkeypatch.setattr(checksum, "_threads", lambda: 3)
    assert np.array_equal(checksum.row_crcs(a), _zlib_rows(a))


def test_csr_and_whole_crcs():
    ptr = np.array([5, 7, 7, 10])  # any offset: only differences count
    vals = np.arange(5, dtype=np.int32)
    want = [zlib.crc32(vals[a:b].tobytes()) for a, b in ((0, 2), (2, 2), (2, 5))]
    assert checksum.csr_crcs(ptr, vals).tolist() == want
    a = np.arange(12.0).reshape(4, 3)
    assert checksum.whole_crc(a) == zlib.crc32(a.tobytes())
    assert checksum.whole_crc(a[2:], checksum.whole_crc(a[:2])) == zlib.crc32(a.tobytes())


def _write(path: Path, comm=None, lazy: bool = False) -> dict:
    rng = np.random.default_rng(7)
    data = {
        "P": rng.random((N, 11)).astype(np.float32),
        "s": rng.random(N),
        "ptr": np.concatenate([[0], np.cumsum(rng.integers(0, 4, N))]),
        "g": np.arange(9, dtype=np.int64),
    }
    data["pre"] = rng.integers(0, N, int(data["ptr"][-1])).astype(np.int32)
    comm = comm or SerialComm()
    lo = comm.rank * N // comm.size
    hi = (comm.rank + 1) * N // comm.size
    p = data["P"][lo:hi]
    rows = LazyRows(hi - lo, 11, np.float32, lambda a, b: p[a:b]) if lazy else p
    with h5_write.create(path, comm) as w:
        w.write_rows("rows/P", rows, lo, N)
        w.write_rows("rows/s", data["s"][lo:hi], lo, N)
        ptr = data["ptr"][lo : hi + 1]
        w.write_csr("static", ptr - ptr[0], {"pre": data["pre"][ptr[0] : ptr[-1]]}, lo, N)
        w.write_global("g", data["g"])
    return data


def _flip(path: Path, name: str, row: int, col_bytes: int = 0, n: int = 8) -> None:
    """Invert ``n`` bytes of row ``row`` of dataset ``name`` in the file (silent corruption)."""
    with h5py.File(path, "r") as f:
        d = f[name]
        off = d.id.get_offset()
        row_bytes = d.dtype.itemsize * int(np.prod(d.shape[1:], dtype=np.int64))
    raw = bytearray(path.read_bytes())
    i = off + row * row_bytes + col_bytes
    raw[i : i + n] = bytes(255 - x for x in raw[i : i + n])
    path.write_bytes(bytes(raw))


def test_writer_stores_checksums_readers_check_them(tmp_path):
    path = tmp_path / "a.h5"
    data = _write(path)
    with h5py.File(path, "r") as f:
        assert f.attrs["checksums"] == "crc32"
        assert np.array_equal(f["checksums/rows/P"][...], _zlib_rows(data["P"]))
        assert np.array_equal(f["checksums/static/indptr"][...], _zlib_rows(data["ptr"]))
        assert f["checksums/static/pre"].attrs["per"] == "neuron"
        assert int(f["g"].attrs["crc32"]) == zlib.crc32(data["g"].tobytes())
    with h5_read.open_read(path) as f:
        assert "checksums" not in h5_read.read_attrs(f)
        assert np.array_equal(h5_read.read_rows(f, "rows/P", range(3, 9)), data["P"][3:9])
        ptr, vals = h5_read.read_csr(f, "static", range(2, 20))
        assert np.array_equal(vals["pre"], data["pre"][data["ptr"][2] : data["ptr"][20]])
        assert np.array_equal(h5_read.read_global(f, "g"), data["g"])
    assert verify.verify_file(path).status == "ok"


@pytest.mark.parametrize("lazy", [False, True])
def test_turns_on_three_ranks_write_the_serial_checksums(tmp_path, lazy):
    ref = tmp_path / "serial.h5"
    _write(ref)
    out = run_ranks(3, lambda c: _write(tmp_path / "turns.h5", c, lazy))
    assert not [o for o in out if isinstance(o, BaseException)], out
    assert file_contents(tmp_path / "turns.h5") == file_contents(ref)


def test_flipped_bytes_are_detected_with_file_dataset_and_rows(tmp_path):
    path = tmp_path / "a.h5"
    _write(path)
    _flip(path, "rows/P", 13, 4)
    _flip(path, "rows/P", 14, 4, 2)
    with h5_read.open_read(path) as f:
        assert h5_read.read_rows(f, "rows/P", range(0, 13)).shape == (13, 11)  # intact rows
        with pytest.raises(CorruptFileError) as e:
            h5_read.read_rows(f, "rows/P", range(10, 20))
    msg = str(e.value)
    assert str(path) in msg and "'rows/P'" in msg and "rows 13-14 (2 rows)" in msg
    assert "\n" not in msg
    rep = verify.verify_file(path)
    assert rep.status == "corrupt" and "rows 13-14" in rep.problems[0]


def test_corrupt_global_and_csr_are_detected(tmp_path):
    path = tmp_path / "a.h5"
    _write(path)
    _flip(path, "g", 3, 0, 1)
    with h5_read.open_read(path) as f, pytest.raises(CorruptFileError, match="'g' does not"):
        h5_read.read_global(f, "g")
    path2 = tmp_path / "b.h5"
    data = _write(path2)
    has = np.flatnonzero(np.diff(data["ptr"]) > 0)  # neurons with synapses
    entry_neuron = int(has[len(has) // 2])
    entry = int(data["ptr"][entry_neuron])  # its first synapse
    _flip(path2, "static/pre", entry, 0, 2)
    with h5_read.open_read(path2) as f, pytest.raises(CorruptFileError) as e:
        h5_read.read_csr(f, "static", range(0, N))
    assert f"neuron {entry_neuron} does not match" in str(e.value)
    assert verify.verify_file(path2).status == "corrupt"


def test_checkpoint_reader_names_the_corrupt_rows(tmp_path):
    path = tmp_path / "ckpt-3.h5"
    p = np.random.default_rng(3).random((N, 6)).astype(np.float32)
    curve = {"curve_loop": np.arange(3)}
    write_checkpoint(path, SerialComm(), range(N), N, {"loop": 3}, {"P": p}, curve)
    _flip(path, "rows/P", 20)
    attrs, rows, globs = read_checkpoint(path, range(0, 10), {}, lazy=("P",))
    assert np.array_equal(rows["P"][0:10], p[:10])  # lazily read rows 0..9: intact
    with pytest.raises(CorruptFileError, match="row 20 does not match"):
        read_checkpoint(path, range(10, N), {})


def test_verify_reports_each_kind_of_damage(tmp_path, capsys):
    run = tmp_path / "run"
    ck = run / "checkpoints"
    ck.mkdir(parents=True)
    for loop in (0, 1, 2):
        _write(ck / f"ckpt-{loop}.h5")
    _flip(ck / "ckpt-2.h5", "rows/s", 4, 0, 3)
    with h5py.File(run / "old.h5", "w") as f:  # written before checksums existed
        f["x"] = np.arange(3)
        f.attrs["complete"] = True
    with h5py.File(run / "cut.h5", "w") as f:
        f["x"] = np.arange(3)
    (ck / ".ckpt-3.h5.tmp-123").write_bytes(b"partial")
    assert verify.verify_main([ck / "ckpt-1.h5"]) == 0
    capsys.readouterr()
    assert verify.verify_main([run]) == CorruptFileError.exit_code == 65
    out = capsys.readouterr().out
    lines = {
        ln.split()[1].rstrip(":"): ln
        for ln in out.splitlines()
        if ln.startswith(("ok", "CORR", "INC", "unv", "left"))
    }
    assert lines[str(ck / "ckpt-1.h5")].startswith("ok")
    assert lines[str(ck / "ckpt-2.h5")].startswith("CORRUPT") and "row 4 " in out
    assert lines[str(run / "old.h5")].startswith("unverified")
    assert lines[str(run / "cut.h5")].startswith("INCOMPLETE")
    assert lines[str(ck / ".ckpt-3.h5.tmp-123")].startswith("leftover")
    assert "newest intact checkpoint: 1 (train with --restore-from-checkpoint 1)" in out
    assert verify.verify_main([tmp_path / "nothing"]) == 2
    (run / "junk.h5").write_bytes(b"\x00" * 64)
    assert not verify.verify_file(run / "junk.h5").intact
    assert verify.newest_intact(ck).label == "1"


def test_verify_streams_in_small_blocks(tmp_path):
    """Blocks of a few rows (the 64 MB blocks of a large P, scaled down) check the same."""
    path = tmp_path / "a.h5"
    data = _write(path)
    assert verify.verify_file(path, block_bytes=40).status == "ok"
    has = np.flatnonzero(np.diff(data["ptr"]) > 0)
    _flip(path, "static/pre", int(data["ptr"][has[-1]]), 0, 1)  # the last neuron with synapses
    _flip(path, "rows/P", N - 1, 0, 1)
    rep = verify.verify_file(path, block_bytes=40)
    assert rep.status == "corrupt" and len(rep.problems) == 2
    assert f"row {N - 1} " in rep.problems[0] and f"neuron {has[-1]} " in rep.problems[1]
