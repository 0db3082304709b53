"""CPU trial driver: owns the per-rank state of the time loop and runs it chunk by chunk.

A :class:`CpuSimulator` is built once per phase from the rank's :class:`Network`; each trial
starts with :meth:`start_trial` and advances with :meth:`advance` over step ranges.  The
training driver calls RLS between chunks (learning happens at the *start* of a step, spec §3.3
step 2) using :meth:`traces_at`.  The loop runs on ``run.loop_threads`` threads
(:mod:`~tsn_mpi.backends.cpu.threads`; :mod:`~tsn_mpi.backends.cpu.loop_threads`), with the same
results for any count; 'auto' may switch between one thread and its count from call to call.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from tsn_mpi import rng
from tsn_mpi.backends.cpu import sync
from tsn_mpi.backends.cpu.loop import (
    draw_normals,
    init_voltages,
    make_run_steps,
    run_steps_serial,
    trace_values,
)
from tsn_mpi.backends.cpu.loop_threads import call, make_run_steps_threads
from tsn_mpi.backends.cpu.threads import Tuner, choose, layer_problem, spin_us
from tsn_mpi.backends.cpu.threads import bounds as thread_bounds
from tsn_mpi.errors import ConfigError
from tsn_mpi.models.builtin import LIF, builtin_initial_voltages
from tsn_mpi.network.stimulus import OnlineOU
from tsn_mpi.simulate.maps import balanced_drive, outgoing_maps, trace_constants
from tsn_mpi.simulate.rolling import bins_from_groups, group_counts, sample_groups
from tsn_mpi.simulate.step_constants import MODE_INIT, MODE_TEST, MODES, step_constants
from tsn_mpi.simulate.trial import (
    ROLL_NAMES,
    TRIAL_ROWS,
    TrialResult,
    exchange_capacity,
    init_statistics,
)

# the time loop's threads and why, of the simulator built last in this process (run headers)
LOOP_THREADS: list = [1, ""]


def _choose_threads(cfg, comm, n: int) -> tuple[int, str]:
    """Threads of this rank's time loop (``run.loop_threads``); one line on a bad setting."""
    setting = getattr(cfg.run, "loop_threads", "auto")
    try:
        nt, why = choose(setting, n)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if nt > 1 and comm.size > 1 and not comm.threads_may_call():
        return 1, "1 thread: MPI was initialised below MPI_THREAD_SERIALIZED"
    return nt, why


def _threaded(run, nt: int, tc: tuple):
    """``run`` (a threaded entry point) on ``nt`` threads as ``f(t_first, t_last, mode, task,
    groups)``."""

    def threaded(t_first, t_last, mode, task, groups):
        call(run, nt, t_first, t_last, mode, task, groups, tc)

    return threaded


