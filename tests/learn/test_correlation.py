"""The learning-curve metric and the bins it reads: the same bits however the neurons are split
(ranks) or blocked (memory)."""

from __future__ import annotations

import numpy as np

from tsn_mpi.learn import correlation
from tsn_mpi.simulate import rolling


def _plain_pearson(a, b):
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))


def test_pearson_matches_numpy_and_does_not_depend_on_the_column_split():
    g = np.random.default_rng(0)
    t = g.normal(size=(100, 50)).astype(np.float32)
    m = g.normal(size=(100, 50))
    m[:, 5] = 1.0
    got = correlation.pearson_per_neuron(t, m)
    assert np.allclose(got, _plain_pearson(t.astype(np.float64), m), rtol=1e-12, equal_nan=True)
    split = np.concatenate([correlation.pearson_per_neuron(t[:, a:b], m[:, a:b])
                            for a, b in ((0, 7), (7, 31), (31, 50))])  # fmt: skip
    assert np.array_equal(got, split, equal_nan=True)  # per-rank pieces: same bits
    assert np.isnan(got[5]) and np.isfinite(np.delete(got, 5)).all()
    mean, n_nan = correlation.mean_correlation(got)
    assert n_nan == 1 and abs(mean - np.nanmean(got)) < 1e-15


def test_bins_in_blocks_equal_one_piece(monkeypatch):
    g = np.random.default_rng(1)
    roll = g.normal(size=(13, 2, 45))
    counts = g.integers(1, 10, 13).astype(np.float64)
    ranges = np.array([[max(0, k - 2), min(9, k)] for k in range(13)])
    whole = rolling.bins_from_groups(roll, counts, ranges, 10)
    monkeypatch.setattr(rolling, "COLUMN_BLOCK", 4)
    assert np.array_equal(rolling.bins_from_groups(roll, counts, ranges, 10), whole)
    assert whole.shape == (2, 10, 45)
