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
