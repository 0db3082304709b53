"""The scalars every time step reads, derived once for both backends (spec §3.3).

:func:`step_constants` turns a config, its :class:`~tsn_mpi.config.derived.Derived` and a
rank's place in the network into one named tuple.  The CPU loop receives the tuple itself
(numba compiles named tuples, so the kernels read ``c.dt``, ``c.stim_off_step``); the GPU
kernels receive it as two small device arrays (:func:`pack`) indexed by the ``C_*`` / ``K_*``
positions below, which are generated from the field names so that the two can never drift.
"""

from __future__ import annotations

from typing import NamedTuple, get_type_hints

import numpy as np

from tsn_mpi.simulate.trial import MODE_NAMES

MODE_INIT, MODE_TRAIN, MODE_TRAIN_TEST, MODE_TEST = range(len(MODE_NAMES))
MODES = dict(zip(MODE_NAMES, (MODE_INIT, MODE_TRAIN, MODE_TRAIN_TEST, MODE_TEST), strict=True))
NOISE_NONE, NOISE_VOLTAGE, NOISE_CURRENT = 0, 1, 2


class StepConstants(NamedTuple):
    """What a step needs besides the state: times in ms, step numbers 1-based."""

    # float64
    dt: float
    refrac: float  # absolute refractory period (ms)
    tau_bal_e: float  # balanced-input filter time constants (ms)
    tau_bal_i: float
    inv_tau_ff: float  # 1/tau of the feed-forward traces
    ou_mu: float  # online OU stimulus (zeros when the stimulus is stored)
    ou_b: float
    ou_sigma: float
    # int64
    stim_on_step: int
    stim_off_step: int
    u0_skip_steps: int  # init trial: steps before the current statistics start
    max_times: int  # spike times kept per recorded neuron
    u0_ncells: int  # init trial: neurons (by gid) whose current std is measured
    n_steps: int  # steps of a trial
    noise: int  # NOISE_NONE | NOISE_VOLTAGE | NOISE_CURRENT
    stim_online: int  # 1: OU stimulus generated per step; 0: stored array
    n_ff: int  # feed-forward inputs
    gid0: int  # this rank's first global id
    n_owned: int  # neurons this rank owns
    model: int  # built-in neuron model id (models.builtin), or -1 for a plugin
    n_roll_vars: int  # rolling-average variables recorded (0 when no neuron is)


FLOAT_FIELDS = StepConstants._fields[:8]
INT_FIELDS = StepConstants._fields[8:]
_TYPES = get_type_hints(StepConstants)
assert all(_TYPES[f] is float for f in FLOAT_FIELDS), "float fields first"
assert all(_TYPES[f] is int for f in INT_FIELDS)

# positions in pack()'s arrays (the GPU kernels index with these)
(K_DT, K_REFRAC, K_TBE, K_TBI, K_ITFF, K_OUMU, K_OUB, K_OUSIG) = range(len(FLOAT_FIELDS))
(C_STIM_ON, C_STIM_OFF, C_U0SKIP, C_MAXT, C_U0N, C_NSTEPS, C_NOISE, C_ONLINE, C_NFF, C_GID0,
 C_N, C_MODEL, C_NVARS) = range(len(INT_FIELDS))  # fmt: skip


def step_constants(
    cfg,
    d,
    *,
    gid0: int,
    n_owned: int,
    model: int,
    has_noise: bool,
    ou: tuple[float, float, float] | None,
    inv_tau_ff: float,
    n_roll_vars: int = 0,
) -> StepConstants:
    """The constants of a rank's time loop.

    ``ou``: (mu, b, sigma) of the online OU stimulus, or None when the stimulus is stored.
    ``has_noise``: False when every neuron's noise sigma is 0 (the GPU skips the draws; the
    CPU loop decides per neuron and ignores NOISE_NONE).
    """
    if not has_noise:
        noise = NOISE_NONE
    elif cfg.neuron.noise_model == "current":
        noise = NOISE_CURRENT
    else:
        noise = NOISE_VOLTAGE
    mu, b, sigma = ou if ou is not None else (0.0, 0.0, 0.0)
    return StepConstants(
        dt=float(cfg.simulation.dt), refrac=float(cfg.neuron.refrac),
        tau_bal_e=float(cfg.neuron.tau_bal_e), tau_bal_i=float(cfg.neuron.tau_bal_i),
        inv_tau_ff=float(inv_tau_ff), ou_mu=float(mu), ou_b=float(b), ou_sigma=float(sigma),
        stim_on_step=int(d.stim_on_step), stim_off_step=int(d.stim_off_step),
        u0_skip_steps=int(d.u0_skip_steps), max_times=int(d.max_times),
        u0_ncells=int(d.u0_ncells), n_steps=int(d.n_steps), noise=noise,
        stim_online=int(ou is not None), n_ff=int(d.l_ff), gid0=int(gid0),
        n_owned=int(n_owned), model=int(model), n_roll_vars=int(n_roll_vars),
    )  # fmt: skip


def pack(c: StepConstants) -> tuple[np.ndarray, np.ndarray]:
    """``(ints, floats)``: the constants as int64 and float64 arrays (GPU kernel arguments)."""
    ints = np.array([getattr(c, f) for f in INT_FIELDS], np.int64)
    floats = np.array([getattr(c, f) for f in FLOAT_FIELDS], np.float64)
    return ints, floats
