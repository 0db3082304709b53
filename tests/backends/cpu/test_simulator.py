"""Simulator set-up details that the learners and checkpoints rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsn_mpi.backends.cpu.simulator import CpuSimulator
from tsn_mpi.comm import SerialComm
from tsn_mpi.config import derive, from_dict
from tsn_mpi.models.lif import lif
from tsn_mpi.network.build import Network, build_plastic
from tsn_mpi.network.context import PluginContext
from tsn_mpi.network.stimulus import OnlineOU


def _sim(mode: str, owned: range, n: int = 400, stim=None,
         extra: dict | None = None) -> CpuSimulator:
    cfg = from_dict({"network": {"n_cells": n, "p_ee": 0.1}, "learning": {"mode": mode},
                     **(extra or {})})  # fmt: skip
    d = derive(cfg)
    ctx = PluginContext(cfg, d, owned, Path("."), {"ns": np.zeros(n, np.int64)})
    k = len(owned)
    no_static = (np.zeros(k + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint8),
                 np.zeros(4, np.float32))  # not needed for what is checked here
    pl_pre, w_in, w_ff = build_plastic(ctx)
    stim = OnlineOU(0, 1, 0) if stim is None else stim
    net = Network(n, owned, *no_static, pl_pre, w_in, w_ff,
                  np.zeros((1, d.n_learn, k), np.float32), stim,
                  np.zeros((d.n_steps - d.stim_off_step, 0)), st_by_population=True)
    return CpuSimulator(cfg, d, net, lif(ctx), SerialComm(), cfg.neuron.tau_plas, 0.0)


def test_small_mode_evaluates_every_trace_so_history_rows_are_rank_independent():
    """Small mode checkpoints rank 0's history rows; a rank resuming on another partition
    reads them at its own plastic inputs, so every rank must fill every entry."""
    full = _sim("small", range(0, 400))
    part = _sim("small", range(0, 40))  # a rank owning 40 neurons
    assert np.array_equal(part.needed, np.arange(400)) and np.array_equal(full.needed, part.needed)
    fast = _sim("fast", range(0, 40))
    assert fast.needed.size < 400  # fast mode: only the plastic inputs of the owned neurons


def test_online_ou_stimulus_equals_its_precomputed_table():
    """The OU stimulus drawn inside the loop and the same process tabulated by ``ou_stimulus``
    (memory_per_neuron.py times one against the other) drive the neurons identically."""
    from tsn_mpi import rng
    from tsn_mpi.backends.cpu.loop import ou_stimulus

    extra = {"simulation": {"stim_on": 2.0, "stim_off": 30.0, "train_duration": 40.0,
                            "u0_skip_time": 1.0},
             "stimulus": {"mu": 0.5, "b": 0.2, "sigma": 2.0}}  # fmt: skip
    online = _sim("fast", range(0, 400), extra=extra, stim=OnlineOU(0.5, 0.2, 2.0))
    cfg, d = online.cfg, online.d
    seeds = rng.stream_states(cfg.run.seed, rng.STIMULUS, np.arange(400, dtype=np.int64), 0)
    table = ou_stimulus(seeds, d.n_stim_steps, 0.5, 0.2, 2.0, cfg.simulation.dt)
    assert np.abs(table).max() > 1.0  # a real process, not zeros
    tabulated = _sim("fast", range(0, 400), extra=extra, stim=table[None])
    assert not tabulated.stim_online and online.stim_online
    counts = []
    for sim in (online, tabulated):
        sim.start_trial("train", 1, 0, record_cols=np.arange(400))
        sim.advance(1, d.n_steps)
        counts.append(sim.finish_trial().ns)
    assert counts[0].sum() > 0 and np.array_equal(counts[0], counts[1])
    quiet = _sim("fast", range(0, 400), extra=extra, stim=np.zeros_like(table)[None])
    quiet.start_trial("train", 1, 0)
    quiet.advance(1, d.n_steps)
    assert not np.array_equal(quiet.finish_trial().ns, counts[0])  # the stimulus matters
