"""Default feed-forward rate plugin: smoothed Ornstein-Uhlenbeck rates (spec §9.4, genRateX).

The LX feed-forward Poisson units fire only after stim_off; row k of the returned array is the
spike probability of each unit at step ``stim_off_step + k + 1`` (1-based step numbers, the
reference's ``rateX[ti - stim_off_steps, c]``).  The array depends only on the seed, so every
rank computes the same one.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from tsn_mpi import rng
from tsn_mpi.network.context import PluginContext


def ou_rates(ctx: PluginContext) -> NDArray[np.float64]:
    """Per-step spike probabilities of the feed-forward units, (n_ff_steps, LX) float64.

    n_ff_steps = n_steps - stim_off_step.  All rates start at ``mu`` (Hz) and follow
    x[k+1] = x[k] + b*(mu - x[k])*dt + sigma*sqrt(dt)*N(0,1) (LX draws per step from the shared
    stream (FF_RATES, 0, 0)); then a centred moving average over [k-w, k+w] clipped at the ends
    (w = smooth_steps), times dt/1000 (Hz -> probability per step), clamped to >= 0.
    """
    ff, dt = ctx.cfg.feedforward, ctx.cfg.simulation.dt
    n = ctx.derived.n_steps - ctx.derived.stim_off_step
    lx = ctx.derived.l_ff
    if lx == 0 or n <= 0:
        return np.zeros((max(n, 0), lx))
    noise = ctx.generator(rng.FF_RATES, 0, 0).standard_normal((n - 1, lx))
    noise *= ff.sigma * math.sqrt(dt)
    x = np.empty((n, lx))
    x[0] = ff.mu
    rate = ff.b * dt
    for k in range(n - 1):
        x[k + 1] = x[k] + rate * (ff.mu - x[k]) + noise[k]
    rates = moving_average(x, ff.smooth_steps)
    rates *= dt / 1000.0
    np.maximum(rates, 0.0, out=rates)
    return rates


def moving_average(x: NDArray[np.float64], half_width: int) -> NDArray[np.float64]:
    """Centred mean of rows [k-w, k+w] clipped to [0, n-1], for every row k of x (n, m)."""
    n = x.shape[0]
    csum = np.zeros((n + 1,) + x.shape[1:])
    np.cumsum(x, axis=0, out=csum[1:])
    k = np.arange(n)
    lo = np.maximum(k - half_width, 0)
    hi = np.minimum(k + half_width + 1, n)
    count = (hi - lo).astype(np.float64).reshape((n,) + (1,) * (x.ndim - 1))
    return (csum[hi] - csum[lo]) / count
