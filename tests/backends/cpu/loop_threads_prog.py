"""Every mode of the CPU time loop on 1, 2 and 3 threads, bitwise compared (run by
test_loop_threads.py with NUMBA_NUM_THREADS=3 on an initialised run directory).

For the built-in cell model and a user cell model (the same kernels behind model_id -1, so
the user path is compiled), each thread count runs init, train, train_test and test
trials, advanced in uneven chunks, on random feed-forward weights; then a simulator switches
thread count between chunks (as 'auto' may).  The per-neuron state, traces, pending list,
recordings and results must equal the one-thread run's exactly.  Prints OK.
"""

from __future__ import annotations

import copy
import sys

import numpy as np

from tsn_mpi.backends.cpu.simulator import CpuSimulator
from tsn_mpi.models.base import CellModel
from tsn_mpi.phases.common import build_cell, noise_sigma, open_run, tau_plas
from tsn_mpi.phases.restore import read_run_files

MODES = ("init", "train", "train_test", "test")
STATE = ("v", "u_bale", "u_bali", "u_plas", "u_bal", "in_e", "in_i", "in_p", "last_spike",
         "ns", "r_val", "r_step", "r_ff", "spk_ff", "ff_rng", "noise_rng", "ou_s", "uavg",
         "u0_sum", "u0_sumsq", "roll", "spk_steps")  # fmt: skip


class Alternate:
    """A stand-in tuner that changes the thread count at every call."""

    def __init__(self, counts):
        self.counts, self.i = counts, 0

    def next(self):
        self.i += 1
        return self.counts[self.i % len(self.counts)]

    def record(self, nt, seconds, steps):
        pass


def trials(sim, d) -> dict:
    out = {}
    edges = [1, 7, d.learn_step, d.learn_step + 1, d.stim_off_step - 3, d.n_steps + 1]
    for m, mode in enumerate(MODES):
        roll = (d.correlation_var,) if mode == "train_test" else ()
        sim.start_trial(mode, 5 + m, 0, np.arange(sim.n), roll)
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            sim.advance(a, b - 1)
        res = sim.finish_trial()
        for k in STATE:
            out[f"{mode}/{k}"] = np.copy(getattr(sim, k))
        out[f"{mode}/pending"] = sim.pending[: sim.n_pending[0]].copy()
        out[f"{mode}/cell_state"] = sim.cell.state.copy()
        for k in ("ns", "bins", "spike_steps", "uavg", "u0_std"):
            v = getattr(res, k)
            if v is not None:
                out[f"{mode}/result_{k}"] = np.asarray(v)
    return out


def main() -> None:
    run = open_run(sys.argv[1], quiet=True)
    cfg, d = run.cfg, run.d
    net, init, _ = read_run_files(run)
    rng = np.random.default_rng(0)
    net.w_ff = rng.normal(0.0, 0.3, net.w_ff.shape).astype(np.float32)
    net.w_in = (net.w_in * rng.uniform(0.5, 1.5, net.w_in.shape)).astype(np.float32)
    assert net.w_ff.shape[1] > 0, "the config needs feed-forward inputs"
    base = build_cell(run.ctx(init))

    def cells():
        yield "builtin", (1, 2, 3), copy.deepcopy(base)
        c = copy.deepcopy(base)
        user = CellModel("user", c.params, c.state, c.init_v, c.step, c.param_names)
        yield "user", (1,), user  # its threaded loop runs in the switching stage below

    for name, counts, cell in cells():
        ref = None
        for nt in counts:
            sim = CpuSimulator(cfg, d, net, copy.deepcopy(cell), run.comm, tau_plas(run),
                               noise_sigma(run))  # fmt: skip
            sim.set_loop_threads(nt)
            assert sim.loop_threads == nt, (nt, sim.loop_threads_why)
            got = trials(sim, d)
            if ref is None:
                ref = got
                assert got["train/ns"].sum() > 0 and got["test/result_spike_steps"].any()
                continue
            bad = [k for k in ref if not np.array_equal(ref[k], got[k])]
            assert not bad, f"{name}, {nt} threads differ from 1 in {bad}"
        # 'auto' may switch between calls: the tuner's two entries (built-in: the cached serial
        # loop; user model: the threaded loop on one thread), and a third count in between
        sim = CpuSimulator(cfg, d, net, copy.deepcopy(cell), run.comm, tau_plas(run),
                           noise_sigma(run))  # fmt: skip
        sim.set_loop_threads(3, tune=True)
        assert set(sim._runs) == {1, 3}
        if name == "builtin":
            sim._runs[2] = _two_threads(sim)
        sim.tuner = Alternate((1, 3, 2) if name == "builtin" else (1, 3))
        got = trials(sim, d)
        bad = [k for k in ref if not np.array_equal(ref[k], got[k])]
        assert not bad, f"{name}: switching thread counts between calls changed {bad}"
    print("OK")


def _two_threads(sim):
    """A 2-thread entry next to the simulator's 3-thread one (own thread ranges)."""
    from tsn_mpi.backends.cpu import sync
    from tsn_mpi.backends.cpu.loop_threads import call, run_steps_threads
    from tsn_mpi.backends.cpu.threads import bounds

    tc = (bounds(sim.n, 2), sync.counters(2), np.zeros((2, 2), np.int64), np.zeros(1, np.int64),
          sim.all_spk, 1000)  # fmt: skip

    def run(t_first, t_last, mode, task, groups):
        call(run_steps_threads, 2, t_first, t_last, mode, task, groups, tc)

    return run


if __name__ == "__main__":
    main()