class CpuSimulator:
    """The time loop of the owned neurons, for any mode (init, train, train_test, test)."""

    def __init__(self, cfg, d, net, cell, comm, tau_plas, sigma) -> None:
        self.cfg, self.d, self.net, self.cell, self.comm = cfg, d, net, cell, comm
        n, N = net.n_owned, d.n_cells
        self.n = n
        self.gid0 = net.owned.start
        # outgoing static map (pre gid -> local posts; with weights by population no code per
        # synapse is kept: the loop derives it from the two ids) and plastic map (pre gid ->
        # (local post, slot)).  Small mode: every rank evaluates every trace, so the history
        # rows (checkpointed from rank 0) are the same on all ranks and a resume on another
        # partition reads the inputs its neurons need (O(N) per learning step).
        maps = outgoing_maps(net, N, all_traces=cfg.learning.mode == "small")
        by_pop = bool(net.st_by_population)
        n_exc_local = min(max(d.n_exc - net.owned.start, 0), n)
        self.static_out = (
            maps.st_indptr,
            maps.st_post,
            maps.st_code,
            net.st_table,
            np.array([int(by_pop), d.n_exc, n_exc_local], np.int64),
        )
        self.plastic_out = (maps.pl_indptr, maps.pl_post, maps.pl_slot, net.w_in)
        self.needed = maps.needed
        del maps
        # traces: lazily advanced presynaptic r for every gid (O(N) memory, O(spikes) work)
        dt = cfg.simulation.dt
        self.a_pre, self.inc_pre, self.inv_tau_post = trace_constants(tau_plas, dt, net.owned)
        self.r_val = np.zeros(N, dtype=np.float64)
        self.r_step = np.zeros(N, dtype=np.int64)
        self.r_now = np.zeros(N, dtype=np.float64)
        self.pending = np.zeros(N, dtype=np.int32)
        self.n_pending = np.zeros(1, dtype=np.int64)
        # neuron state
        f32 = np.float32
        self.v = np.zeros(n, f32)
        self.u_bale = np.zeros(n, f32)
        self.u_bali = np.zeros(n, f32)
        self.u_plas = np.zeros(n, f32)
        self.u_bal = np.zeros(n, f32)
        self.in_e = np.zeros(n, f32)
        self.in_i = np.zeros(n, f32)
        self.in_p = np.zeros(n, f32)
        self.last_spike = np.zeros(n, np.float64)
        self.ns = np.zeros(n, np.int32)
        self.x_bal = balanced_drive(net.owned, d)
        self.sigma = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
        self.noise_rng = np.zeros(n, np.uint64)
        # stimulus
        stim = net.stimulus
        self.stim_online = isinstance(stim, OnlineOU)
        self.ou = (0.0, 0.0, 0.0)
        if self.stim_online:
            # drawn inside the loop from each neuron's stream, the same values every loop
            # (ziggurat normals: ~3 ns each, cheaper than storing 2000 steps x 4 B per neuron)
            self.stim_arr = np.zeros((1, 1, 1), f32)
            self.ou = (stim.mu, stim.b, stim.sigma)
        else:
            self.stim_arr = np.ascontiguousarray(stim, dtype=f32)
        self.ou_s = np.zeros(n, np.float64)
        self.ou_rng = np.zeros(n, np.uint64)
        # feed-forward inputs (same on every rank)
        lx = d.l_ff
        self.r_ff = np.zeros(lx, np.float64)
        self.spk_ff = np.zeros(lx, np.float64)
        self.ff_rng = np.zeros(lx, np.uint64)
        self.rate_ff = np.ascontiguousarray(net.ff_rates, dtype=np.float64)
        # recording
        self.group_of_step, self.group_ranges = sample_groups(cfg, d)
        self.group_count = group_counts(self.group_of_step, len(self.group_ranges))
        self.uavg = np.zeros(n, np.float64)
        self.u0_sum = np.zeros(n, np.float64)
        self.u0_sumsq = np.zeros(n, np.float64)
        # spike exchange buffers: fixed capacity (the same on every rank: MPI_Allgather needs
        # equal counts, and a work-balanced partition gives ranks different n), grown after
        # an overflow
        if comm.size == 1:
            cap = max(n, 1)
        else:
            n_max = int(comm.allreduce_max(np.array([n], np.int64))[0])
            cap = exchange_capacity(n_max, dt)
        self._alloc_exchange(cap)
        self.overflow = np.zeros(2, np.int64)
        self.all_spk = np.zeros(max(n, 1), np.int32)
        self._user_step = None if cell.model_id >= 0 else cell.step
        self._clock = comm.step_clock() if hasattr(comm, "step_clock") else None
        self._node_ranks = comm.ranks_on_node_hint()  # not collective
        nt, why = _choose_threads(cfg, comm, n)
        self.set_loop_threads(nt, why, tune=getattr(cfg.run, "loop_threads", "auto") == "auto")
        # scratch and the cell tuple (LIF parameters as contiguous arrays for the fast path)
        pad = -(-max(n, 1) // 8) * 8
        # seconds in the per-step allgather and in spike delivery (MPI only: timed with MPI_Wtime)
        self.exchange_s = np.zeros(2)
        # ff_fired: the feed-forward inputs drawn at a step (count, ids), two rows: the threaded
        # loop draws step t+1's while other threads still deliver step t's
        self.ff_fired = np.zeros((2, lx + 1), np.int32)
        self.scratch = (
            np.zeros(n, np.float64),
            np.zeros(n, f32),
            np.zeros(n, f32),
            np.zeros(pad, np.uint8),
            self.exchange_s,
            self.ff_fired,
        )
        if cell.model_id == LIF:
            p = cell.params
            lif = (
                p[:, 0].astype(f32),
                dt * p[:, 1].astype(f32).astype(np.float64),
                p[:, 2].astype(f32),
            )
        else:
            lif = (np.zeros(0, f32), np.zeros(0), np.zeros(0, f32))
        self.cell_tuple = (int(cell.model_id), cell.params, cell.state, *lif)
        self.consts = None
        self.mode = MODE_INIT
        self.task = 0

    # ------------------------------------------------------------------------------------
    def set_loop_threads(self, nt: int, why: str = "", tune: bool = False) -> None:
        """Run the time loop on ``nt`` threads from now on (results are the same for any).
        ``tune``: 'auto' at run time, ``nt`` or one thread, whichever measures faster
        (:class:`~tsn_mpi.backends.cpu.threads.Tuner`)."""
        n = self.n
        if int(nt) > numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"{nt} loop threads: numba has {numba.config.NUMBA_NUM_THREADS}")
        nt = max(1, min(int(nt), max(n, 1)))
        if nt > 1 and layer_problem() is not None:
            nt, why = 1, f"1 thread: {layer_problem()}"
        self.loop_threads, self.loop_threads_why = nt, why
        self.tuner = Tuner(nt) if tune and nt > 1 else None
        LOOP_THREADS[:] = [nt, why + ("; one when that measures faster" if self.tuner else "")]
        # spike ids found at a step: threads write their ranges; one process alternates two
        # halves by step parity (a thread may start step t+1 while others deliver step t)
        self.local_spk = np.zeros(max(n, 1) * (2 if nt > 1 else 1), np.int32)
        self.tc = None
        if nt == 1:
            self._run = self._serial_entry()
            self._runs = {1: self._run}
            return
        setting = getattr(self.cfg.run, "loop_spin_us", "auto")
        spins = sync.spins_for(spin_us(nt, self._node_ranks, setting))
        run = make_run_steps_threads(self.comm.step_exchange() if self.comm.size > 1 else None,
                                     self._user_step, self._clock)  # fmt: skip
        self.tc = self._thread_control(nt, spins)
        self._run = _threaded(run, nt, self.tc)
        self._runs = {nt: self._run}
        if self.tuner is not None:
            # the one-thread alternative: the cached serial loop in one process, else the same
            # compiled threaded loop on one thread (no second start-up compilation)
            cached = self.comm.size == 1 and self._user_step is None
            self._runs[1] = (self._serial_entry() if cached
                             else _threaded(run, 1, self._thread_control(1, spins)))  # fmt: skip

    def _serial_entry(self):
        """The one-thread loop: cached in one process with a built-in cell model."""
        if self.comm.size == 1 and self._user_step is None:
            return run_steps_serial
        return make_run_steps(self.comm.step_exchange(), self._user_step, self._clock)

    def _thread_control(self, nt: int, spins: int) -> tuple:
        """Thread ranges, meeting counters, spike counts per thread, flags, a spike buffer."""
        return (thread_bounds(self.n, nt), sync.counters(2), np.zeros((2, nt), np.int64),
                np.zeros(1, np.int64), self.all_spk, spins)  # fmt: skip

    def _alloc_exchange(self, cap: int) -> None:
        self.cap = np.array([cap], dtype=np.int64)
        self.send = np.zeros(cap + 1, np.int32)
        self.recv = np.zeros((cap + 1) * self.comm.size, np.int32)

    def start_trial(
        self,
        mode: str,
        trial_key: int,
        task: int,
        record_cols=None,
        roll_vars: tuple[str, ...] = (),
    ) -> None:
        """Reset the per-trial state (spec §3.2) and set up recording.

        ``record_cols``: local ids recorded in the rolling averages / spike times (None = none).
        ``roll_vars``: names among utotal, ubal_e, ubal_i, uplastic.
        """
        cfg, d, n = self.cfg, self.d, self.n
        seed = cfg.run.seed
        self.mode, self.task = MODES[mode], task
        gids = np.arange(self.gid0, self.gid0 + n, dtype=np.int64)
        z_states = rng.stream_states(seed, rng.V_INIT, gids, trial_key)
        z = draw_normals(z_states)
        if self.cell.model_id >= 0:
            builtin_initial_voltages(self.cell.model_id, self.cell.params, z, self.v)
        else:
            init_voltages(self.cell.init_v, self.cell.params, z, self.v)
        self.noise_rng[:] = rng.stream_states(seed, rng.NOISE, gids, trial_key)
        self.ou_rng[:] = rng.stream_states(seed, rng.STIMULUS, gids, task)
        self.ou_s[:] = 0.0
        self.ff_rng[:] = rng.stream_states(
            seed, rng.FF_SPIKES, np.arange(d.l_ff, dtype=np.int64), trial_key
        )
        for a in (
            self.u_bale,
            self.u_bali,
            self.u_plas,
            self.u_bal,
            self.in_e,
            self.in_i,
            self.in_p,
            self.ns,
            self.r_ff,
            self.spk_ff,
            self.uavg,
            self.u0_sum,
            self.u0_sumsq,
            self.r_val,
            self.r_step,
        ):
            a[:] = 0
        self.last_spike[:] = -100.0
        self.n_pending[0] = 0
        cols = np.zeros(0, np.int64) if record_cols is None else np.asarray(record_cols, np.int64)
        self.roll_idx = np.full(n, -1, np.int64)
        self.roll_idx[cols] = np.arange(cols.size)
        self.roll_sel = np.array([ROLL_NAMES.index(v) for v in roll_vars], dtype=np.int64)
        self.roll = np.zeros((len(self.group_ranges), len(roll_vars), cols.size), np.float64)
        if self.mode == MODE_TEST:
            self.spk_idx = self.roll_idx.copy()
            self.spk_steps = np.zeros((cols.size, d.max_times), np.int32)
        else:
            self.spk_idx = np.zeros(0, np.int64)
            self.spk_steps = np.zeros((0, 1), np.int32)
        mu, b, sig = self.ou
        self.consts = step_constants(
            cfg, d, gid0=self.gid0, n_owned=n, model=self.cell.model_id,
            has_noise=bool(np.any(np.asarray(self.sigma) > 0)),
            ou=(mu, b, sig) if self.stim_online else None, inv_tau_ff=float(self.inc_pre[0]),
        )  # fmt: skip

    def advance(self, t_first: int, t_last: int) -> None:
        """Run steps t_first..t_last (1-based, inclusive) of the current trial."""
        mu, b, sig = self.ou
        groups = (
            self.consts,
            (
                self.v,
                self.u_bale,
                self.u_bali,
                self.u_plas,
                self.u_bal,
                self.in_e,
                self.in_i,
                self.in_p,
                self.last_spike,
                self.ns,
                self.x_bal,
                self.sigma,
                self.inv_tau_post,
                self.noise_rng,
            ),
            self.cell_tuple,
            self.static_out,
            self.plastic_out,
            (self.r_val, self.r_step, self.a_pre, self.inc_pre, self.pending, self.n_pending),
            (
                self.r_ff,
                self.spk_ff,
                self.rate_ff,
                self.net.w_ff,
                self.ff_rng,
                float(self.inc_pre[0]),
            ),
            (
                self.stim_arr,
                self.stim_online,
                self.ou_s,
                self.ou_rng,
                float(mu),
                float(b),
                float(sig),
            ),
            (
                self.group_of_step,
                self.roll_idx,
                self.roll_sel,
                self.roll,
                self.spk_idx,
                self.spk_steps,
                self.uavg,
                self.u0_sum,
                self.u0_sumsq,
            ),
            (self.send, self.recv, self.local_spk, self.cap, self.comm.size, self.overflow),
            self.scratch,
        )
        if self.tuner is None:
            self._run(t_first, t_last, self.mode, self.task, groups)
        else:
            nt = self.tuner.next()
            t0 = time.perf_counter()
            self._runs[nt](t_first, t_last, self.mode, self.task, groups)
            self.tuner.record(nt, time.perf_counter() - t0, t_last - t_first + 1)
        if self.overflow[1] > self.cap[0]:
            # grow the fixed buffer so later steps need one collective again (same on all ranks)
            self._alloc_exchange(int(self.overflow[1] * 1.5) + 16)

    def traces_at(self, t: int) -> np.ndarray:
        """Presynaptic traces r at step ``t`` for the needed gids (in a length-N array)."""
        trace_values(self.r_val, self.r_step, self.a_pre, t, self.needed, self.r_now)
        return self.r_now

    def finish_trial(self) -> TrialResult:
        d = self.d
        bins = None
        if self.roll.shape[1]:
            bins = bins_from_groups(self.roll, self.group_count, self.group_ranges, d.n_learn)
        uavg = u0_std = None
        if self.mode == MODE_INIT:
            uavg, u0_std = init_statistics(self.uavg, self.u0_sum, self.u0_sumsq, self.gid0, d)
        spikes = self.spk_steps if self.mode == MODE_TEST else None
        return TrialResult(self.ns.copy(), bins, spikes, uavg, u0_std)

    # ---------------------------------------------------------------- interrupt checkpoints
    def trial_state(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Mid-trial state (per-neuron rows, rank-independent globals) for an interrupt
        checkpoint."""
        rows = {f"trial_{k}": getattr(self, k) for k in TRIAL_ROWS}
        n_groups, n_vars, n_cols = self.roll.shape
        if n_cols == self.n and n_vars:
            rows["trial_roll"] = np.ascontiguousarray(
                self.roll.reshape(n_groups * n_vars, n_cols).T
            )
        globs = {
            "trial_r_val": self.r_val,
            "trial_r_step": self.r_step,
            "trial_pending": self.pending[: self.n_pending[0]].copy(),
            "trial_r_ff": self.r_ff,
            "trial_spk_ff": self.spk_ff,
            "trial_ff_rng": self.ff_rng,
        }
        return rows, globs

    def restore_trial_state(self, rows: dict[str, np.ndarray],
                            globs: dict[str, np.ndarray]) -> None:  # fmt: skip
        """Inverse of :meth:`trial_state` (after ``start_trial`` with the same mode and task)."""
        for k in TRIAL_ROWS:
            getattr(self, k)[:] = rows[f"trial_{k}"]
        if "trial_roll" in rows:
            n_groups, n_vars, n_cols = self.roll.shape
            self.roll[:] = rows["trial_roll"].T.reshape(n_groups, n_vars, n_cols)
        self.r_val[:] = globs["trial_r_val"]
        self.r_step[:] = globs["trial_r_step"]
        pend = globs["trial_pending"]
        self.pending[: pend.size] = pend
        self.n_pending[0] = pend.size
        self.r_ff[:] = globs["trial_r_ff"]
        self.spk_ff[:] = globs["trial_spk_ff"]
        self.ff_rng[:] = globs["trial_ff_rng"]
