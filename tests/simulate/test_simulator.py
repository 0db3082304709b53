"""Simulator set-up details that the learners and checkpoints rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsn_mpi.comm import SerialComm
from tsn_mpi.config import derive, from_dict
from tsn_mpi.models.lif import lif
from tsn_mpi.network.build import Network, build_plastic
from tsn_mpi.network.context import PluginContext
from tsn_mpi.network.stimulus import OnlineOU
from tsn_mpi.simulate.simulator import Simulator


def _sim(mode: str, owned: range, n: int = 400) -> Simulator:
    cfg = from_dict({"network": {"n_cells": n, "p_ee": 0.1}, "learning": {"mode": mode}})
    d = derive(cfg)
    ctx = PluginContext(cfg, d, owned, Path("."), {"ns": np.zeros(n, np.int64)})
    k = len(owned)
    no_static = (np.zeros(k + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint8),
                 np.zeros(4, np.float32))  # not needed for what is checked here
    pl_pre, w_in, w_ff = build_plastic(ctx)
    net = Network(n, owned, *no_static, pl_pre, w_in, w_ff,
                  np.zeros((1, d.n_learn, k), np.float32), OnlineOU(0, 1, 0),
                  np.zeros((d.n_steps - d.stim_off_step, 0)), st_by_population=True)
    return Simulator(cfg, d, net, lif(ctx), SerialComm(), cfg.neuron.tau_plas, 0.0)


def test_small_mode_evaluates_every_trace_so_history_rows_are_rank_independent():
    """Small mode checkpoints rank 0's history rows; a rank resuming on another partition
    reads them at its own plastic inputs, so every rank must fill every entry."""
    full = _sim("small", range(0, 400))
    part = _sim("small", range(0, 40))  # a rank owning 40 neurons
    assert np.array_equal(part.needed, np.arange(400)) and np.array_equal(full.needed, part.needed)
    fast = _sim("fast", range(0, 40))
    assert fast.needed.size < 400  # fast mode: only the plastic inputs of the owned neurons
