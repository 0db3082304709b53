"""The spontaneous (init) trial of the default network: E/I rates in a plausible band."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsn_mpi.backends.cpu.simulator import CpuSimulator
from tsn_mpi.comm import SerialComm
from tsn_mpi.config import default_config, derive
from tsn_mpi.models.lif import lif
from tsn_mpi.network.build import Network, build_static
from tsn_mpi.network.context import PluginContext
from tsn_mpi.network.stimulus import OnlineOU
from tsn_mpi.partition import partition


def _network(d, st, by_pop) -> Network:
    """The static network alone (no plastic inputs) owned by one rank."""
    n = d.n_cells
    return Network(n, range(n), *st, np.zeros((n, 0), np.int32), np.zeros((n, 0), np.float32),
                   np.zeros((n, 0), np.float32), np.zeros((1, d.n_learn, n), np.float32),
                   OnlineOU(0, 1, 0), np.zeros((d.n_steps - d.stim_off_step, 0)),
                   st_by_population=by_pop)  # fmt: skip


def _init_trial(cfg, d, ctx, st, by_pop, n_steps):
    net = _network(d, st, by_pop)
    sim = CpuSimulator(cfg, d, net, lif(ctx), SerialComm(), cfg.neuron.tau_plas, 0.0)
    sim.start_trial("init", 0, 0)
    for a in range(1, n_steps + 1, 1000):
        sim.advance(a, a + 999)
    return sim.finish_trial()


def _default():
    cfg = default_config()
    d = derive(cfg)
    ctx = PluginContext(cfg, d, range(d.n_cells), Path("."))
    *st, by_pop = build_static(ctx, SerialComm(), partition(d.n_cells, 1))
    return cfg, d, ctx, st, by_pop


def test_weights_by_population_and_per_synapse_codes_give_the_same_trial():
    cfg, d, ctx, st, by_pop = _default()
    assert by_pop
    indptr, pre, _, table = st
    post = np.repeat(np.arange(d.n_cells), np.diff(indptr))
    codes = (2 * (pre >= d.n_exc) + (post >= d.n_exc)).astype(np.uint8)
    a = _init_trial(cfg, d, ctx, st, True, 4000)
    b = _init_trial(cfg, d, ctx, (indptr, pre, codes, table), False, 4000)
    assert a.ns.sum() > 0 and np.array_equal(a.ns, b.ns) and np.array_equal(a.uavg, b.uavg)


def test_default_network_spontaneous_rates():
    cfg, d, ctx, st, by_pop = _default()
    n = d.n_cells
    res = _init_trial(cfg, d, ctx, st, by_pop, d.n_steps)
    rate_e = 1000 * res.ns[: d.n_exc].mean() / d.train_time
    rate_i = 1000 * res.ns[d.n_exc :].mean() / d.train_time
    # the reference tutorial reports 3.43 Hz (E) and 6.15 Hz (I) for this network
    assert 2.0 < rate_e < 5.0
    assert 4.0 < rate_i < 8.5
    assert rate_i > rate_e
    assert res.uavg.shape == (n,) and np.all(np.isfinite(res.uavg))
    assert res.u0_std.shape == (d.u0_ncells,) and 0.1 < res.u0_std.mean() < 2.0


def test_exchange_buffer_is_sized_by_the_largest_rank():
    """MPI_Allgather needs the same count on every rank: a work-balanced partition gives ranks
    different neuron counts, so the buffer follows the largest one (agreed by allreduce)."""
    from tsn_mpi.simulate.trial import exchange_capacity

    class TwoRankView(SerialComm):
        size = 2

        def allreduce_max(self, x):
            return np.maximum(x, 12_000)

    cfg, d, ctx, st, by_pop = _default()
    n = d.n_cells
    net = _network(d, st, by_pop)
    sim = CpuSimulator(cfg, d, net, lif(ctx), TwoRankView(), cfg.neuron.tau_plas, 0.0)
    assert sim.cap[0] == exchange_capacity(12_000, cfg.simulation.dt) > exchange_capacity(n, 0.1)
    assert sim.recv.size == (sim.cap[0] + 1) * 2
