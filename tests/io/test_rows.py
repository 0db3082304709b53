"""LazyRows: P moves between tiles and files block by block, with the same bytes as in one piece."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

from tsn_mpi.comm.serial import SerialComm
from tsn_mpi.io import h5_write, rows
from tsn_mpi.io.checkpoint import read_checkpoint, write_checkpoint
from tsn_mpi.io.rows import LazyRows
from tsn_mpi.learn.packed import rows_to_tiles, tile_rows, tiles_to_rows


def _lazy(a: np.ndarray, calls: list) -> LazyRows:
    def fn(lo, hi):
        calls.append((lo, hi))
        return a[lo:hi]

    return LazyRows(a.shape[0], a.shape[1], a.dtype, fn)


def test_slices_and_asarray():
    a = np.arange(70 * 5, dtype=np.float32).reshape(70, 5)
    calls: list = []
    lz = _lazy(a, calls)
    assert lz.shape == (70, 5) and len(lz) == 70 and lz.ndim == 2
    assert np.array_equal(lz[10:20], a[10:20]) and calls == [(10, 20)]
    assert np.array_equal(lz[65:100], a[65:70]) and lz[40:30].shape == (0, 5)
    assert np.array_equal(np.asarray(lz), a)
    with pytest.raises(TypeError):
        lz[::2]


def test_tiles_built_block_by_block_equal_one_piece(monkeypatch):
    monkeypatch.setattr(rows, "BLOCK_BYTES", 32 * 7 * 8 * 3)  # three tiles per block
    a = np.random.default_rng(1).normal(size=(203, 7))
    calls: list = []
    tiles = rows_to_tiles(_lazy(a, calls), 32, dtype=np.float32)
    assert np.array_equal(tiles, rows_to_tiles(a, 32, dtype=np.float32))
    assert len(calls) == 3 and all((hi - lo) % 32 == 0 or hi == 203 for lo, hi in calls)
    back = tile_rows(tiles, 203)
    assert np.array_equal(back[5:77], tiles_to_rows(tiles, 203)[5:77])
    assert np.array_equal(np.asarray(back), a.astype(np.float32))


def test_lazy_rows_written_and_read_back_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(h5_write, "MAX_IO_BYTES", 7 * 4 * 10)  # ten rows per write call
    p = np.random.default_rng(2).normal(size=(95, 7)).astype(np.float32)
    tiles = rows_to_tiles(p, 32)
    path = tmp_path / "ck.h5"
    view, calls, alive = tile_rows(tiles, 95), [], []

    def piece(lo, hi):
        calls.append(hi - lo)
        alive.append(sum(r() is not None for r in pieces))  # earlier pieces still held
        out = view[lo:hi]
        pieces.append(weakref.ref(out))
        return out

    pieces: list = []
    counted = LazyRows(95, 7, view.dtype, piece)
    write_checkpoint(path, SerialComm(), range(95), 95, {"model_hash": "x"},
                     {"P": counted, "w_in": np.ones((95, 2), np.float32)}, {})
    assert len(calls) == 10 and max(calls) == 10  # never materialised whole
    assert max(alive) == 0  # one piece at a time
    _, plain, _ = read_checkpoint(path, range(95), {"model_hash": "x"})
    assert np.array_equal(plain["P"], p)
    _, lazy, _ = read_checkpoint(path, range(20, 60), {"model_hash": "x"}, lazy=("P",))
    assert isinstance(lazy["P"], LazyRows) and isinstance(lazy["w_in"], np.ndarray)
    assert np.array_equal(lazy["P"][3:9], p[23:29])
    assert np.array_equal(rows_to_tiles(lazy["P"], 32), rows_to_tiles(p[20:60], 32))
