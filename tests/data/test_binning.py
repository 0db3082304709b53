"""Binning spike trains into trial groups, smoothing, the learning grid and model spikes."""

from __future__ import annotations

import numpy as np
import pytest

from tsn_mpi.data import binning
from tsn_mpi.errors import ConfigError


def naive_counts(trains, t0, bin_ms, n_bins, group, n_groups):
    out = np.zeros((len(trains), n_groups, n_bins), np.int64)
    for u, s in enumerate(trains):
        for i, a in enumerate(t0):
            if group[i] < 0:
                continue
            for b in range(n_bins):
                lo, hi = a + b * bin_ms / 1000, a + (b + 1) * bin_ms / 1000
                out[u, group[i], b] += np.count_nonzero((s >= lo) & (s < hi))
    return out


def test_group_counts_match_a_naive_count_with_overlapping_windows():
    g = np.random.default_rng(3)
    trains = [np.sort(g.uniform(0, 10, n)) for n in (0, 5, 80, 300)]
    indptr = np.concatenate(([0], np.cumsum([t.size for t in trains])))
    times = np.concatenate(trains)
    t0 = np.array([4.0, 0.5, 2.05, 2.3, 7.9])  # unsorted; 2.05 and 2.3 overlap (0.5-s span)
    group = np.array([0, 1, 1, -1, 2])
    got = binning.group_counts(indptr, times, t0, 25.0, 20, group, 3)
    assert np.array_equal(got, naive_counts(trains, t0, 25.0, 20, group, 3))


def test_a_spike_on_a_bin_edge_goes_to_the_later_bin():
    times = np.array([1.0, 1.01, 1.019, 1.02 - 1e-12])  # the last one: an edge to rounding
    got = binning.group_counts(np.array([0, 4]), times, np.array([1.0]), 10.0, 3,
                               np.array([0]), 1)  # fmt: skip
    assert got[0, 0].tolist() == [1, 2, 1]


def test_bin_width_must_divide_the_window():
    assert binning.n_bins_of(2000.0, 10.0, "x") == 200
    with pytest.raises(ConfigError, match="does not divide the trial window of 2000 ms"):
        binning.n_bins_of(2000.0, 30.0, "rec.nwb")


@pytest.mark.parametrize("kind, width", [("gaussian", 20.0), ("boxcar", 50.0), ("none", 0.0)])
def test_smoothing_keeps_a_constant_constant_at_the_edges(kind, width):
    k = binning.kernel(kind, width, 10.0)
    x = np.full((2, 3, 40), 7.0)
    assert np.allclose(binning.smooth(x, k), 7.0)


def test_gaussian_kernel_width_and_smoothing_of_a_spike():
    k = binning.kernel("gaussian", 20.0, 10.0)
    assert k.size == 2 * 6 + 1 and k[6] == 1.0 and np.isclose(k[8], np.exp(-0.5))
    x = np.zeros(41)
    x[20] = 1.0
    y = binning.smooth(x, k)
    assert np.isclose(y.sum(), 1.0) and np.argmax(y) == 20 and np.allclose(y[10:31], y[30:9:-1])
    assert binning.kernel("boxcar", 50.0, 10.0).size == 5
    with pytest.raises(ConfigError, match="smooth_kernel"):
        binning.kernel("triangle", 10.0, 10.0)


def test_learning_grid_averages_or_repeats_bins():
    r = np.arange(12, dtype=float).reshape(1, 12)
    assert binning.to_learn_grid(r, 10.0, 20.0).tolist() == [[0.5, 2.5, 4.5, 6.5, 8.5, 10.5]]
    assert binning.to_learn_grid(r[:, :3], 20.0, 10.0).tolist() == [[0, 0, 1, 1, 2, 2]]
    with pytest.raises(ConfigError, match="multiple"):
        binning.to_learn_grid(r, 10.0, 15.0)


def test_model_counts_bin_the_test_phase_spike_steps():
    steps = np.array([[5001, 5100, 5101, 7000, 0, 0], [4000, 5000, 0, 0, 0, 0]], np.int32)
    got = binning.model_counts(steps, 0.1, 500.0, 10.0, 20)  # window [500, 700) ms
    assert got.shape == (2, 20)
    assert got[0, 0] == 1 and got[0, 1] == 2 and got[0].sum() == 3  # 700 ms is outside
    assert got[1, 0] == 1 and got[1].sum() == 1  # 400 ms is before the window


def test_trial_spikes_are_relative_to_the_window():
    indptr = np.array([0, 3, 5])
    times = np.array([0.9, 1.05, 1.3, 1.0, 2.0])
    ptr, t = binning.trial_spikes(indptr, times, np.array([1, 0]), 1.0, 500.0)
    assert ptr.tolist() == [0, 1, 3] and np.allclose(t, [0.0, 50.0, 300.0])
