"""Sinusoid target plugin and its bias series (spec §9.5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tsn_mpi.config import derive, from_dict
from tsn_mpi.errors import PluginError
from tsn_mpi.network import targets
from tsn_mpi.network.context import PluginContext

N = 100


def make_ctx(owned: range = range(N), uavg=None, **targets_keys) -> PluginContext:
    cfg = from_dict(
        {
            "network": {"n_cells": N},
            "simulation": {"train_duration": 1000.0},
            "targets": {"ntasks": 2, **targets_keys},
        }
    )
    if uavg is None:
        uavg = np.linspace(-0.5, 0.5, N)[owned.start : owned.stop]
    return PluginContext(cfg, derive(cfg), owned, Path("."), {"uavg": uavg, "ustd": 0.1})


def test_shape_mean_and_amplitude():
    ctx = make_ctx()
    u = targets.sinusoid(ctx, 0)
    assert u.shape == (ctx.derived.n_learn, N) == (100, N)
    assert u.dtype == np.float64
    # one full period (1000 ms) sampled at 100 points: the mean is uavg, the amplitude 0.5
    np.testing.assert_allclose(u.mean(axis=0), ctx.init["uavg"], atol=1e-12)
    np.testing.assert_allclose(u.max(axis=0) - ctx.init["uavg"], 0.5, atol=2e-3)
    np.testing.assert_allclose(u.min(axis=0) - ctx.init["uavg"], -0.5, atol=2e-3)


def test_formula_and_phase_stream():
    ctx = make_ctx(amp=0.7, period=400.0)
    u = targets.sinusoid(ctx, 1)
    gid = 42
    phase = 400.0 * ctx.generator(targets.rng.TARGET, gid, 1).random()
    t = 1000.0 + 10.0 * np.arange(1, 101)
    want = 0.7 * np.sin(2 * np.pi * (t - phase) / 400.0) + ctx.init["uavg"][gid]
    np.testing.assert_allclose(u[:, gid], want, atol=1e-12)


def test_independent_of_owned_split():
    full = targets.sinusoid(make_ctx(bias="ou"), 1)
    part = targets.sinusoid(make_ctx(range(37, 64), bias="ou"), 1)
    np.testing.assert_array_equal(part, full[:, 37:64])
    empty = targets.sinusoid(make_ctx(range(50, 50)), 0)
    assert empty.shape == (100, 0)


def test_tasks_differ():
    ctx = make_ctx()
    a, b = targets.sinusoid(ctx, 0), targets.sinusoid(ctx, 1)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, targets.sinusoid(ctx, 0))  # deterministic


def test_phases_are_spread():
    ph = targets.phases(make_ctx(period=1000.0), 0)
    assert ph.min() >= 0 and ph.max() < 1000.0
    assert ph.std() > 200  # ~289 for a uniform phase


def test_zero_bias():
    assert np.all(targets.bias(make_ctx(), 0) == 0)


def test_ramping_bias():
    ctx = make_ctx(bias="ramping")
    b = targets.bias(ctx, 0)
    np.testing.assert_allclose(b, 0.25 * np.arange(1, 101) / 100)
    assert b[-1] == pytest.approx(0.25)
    u = targets.sinusoid(ctx, 0) - targets.sinusoid(make_ctx(), 0)
    np.testing.assert_allclose(u, np.repeat(b[:, None], N, axis=1), atol=1e-12)


def test_ou_bias_shape_and_statistics():
    ctx = make_ctx(bias="ou", bias_mu=0.3, bias_b=0.05, bias_sigma=0.02)
    b = targets.bias(ctx, 0)
    assert b.shape == (100,)
    assert np.all(np.isfinite(b))
    assert not np.allclose(b, b[0])
    np.testing.assert_array_equal(b, targets.bias(ctx, 0))
    assert not np.allclose(b, targets.bias(ctx, 1))  # one series per task
    # tau = 20 ms, 1000 ms after 1000 ms of relaxation from 0: mean ~ mu, std ~ 0.02*sqrt(10)
    assert abs(b.mean() - 0.3) < 0.15
    assert 0.01 < b.std() < 0.2
    # the same shift for every neuron
    u = targets.sinusoid(ctx, 0) - targets.sinusoid(make_ctx(), 0)
    np.testing.assert_allclose(u, np.repeat(b[:, None], N, axis=1), atol=1e-12)


def test_ou_bias_recursion():
    ctx = make_ctx(bias="ou", bias_mu=0.1, bias_b=0.01, bias_sigma=0.05)
    d, dt = ctx.derived, 0.1
    z = ctx.generator(targets.rng.TARGET_BIAS, 0, 0).standard_normal(d.n_steps - 1)
    series = np.zeros(d.n_steps)
    for k in range(d.n_steps - 1):
        series[k + 1] = series[k] + 0.01 * (0.1 - series[k]) * dt + 0.05 * np.sqrt(dt) * z[k]
    steps = d.stim_off_step + d.learn_step * np.arange(1, d.n_learn + 1)
    np.testing.assert_allclose(targets.bias(ctx, 0), series[steps - 1], atol=1e-12)


def test_missing_or_wrong_uavg():
    cfg = from_dict({"network": {"n_cells": N}})
    ctx = PluginContext(cfg, derive(cfg), range(N), Path("."))
    with pytest.raises(PluginError, match="uavg"):
        targets.sinusoid(ctx, 0)
    with pytest.raises(PluginError, match=r"shape \(3,\)"):
        targets.sinusoid(make_ctx(uavg=np.zeros(3)), 0)
