"""Packed upper-triangle index math and the rows <-> AoSoA tiles layouts."""

from __future__ import annotations

import numpy as np
import pytest

from tsn_mpi.learn import packed


def test_packed_index_is_column_by_column_upper():
    n = 7
    a, b = packed.upper_indices(n)
    assert packed.n_packed(n) == a.size == 28
    assert np.all(a <= b)
    for idx, (ai, bi) in enumerate(zip(a, b, strict=True)):
        assert packed.packed_index(ai, bi) == idx
        assert packed.packed_index(bi, ai) == idx  # swapped arguments
    assert packed.packed_index(0, 0) == 0
    assert packed.packed_index(0, 1) == 1
    assert packed.packed_index(1, 1) == 2
    assert packed.packed_index(2, 3) == 2 + 3 * 4 // 2


def test_n_from_packed():
    for n in range(0, 40):
        assert packed.n_from_packed(packed.n_packed(n)) == n
    with pytest.raises(ValueError):
        packed.n_from_packed(5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pack_unpack_round_trip(dtype):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 6, 6)).astype(dtype)
    sym = a + a.transpose(0, 2, 1)
    rows = packed.pack_rows(sym)
    assert rows.shape == (5, 21) and rows.dtype == dtype
    np.testing.assert_array_equal(packed.unpack_rows(rows), sym)
    assert rows[2, packed.packed_index(1, 4)] == sym[2, 1, 4]


def test_symmetrize_full_rows_takes_upper():
    rng = np.random.default_rng(1)
    full = rng.normal(size=(3, 4, 4))
    out = packed.symmetrize_full_rows(full.reshape(3, 16), 4)
    iu = np.triu_indices(4)
    np.testing.assert_array_equal(out[:, iu[0], iu[1]], full[:, iu[0], iu[1]])
    np.testing.assert_array_equal(out, out.transpose(0, 2, 1))


@pytest.mark.parametrize("n_owned", [1, 31, 32, 70])
def test_rows_tiles_round_trip(n_owned):
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(n_owned, 10))
    tiles = packed.rows_to_tiles(rows)
    w = packed.TILE_W
    assert tiles.shape == (packed.n_tiles(n_owned), 10, w)
    for lid in (0, n_owned // 2, n_owned - 1):
        np.testing.assert_array_equal(tiles[lid // w, :, lid % w], rows[lid])
    pad = tiles.reshape(-1, 10, w).transpose(0, 2, 1).reshape(-1, 10)[n_owned:]
    assert not pad.any()
    np.testing.assert_array_equal(packed.tiles_to_rows(tiles, n_owned), rows)


def test_rows_to_tiles_dtype_and_width():
    rows = np.arange(30.0).reshape(5, 6)
    tiles = packed.rows_to_tiles(rows, w=4, dtype=np.float16)
    assert tiles.shape == (2, 6, 4) and tiles.dtype == np.float16
    np.testing.assert_array_equal(packed.tiles_to_rows(tiles, 5), rows.astype(np.float16))
    with pytest.raises(ValueError):
        packed.tiles_to_rows(tiles, 9)


@pytest.mark.parametrize("n_tiles", [1, 40])  # 40 tiles of float64 take the huge-page path
def test_alloc_tiles_is_zeroed_and_writable(n_tiles):
    tiles = packed.alloc_tiles(n_tiles, 4095, np.float64)
    assert tiles.shape == (n_tiles, 4095, packed.TILE_W) and tiles.dtype == np.float64
    assert tiles.flags.c_contiguous and tiles.flags.writeable
    assert not tiles.any()
    tiles[-1, -1, -1] = 2.0
    assert tiles.sum() == 2.0
