"""Default target plugin: a sinusoid of random phase around each neuron's mean current (§9.5).

A target plugin returns, for one task, the target current of every owned neuron at the learning
times ``t_m = stim_off + m*learn_every``, m = 1..n_learn (row m-1), shape (n_learn, n_owned)
float64.  The file-based plugins live in :mod:`tsn_mpi.network.target_files`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from tsn_mpi import rng
from tsn_mpi.errors import PluginError
from tsn_mpi.network.context import PluginContext


def target_steps(ctx: PluginContext) -> NDArray[np.int64]:
    """1-based step numbers ``ti`` of the target times: stim_off_step + m*learn_step, m >= 1."""
    d = ctx.derived
    return d.stim_off_step + d.learn_step * np.arange(1, d.n_learn + 1, dtype=np.int64)


def target_times(ctx: PluginContext) -> NDArray[np.float64]:
    """Target times t_m = stim_off + m*learn_every (ms), m = 1..n_learn."""
    sim, lr = ctx.cfg.simulation, ctx.cfg.learning
    return sim.stim_off + lr.learn_every * np.arange(1, ctx.derived.n_learn + 1, dtype=np.float64)


def bias(ctx: PluginContext, task: int) -> NDArray[np.float64]:
    """The bias added to every neuron's target at the target times, (n_learn,) (spec §9.5).

    - ``zero``: 0.
    - ``ou``: one Ornstein-Uhlenbeck series over the trial's n_steps steps, shared by all
      neurons, drawn from the stream (TARGET_BIAS, 0, task): b[0] = 0,
      b[k+1] = b[k] + bias_b*(bias_mu - b[k])*dt + bias_sigma*sqrt(dt)*N(0,1); the value at
      step ti (1-based) is b[ti-1].
    - ``ramping``: 0 before stim_off, then a linear ramp from 0 at stim_off to 0.25 at the end
      of the trial: 0.25*(ti - stim_off_step)/(n_steps - stim_off_step).  This is what the
      reference intends; its expression ``0.25/(Nsteps-Nstart)*[0:Nsteps-Nstart]`` wraps the
      range in a vector and does not evaluate (spec pitfall 25).
    """
    tg, d = ctx.cfg.targets, ctx.derived
    steps = target_steps(ctx)
    kind = tg.bias
    if kind == "zero":
        return np.zeros(d.n_learn)
    if kind == "ramping":
        span = d.n_steps - d.stim_off_step
        return 0.25 * (steps - d.stim_off_step) / span
    if kind == "ou":
        dt = ctx.cfg.simulation.dt
        last = int(steps[-1])  # the series is needed up to this (1-based) step
        noise = ctx.generator(rng.TARGET_BIAS, 0, task).standard_normal(d.n_steps - 1)
        noise = noise[: last - 1] * (tg.bias_sigma * math.sqrt(dt))
        rate, mu = tg.bias_b * dt, tg.bias_mu
        b = np.empty(last)
        b[0] = bk = 0.0
        for k in range(last - 1):
            bk = bk + rate * (mu - bk) + noise[k]
            b[k + 1] = bk
        return b[steps - 1]
    raise PluginError(f"targets.bias = {kind!r}: expected zero, ou or ramping")


def phases(ctx: PluginContext, task: int) -> NDArray[np.float64]:
    """Phase (ms) of each owned neuron's sinusoid: period*U(0,1) from stream (TARGET, gid, task)."""
    period = ctx.cfg.targets.period
    return np.array(
        [period * ctx.generator(rng.TARGET, gid, task).random() for gid in ctx.owned],
        dtype=np.float64,
    )


def sinusoid(ctx: PluginContext, task: int) -> NDArray[np.float64]:
    """Sinusoidal targets around the init mean current (spec §9.5), (n_learn, n_owned) float64.

    ``utarg[m-1, i] = amp*sin(2*pi*(t_m - phase_i)/period) + uavg_i + bias(t_m)`` with
    ``uavg = ctx.init["uavg"]`` (n_owned,).  A neuron's phase depends only on (seed, gid, task),
    so its targets do not depend on how neurons are split across ranks.  (The reference
    computes ``sin(2*pi*t/period - phase)`` with the phase in ms subtracted from radians; both
    give phases spread over the whole cycle — we use the formula of spec §9.5.)
    """
    uavg = ctx.init.get("uavg")
    if uavg is None:
        raise PluginError(
            "targets.sinusoid needs ctx.init['uavg'] (mean current of the init trial)"
        )
    uavg = np.asarray(uavg, dtype=np.float64)
    if uavg.shape != (len(ctx.owned),):
        raise PluginError(
            f"targets.sinusoid: ctx.init['uavg'] has shape {uavg.shape}, expected "
            f"({len(ctx.owned)},) (one value per owned neuron)"
        )
    tg = ctx.cfg.targets
    t = target_times(ctx)
    ph = phases(ctx, task)
    arg = (2.0 * np.pi / tg.period) * (t[:, None] - ph[None, :])
    return tg.amp * np.sin(arg) + uavg[None, :] + bias(ctx, task)[:, None]
