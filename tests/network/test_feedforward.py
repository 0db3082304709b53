"""Feed-forward OU rates (spec §9.4 genRateX) and the task schedule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tsn_mpi import rng
from tsn_mpi.config import derive, from_dict
from tsn_mpi.network.context import PluginContext
from tsn_mpi.network.feedforward import moving_average, ou_rates
from tsn_mpi.network.tasks import round_robin


def make_ctx(l_ff: int = 4, owned: range = range(100), duration: float = 1000.0, **ff):
    cfg = from_dict(
        {
            "network": {"n_cells": 100},
            "plastic": {"l_ff": l_ff},
            "simulation": {"train_duration": duration},
            "feedforward": ff,
        }
    )
    return PluginContext(cfg, derive(cfg), owned, Path("."))


def test_shape_and_range():
    ctx = make_ctx()
    p = ou_rates(ctx)
    assert p.shape == (ctx.derived.n_steps - ctx.derived.stim_off_step, 4) == (10000, 4)
    assert p.dtype == np.float64
    assert np.all(p >= 0)
    # rates of ~5 Hz -> ~5e-4 spikes per 0.1-ms step
    assert 2e-4 < p.mean() < 8e-4


def test_no_feedforward_units():
    p = ou_rates(make_ctx(l_ff=0))
    assert p.shape == (10000, 0)


def test_same_on_every_rank():
    np.testing.assert_array_equal(ou_rates(make_ctx()), ou_rates(make_ctx(owned=range(40, 60))))


def test_matches_reference_recursion():
    ctx = make_ctx(l_ff=3, duration=100.0, mu=8.0, b=0.01, sigma=2.0, smooth_steps=50)
    dt, n, lx = 0.1, 1000, 3
    z = ctx.generator(rng.FF_RATES, 0, 0).standard_normal((n - 1, lx))
    x = np.empty((n, lx))
    x[0] = 8.0
    for k in range(n - 1):
        x[k + 1] = x[k] + 0.01 * (8.0 - x[k]) * dt + 2.0 * math.sqrt(dt) * z[k]
    avg = np.array([x[max(k - 50, 0) : min(k + 50, n - 1) + 1].mean(axis=0) for k in range(n)])
    want = np.clip(avg * dt / 1000, 0, None)
    np.testing.assert_allclose(ou_rates(ctx), want, rtol=1e-10, atol=1e-16)


def test_clamped_at_zero():
    p = ou_rates(make_ctx(mu=0.0, sigma=5.0, smooth_steps=0))
    assert p.min() == 0.0
    assert 0.3 < np.mean(p == 0) < 0.7


def test_smoothing_reduces_fluctuations():
    rough = ou_rates(make_ctx(mu=20.0, sigma=5.0, smooth_steps=0))
    smooth = ou_rates(make_ctx(mu=20.0, sigma=5.0, smooth_steps=500))
    assert np.abs(np.diff(smooth, axis=0)).mean() < 0.05 * np.abs(np.diff(rough, axis=0)).mean()


def test_moving_average_clips_ends():
    x = np.arange(6, dtype=float)[:, None]
    np.testing.assert_allclose(moving_average(x, 1)[:, 0], [0.5, 1, 2, 3, 4, 4.5])
    np.testing.assert_allclose(moving_average(x, 0), x)
    np.testing.assert_allclose(moving_average(x, 10)[:, 0], 2.5)


def test_round_robin_matches_reference():
    # reference: task = iloop % ntasks + 1 (1-based)
    for ntasks in (1, 2, 3, 5):
        for loop in range(1, 12):
            assert round_robin(loop, ntasks) == (loop % ntasks + 1) - 1
    assert [round_robin(loop, 2) for loop in (1, 2, 3, 4)] == [1, 0, 1, 0]
    assert round_robin(7, 1) == 0


def test_round_robin_rejects_bad_arguments():
    with pytest.raises(ValueError, match="1-based"):
        round_robin(0, 2)
    with pytest.raises(ValueError, match="ntasks"):
        round_robin(1, 0)
