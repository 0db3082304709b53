"""Counter-based streams: statistics and independence from how neurons are split."""

from __future__ import annotations

import numpy as np
from numba import njit

from tsn_mpi import rng


@njit(cache=True)
def _normals(states, n):
    out = np.empty((states.size, n))
    for i in range(states.size):
        for k in range(n):
            out[i, k] = rng.normal(states, i)
    return out


@njit(cache=True)
def _uniforms(states, n):
    out = np.empty((states.size, n))
    for i in range(states.size):
        for k in range(n):
            out[i, k] = rng.uniform(states, i)
    return out


def test_normal_and_uniform_moments():
    s = rng.stream_states(1, rng.NOISE, np.arange(8, dtype=np.int64), 0)
    z = _normals(s, 20000).ravel()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(z**4) - 3) < 0.1
    u = _uniforms(rng.stream_states(2, rng.NOISE, np.arange(8, dtype=np.int64), 0), 20000)
    assert u.min() > 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01


def test_streams_depend_only_on_key():
    a = rng.stream_states(7, rng.STATIC, np.arange(100, dtype=np.int64), 3)
    b = rng.stream_states(7, rng.STATIC, np.arange(40, 60, dtype=np.int64), 3)
    assert np.array_equal(a[40:60], b)
    assert len(set(a.tolist())) == 100
    assert not np.array_equal(a, rng.stream_states(8, rng.STATIC, np.arange(100), 3))
    assert not np.array_equal(a, rng.stream_states(7, rng.PLASTIC, np.arange(100), 3))


def test_neighbouring_streams_are_uncorrelated():
    z = _normals(rng.stream_states(1, rng.NOISE, np.arange(50, dtype=np.int64), 0), 4000)
    c = np.corrcoef(z)
    off = c[~np.eye(50, dtype=bool)]
    assert np.abs(off).max() < 0.08


def test_normal_matches_the_gaussian_distribution_including_the_tails():
    """Binned counts of 4M ziggurat draws against the exact N(0,1) probabilities (chi-square),
    and the tail beyond the ziggurat's base strip (|z| > 3.654) at its exact rate."""
    from math import erf, sqrt

    z = _normals(rng.stream_states(3, rng.STIMULUS, np.arange(4, dtype=np.int64), 0),
                 1_000_000).ravel()
    edges = np.concatenate(([-np.inf], np.linspace(-4.5, 4.5, 91), [np.inf]))
    counts, _ = np.histogram(z, bins=edges)
    cdf = np.array([0.5 * (1 + erf(e / sqrt(2))) if np.isfinite(e) else float(e > 0)
                    for e in edges])
    expected = np.diff(cdf) * z.size
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = counts.size - 1
    assert chi2 < dof + 5 * sqrt(2 * dof), chi2  # ~5 sigma for a correct sampler
    p_tail = 1 - erf(rng.ZIG_TAIL / sqrt(2))
    n_tail = int(np.count_nonzero(np.abs(z) > rng.ZIG_TAIL))
    assert abs(n_tail - p_tail * z.size) < 5 * sqrt(p_tail * z.size), n_tail
    assert abs(np.mean(z**3)) < 0.01 and abs(np.mean(z**6) - 15) < 0.3


def test_ziggurat_layers_have_equal_area():
    x, area = rng.ZIG_X, rng.ZIG_AREA
    f = np.exp(-0.5 * x**2)
    # rectangle k >= 1 spans [0, x[k]] x [f(x[k]), f(x[k+1])]; the last one reaches the top
    rect = x[1:-1] * (f[2:] - f[1:-1])
    assert np.allclose(rect, area, rtol=1e-6)
    assert x[-1] == 0.0 and abs(np.exp(-0.5 * x[-2] ** 2) + area / x[-2] - 1) < 1e-6
