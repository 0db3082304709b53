"""The spontaneous (init) trial of the default network: E/I rates in a plausible band."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsn_mpi.comm import SerialComm
from tsn_mpi.config import default_config, derive
from tsn_mpi.models.lif import lif
from tsn_mpi.network.build import Network, build_static
from tsn_mpi.network.context import PluginContext
from tsn_mpi.network.stimulus import OnlineOU
from tsn_mpi.partition import partition
from tsn_mpi.simulate.simulator import Simulator


def test_default_network_spontaneous_rates():
    cfg = default_config()
    d = derive(cfg)
    n = d.n_cells
    ctx = PluginContext(cfg, d, range(n), Path("."))
    st = build_static(ctx, SerialComm(), partition(n, 1))
    net = Network(n, range(n), *st, np.zeros((n, 0), np.int32), np.zeros((n, 0), np.float32),
                  np.zeros((n, 0), np.float32), np.zeros((1, d.n_learn, n), np.float32),
                  OnlineOU(0, 1, 0), np.zeros((d.n_steps - d.stim_off_step, 0)))
    sim = Simulator(cfg, d, net, lif(ctx), SerialComm(), cfg.neuron.tau_plas, 0.0)
    sim.start_trial("init", 0, 0)
    for a in range(1, d.n_steps + 1, 1000):
        sim.advance(a, a + 999)
    res = sim.finish_trial()
    rate_e = 1000 * res.ns[: d.n_exc].mean() / d.train_time
    rate_i = 1000 * res.ns[d.n_exc :].mean() / d.train_time
    # the reference tutorial reports 3.43 Hz (E) and 6.15 Hz (I) for this network
    assert 2.0 < rate_e < 5.0
    assert 4.0 < rate_i < 8.5
    assert rate_i > rate_e
    assert res.uavg.shape == (n,) and np.all(np.isfinite(res.uavg))
    assert res.u0_std.shape == (d.u0_ncells,) and 0.1 < res.u0_std.mean() < 2.0
