"""Helpers shared by the GPU tests: tiny in-process networks and a CPU/GPU training driver.

Importable under the CUDA simulator (the subprocess scripts of test_kernels_sim.py) and on a
real GPU (test_gpu_vs_cpu.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tsn_mpi.comm import SerialComm
from tsn_mpi.config import derive, from_dict
from tsn_mpi.models.glif import build_glif
from tsn_mpi.models.lif import lif
from tsn_mpi.network.build import (
    Network,
    build_ff_rates,
    build_plastic,
    build_static,
    build_stimulus,
    build_targets,
)
from tsn_mpi.network.context import PluginContext
from tsn_mpi.partition import partition

# 64 neurons, 100 steps (10 ms), learning every 1 ms after 4 ms
MICRO = {
    "network": {"n_cells": 64, "p_ee": 0.4},
    "simulation": {"stim_on": 2.0, "stim_off": 4.0, "train_duration": 6.0,
                   "u0_skip_time": 1.0},
    "learning": {"learn_every": 1.0},
}  # fmt: skip


def merged(base: dict, extra: dict | None) -> dict:
    out = {k: dict(v) for k, v in base.items()}
    for sec, vals in (extra or {}).items():
        out.setdefault(sec, {}).update(vals)
    return out


def dyadic(x: np.ndarray, bits: int = 6) -> np.ndarray:
    """x rounded to multiples of 2**-bits: float32 sums of a few hundred are then exact, so
    atomics in any order give the CPU's bits."""
    return (np.round(np.asarray(x, np.float64) * 2**bits) / 2**bits).astype(np.float32)


def build(extra: dict | None = None, exact: bool = False, base: dict | None = None, comm=None):
    """(cfg, d, net, cell, tau_plas, sigma) of an in-process network: all neurons, or this
    rank's share when ``comm`` is given (the same network whatever the rank count).

    Init statistics are faked (ns = 0, uavg = small values), so no init trial is needed.
    ``exact``: static, plastic and feed-forward weights rounded to dyadic values.
    """
    cfg = from_dict(merged(MICRO if base is None else base, extra))
    d = derive(cfg)
    n = d.n_cells
    comm = comm or SerialComm()
    part = partition(n, comm.size)
    owned = part.range_of(comm.rank)
    uavg = 0.1 * np.sin(np.arange(owned.start, owned.stop))
    ctx = PluginContext(cfg, d, owned, Path("."), {"ns": np.zeros(n, np.int64),
                                                   "uavg": uavg})  # fmt: skip
    static = build_static(ctx, comm, part)
    indptr, pre, code, table = static[:4]
    pl_pre, w_in, w_ff = build_plastic(ctx)
    if exact:
        table, w_in, w_ff = dyadic(table), dyadic(w_in), dyadic(w_ff)
    extra = {"st_by_population": static[4]} if len(static) > 4 else {}
    net = Network(n, owned, indptr, pre, code, table, pl_pre, w_in, w_ff,
                  build_targets(ctx).astype(np.float32), build_stimulus(ctx),
                  build_ff_rates(ctx), **extra)  # fmt: skip
    neu = cfg.neuron
    sig = neu.noise_sigma * (
        math.sqrt(cfg.simulation.dt) / math.sqrt(neu.tau_mem_e)
        if neu.noise_model == "voltage"
        else math.sqrt(neu.tau_mem_e) / math.sqrt(cfg.simulation.dt)
    )
    model = cfg.neuron.model
    cell = build_glif(ctx, int(model[-1])) if ":glif" in model else lif(ctx)
    return cfg, d, net, cell, float(neu.tau_plas), sig


def copy_net(net: Network) -> Network:
    """An independent copy (weights are updated in place by the learners)."""
    extra = {}
    if hasattr(net, "st_by_population"):
        extra["st_by_population"] = net.st_by_population
    return Network(net.n_cells, net.owned, net.st_indptr, net.st_pre, net.st_code, net.st_table,
                   net.pl_pre, net.w_in.copy(), net.w_ff.copy(), net.targets, net.stimulus,
                   net.ff_rates, **extra)  # fmt: skip


def host(x) -> np.ndarray:
    """Host numpy copy of a host or device array."""
    return np.asarray(x.copy_to_host() if hasattr(x, "copy_to_host") else x)


def run_chunks(
    sim, learner, net, d, task: int, start: int, stop: int, learn_seq: int, on_chunk=None
):
    """Steps start..stop of a started training trial, driven as phases.train._run_loop does
    (learning at the start of each learn step after stim_off); returns (learn_seq, n_bad)."""
    ls, step, nbad = d.learn_step, start, 0
    while step <= stop:
        if step % ls == 0 and step > d.stim_off_step:
            r_now = sim.traces_at(step - 1)
            nbad += learner.update(r_now, sim.r_ff, sim.u_bal, net.targets[task, learn_seq])
            learn_seq += 1
        end = min((step // ls + 1) * ls - 1, stop)
        sim.advance(step, end)
        if on_chunk is not None:
            on_chunk(end)
        step = end + 1
    return learn_seq, nbad


def start_loop(sim, net, d, loop: int, task: int = 0, measure: bool = False) -> None:
    cols = np.arange(net.n_owned) if measure else None
    sim.start_trial("train_test" if measure else "train", loop, task, cols,
                    (d.correlation_var,) if measure else ())  # fmt: skip


def train_loop(
    sim, learner, net, d, loop: int, task: int = 0, measure: bool = False, on_chunk=None
):
    """One whole training loop; returns (TrialResult, number of bad-neuron flags)."""
    start_loop(sim, net, d, loop, task, measure)
    _, nbad = run_chunks(sim, learner, net, d, task, 1, d.n_steps, 0, on_chunk)
    return sim.finish_trial(), nbad
