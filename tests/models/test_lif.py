"""LIF model (spec §9.6 first row): firing rate under constant drive vs the analytic formula."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import tsn_mpi.config as config
from tsn_mpi.models.lif import lif, lif_init_v, lif_step
from tsn_mpi.network.context import PluginContext

DT = 0.1


def make_ctx(n_cells: int = 40, owned: range | None = None, **neuron) -> PluginContext:
    cfg = config.from_dict({"network": {"n_cells": n_cells}, "neuron": neuron})
    return PluginContext(cfg, config.derive(cfg), owned or range(0, n_cells), Path("."))


def run_neuron(step, params, state, drive, n_steps, refrac, v0=0.0, dt=DT):
    """The loop's rule in plain Python: step only when t > last_spike + refrac (float64)."""
    v, last_spike, spikes = v0, -100.0, []
    for ti in range(1, n_steps + 1):
        t = dt * ti
        if t > last_spike + refrac:
            d = drive(t) if callable(drive) else drive
            v, spiked = step(params, state, 0, v, d, dt)
            if spiked:
                last_spike = t
                spikes.append(t)
    return np.array(spikes)


@pytest.mark.parametrize("tau", [10.0, 20.0])
@pytest.mark.parametrize("drive", [1.2, 1.5, 2.0, 4.0])
@pytest.mark.parametrize("refrac", [0.0, 2.0])
def test_rate_matches_analytic(tau: float, drive: float, refrac: float) -> None:
    thresh = 1.0
    params = np.array([[thresh, 1.0 / tau, 0.0]])
    duration = 2000.0
    spikes = run_neuron(lif_step, params, np.zeros((1, 0)), drive, int(duration / DT), refrac)
    assert spikes.size > 10
    isi = np.diff(spikes)
    period = tau * math.log(drive / (drive - thresh)) + refrac
    # forward Euler with step dt: each interval is off by at most a couple of steps plus the
    # Euler error of the exponential (relative ~ dt/(2 tau))
    tol = 2 * DT + period * DT / tau
    assert np.all(np.abs(isi - period) <= tol)
    rate = 1000.0 * isi.size / (spikes[-1] - spikes[0])
    assert rate == pytest.approx(1000.0 / period, abs=1000.0 * tol / period**2 + 1e-9)


def test_subthreshold_drive_never_spikes() -> None:
    params = np.array([[1.0, 0.1, 0.0]])
    assert run_neuron(lif_step, params, np.zeros((1, 0)), 0.99, 20000, 0.1).size == 0


def test_voltage_converges_to_drive() -> None:
    params = np.array([[1.0, 0.1, 0.0]])
    v = 0.0
    for _ in range(2000):
        v, spiked = lif_step(params, np.zeros((1, 0)), 0, v, 0.7, DT)
        assert not spiked
    assert v == pytest.approx(0.7, rel=1e-6)


def test_reset_and_threshold_are_strict() -> None:
    params = np.array([[1.0, 1.0, -0.25]])  # invtau*dt = 0.1
    state = np.zeros((1, 0))
    # v lands exactly on threshold: no spike (v > thresh is strict)
    v, spiked = lif_step(params, state, 0, 1.0, 1.0, DT)
    assert (v, spiked) == (1.0, False)
    v, spiked = lif_step(params, state, 0, 1.0, 2.0, DT)
    assert spiked and v == -0.25


def test_init_v_distribution() -> None:
    ctx = make_ctx(n_cells=40, owned=range(18, 22), thresh_e=1.0, thresh_i=2.0, v_reset=-0.5)
    cell = lif(ctx)
    assert cell.model_id == 0 and cell.params.shape == (4, 3)
    rng = np.random.default_rng(0)
    z = rng.standard_normal(200_000)
    for lid, thresh in ((0, 1.0), (3, 2.0)):  # gid 18 excitatory, gid 21 inhibitory
        v = np.array([lif_init_v(cell.params, lid, zi) for zi in z[:50_000]])
        sd = thresh - (-0.5)
        assert v.mean() == pytest.approx(-0.5, abs=4 * sd / math.sqrt(v.size))
        assert v.std() == pytest.approx(sd, rel=0.02)
        assert lif_init_v(cell.params, lid, 1.0) == -0.5 + sd


def test_population_parameters() -> None:
    ctx = make_ctx(n_cells=40, tau_mem_e=10.0, tau_mem_i=20.0, thresh_e=1.0, thresh_i=1.5)
    cell = lif(ctx)
    assert np.all(cell.params[:20, 0] == 1.0) and np.all(cell.params[20:, 0] == 1.5)
    assert np.all(cell.params[:20, 1] == 0.1) and np.all(cell.params[20:, 1] == 0.05)
    cell.check(40)
