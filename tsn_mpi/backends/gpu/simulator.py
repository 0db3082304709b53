"""GpuSimulator: the time loop of one rank's neurons on its GPU (spec §3), same API as Simulator.

State, connectivity, traces and recordings live on the device (numba device arrays).  With
one rank, each :meth:`GpuSimulator.advance` is a single cooperative launch of
:func:`~.loop.run_steps` (grid-wide barriers between the phases of every step).  With more
ranks (or if that kernel cannot be built) a step is two launches (:func:`~.loop.neuron_step`,
:func:`~.loop.deliver`) from a Python loop, and in between the local spike ids go to the
host, are allgathered with ``comm`` and come back as the global list.  Host copies otherwise
happen only at trial start/end; the learner reads the device traces directly.

Cell models: LIF and the built-in GLIF1-5 (parameters and state on the device, the state
copied back into ``cell.state`` at the end of every trial and before checkpoints); custom
(plugin) models run on the CPU only.  Other differences from the CPU Simulator: the default OU
stimulus is always generated on
the fly (never stored); spike inputs are summed with float atomics (see loop.py), so results
agree with the CPU to rounding, not bitwise.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from numba import cuda

from tsn_mpi import rng
from tsn_mpi.backends.cpu.loop import draw_normals
from tsn_mpi.backends.gpu import cudasim_fixes
from tsn_mpi.backends.gpu import loop as K
from tsn_mpi.backends.gpu.device import on_sync, shared_weights, simulated, to_device
from tsn_mpi.errors import ConfigError
from tsn_mpi.models.builtin import LIF, builtin_initial_voltages
from tsn_mpi.network.csr import codes_by_population
from tsn_mpi.network.stimulus import OnlineOU
from tsn_mpi.simulate.maps import balanced_drive, outgoing_maps, trace_constants
from tsn_mpi.simulate.rolling import bins_from_groups, group_counts, sample_groups
from tsn_mpi.simulate.step_constants import MODES, pack, step_constants
from tsn_mpi.simulate.trial import ROLL_NAMES, TrialResult, init_statistics

_F_ROWS = {
    "v": K.F_V,
    "u_bale": K.F_UBALE,
    "u_bali": K.F_UBALI,
    "u_plas": K.F_UPLAS,
    "u_bal": K.F_UBAL,
    "in_e": K.F_INE,
    "in_i": K.F_INI,
    "in_p": K.F_INP,
}


def launch_shape(n: int, threads: int = 128) -> tuple[int, int]:
    """(blocks, threads) covering n items; tiny blocks under the simulator (one Python thread per
    CUDA thread there)."""
    if simulated():
        threads = min(threads, 16)
    return max(1, -(-n // threads)), threads


class GpuSimulator:
    """The time loop of the owned neurons on the GPU, for any mode (init, train, train_test,
    test); constructor and methods as :class:`tsn_mpi.backends.cpu.simulator.CpuSimulator`.

    ``u_bal`` (n_owned,) float32 and ``r_ff`` (max(l_ff, 1),) float64 are device arrays;
    :meth:`traces_at` returns a device array; :meth:`finish_trial` returns host arrays.
    ``host_exchange=True`` forces the per-step host round trip of the spike ids even with one
    rank (tests use it to cover the multi-rank path).  ``fused`` (default: config key
    ``gpu.fused``) runs each :meth:`advance` as one cooperative launch of
    :func:`~.loop.run_steps` when spikes need no host exchange; otherwise, or if that kernel
    cannot be built, each step is two launches.  ``static_out`` = (out_indptr (N+1,) over
    presynaptic gids, local post ids int32, weight codes, weight table float32) replaces the
    outgoing map otherwise inverted from ``net``'s incoming CSR (benchmarks build it directly).
    """

    def __init__(
        self,
        cfg,
        d,
        net,
        cell,
        comm,
        tau_plas,
        sigma,
        host_exchange=None,
        fused=None,
        static_out=None,
    ) -> None:
        if not 0 <= cell.model_id <= 5:
            raise ConfigError(
                f"neuron.model = {cfg.neuron.model!r}: only the built-in LIF and GLIF1-5 "
                "models run on the GPU (run.backend = 'gpu'); use run.backend = 'cpu' for "
                "custom cell models"
            )
        cudasim_fixes.apply()  # no-op on a GPU
        self.cfg, self.d, self.net, self.cell, self.comm = cfg, d, net, cell, comm
        n, N = net.n_owned, d.n_cells
        self.n = n
        self.gid0 = net.owned.start
        self.host_exchange = comm.size > 1 if host_exchange is None else bool(host_exchange)
        if fused is None:
            fused = bool(cfg.gpu.fused)
        self.fused = bool(fused) and not self.host_exchange
        self.fused_error: str | None = None
        self._fused_kernel = None
        self._fused_launched = False
        f32 = np.float32
        dt = float(cfg.simulation.dt)
        # outgoing static and plastic maps, as on the CPU (benchmarks may bring the static one)
        maps = outgoing_maps(net, N, static=static_out is None)
        if static_out is None:
            static_out = (maps.st_indptr, maps.st_post, maps.st_code, net.st_table)
        out_indptr, out_post, out_code, table = static_out[:4]
        if getattr(net, "st_by_population", False) and out_code.size == 0 and out_post.size:
            # weights by population: the kernels index a table per synapse
            out_code = codes_by_population(out_indptr, out_post, net.owned.start, d.n_exc)
        self.st = (
            to_device(out_indptr, np.int64),
            to_device(out_post, np.int32),
            to_device(out_code),
            to_device(table, f32),
        )
        del static_out, out_post, out_code
        self.pl = (
            to_device(maps.pl_indptr, np.int64),
            to_device(maps.pl_post, np.int32),
            to_device(maps.pl_slot),
        )
        self.n_needed = maps.needed.size
        self.needed = to_device(maps.needed)
        del maps
        # traces of every gid: r_val, decay a and increment 1/tau per gid; r_step
        a_pre, inc_pre, inv_tau_post = trace_constants(tau_plas, dt, net.owned)
        tr = np.zeros((K.N_TR, N), np.float64)
        tr[K.T_A] = a_pre
        tr[K.T_INC] = inc_pre
        self.tr = to_device(tr)
        self.r_step = to_device(np.zeros(N, np.int64))
        self.r_now = to_device(np.zeros(N, np.float64))
        # per-neuron state; constant rows filled once
        f32_rows = np.zeros((K.N_F32, n), f32)
        f32_rows[K.F_XBAL] = balanced_drive(net.owned, d)
        p = cell.params
        if cell.model_id == LIF:
            f32_rows[K.F_TH] = p[:, 0].astype(f32)
            f32_rows[K.F_VRE] = p[:, 2].astype(f32)
        self._fs_const = f32_rows[[K.F_XBAL, K.F_TH, K.F_VRE]].copy()
        f64_rows = np.zeros((K.N_F64, n), np.float64)
        if cell.model_id == LIF:
            f64_rows[K.D_INVTAU] = dt * p[:, 1].astype(f32).astype(np.float64)
        # GLIF parameters and state, transposed (columns as models.glif); (1, 1) for LIF
        self.cp = to_device(
            np.asarray(p, np.float64).T if cell.model_id != LIF else np.zeros((1, 1))
        )
        st = np.asarray(cell.state, np.float64)
        self.has_state = cell.model_id != LIF and st.shape[1] > 0
        self.cs = to_device(st.T if self.has_state else np.zeros((1, 1)))
        on_sync(net, "cell_state", self.state_to_host)
        sig = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
        f64_rows[K.D_SIG] = np.broadcast_to(sig, (n,)) if sig.size == 1 else sig
        f64_rows[K.D_ITP] = inv_tau_post
        self._ds_const = f64_rows[[K.D_INVTAU, K.D_SIG, K.D_ITP]].copy()
        self.has_noise = bool(np.any(sig > 0))
        self.f32_rows = to_device(f32_rows)
        self.f64_rows = to_device(f64_rows)
        self.i64_rows = to_device(np.zeros((K.N_I64, n), np.int64))
        self.u64_rows = to_device(np.zeros((K.N_U64, n), np.uint64))
        self.u_bal = self.f32_rows[K.F_UBAL]
        # stimulus: the default OU online, plugin arrays stored (ntasks, n_stim, n) float32
        stim = net.stimulus
        self.stim_online = isinstance(stim, OnlineOU)
        if self.stim_online:
            self.ou = (float(stim.mu), float(stim.b), float(stim.sigma))
            self.stim = to_device(np.zeros((1, 1, 1), f32))
        else:
            self.ou = (0.0, 0.0, 0.0)
            self.stim = to_device(np.asarray(stim, dtype=f32))
        # feed-forward inputs (same on every rank); ff_base = stream state at the trial start
        lx = d.l_ff
        self.l_ff = lx
        self.r_ff = to_device(np.zeros(lx, np.float64))
        self.spk_ff = to_device(np.zeros(lx, np.float64))
        self.ff_base_host = np.zeros(max(lx, 1), np.uint64)
        self.ff_base = to_device(self.ff_base_host)
        self.rate_ff = to_device(np.asarray(net.ff_rates, dtype=np.float64))
        self.inv_tau_ff = float(inc_pre[0])
        # recording
        self.group_of_step, self.group_ranges = sample_groups(cfg, d)
        self.group_count = group_counts(self.group_of_step, len(self.group_ranges))
        self.sample_group = to_device(self.group_of_step, np.int32)
        # spike lists: glob holds global ids of all ranks; loc the local ones (host exchange)
        self.glob = to_device(np.zeros((3, N + 1), np.int32))
        self.loc = to_device(np.zeros((3, n + 1), np.int32)) if self.host_exchange else self.glob
        if self.host_exchange:
            self._cnt_h = cuda.pinned_array(1, np.int32)
            self._ids_h = cuda.pinned_array(max(n, 1), np.int32)
            self._glob_h = cuda.pinned_array(N + 1, np.int32)
        self.exchange_s = np.zeros(1)  # seconds in the per-step allgather (host exchange only)
        self.blocks, self.threads = launch_shape(n)
        self.d_blocks, self.d_threads = (2, 8) if simulated() else (max(1, min(1024, N)), 128)
        self.mode, self.task = K.MODE_INIT, 0
        self._restore = None
        self._t_done = 0

    # ------------------------------------------------------------------------------------
    def start_trial(
        self,
        mode: str,
        trial_key: int,
        task: int,
        record_cols=None,
        roll_vars: tuple[str, ...] = (),
    ) -> None:
        """Reset the per-trial state (spec §3.2) and set up recording (as Simulator)."""
        cfg, d, n = self.cfg, self.d, self.n
        seed = cfg.run.seed
        self.mode, self.task = MODES[mode], int(task)
        gids = np.arange(self.gid0, self.gid0 + n, dtype=np.int64)
        z = draw_normals(rng.stream_states(seed, rng.V_INIT, gids, trial_key))
        f32_rows = np.zeros((K.N_F32, n), np.float32)
        v = np.empty(n, np.float32)
        builtin_initial_voltages(self.cell.model_id, self.cell.params, z, v)
        f32_rows[K.F_V] = v
        if self.has_state:  # the host copy is authoritative between trials
            self.cs.copy_to_device(np.ascontiguousarray(self.cell.state.T, np.float64))
        f32_rows[[K.F_XBAL, K.F_TH, K.F_VRE]] = self._fs_const
        self.f32_rows.copy_to_device(f32_rows)
        f64_rows = np.zeros((K.N_F64, n), np.float64)
        f64_rows[K.D_LAST] = -100.0
        f64_rows[[K.D_INVTAU, K.D_SIG, K.D_ITP]] = self._ds_const
        self.f64_rows.copy_to_device(f64_rows)
        u64_rows = np.zeros((K.N_U64, n), np.uint64)
        u64_rows[K.U_NOISE] = rng.stream_states(seed, rng.NOISE, gids, trial_key)
        u64_rows[K.U_OU] = rng.stream_states(seed, rng.STIMULUS, gids, task)
        self.u64_rows.copy_to_device(u64_rows)
        lx = self.l_ff
        self.ff_base_host = np.zeros(max(lx, 1), np.uint64)
        self.ff_base_host[:lx] = rng.stream_states(
            seed, rng.FF_SPIKES, np.arange(lx, dtype=np.int64), trial_key
        )
        self.ff_base.copy_to_device(self.ff_base_host)
        zeros_ff = np.zeros(max(lx, 1))
        self.r_ff.copy_to_device(zeros_ff)
        self.spk_ff.copy_to_device(zeros_ff)
        tr = self.tr.copy_to_host()
        tr[K.T_RVAL] = 0.0
        self.tr.copy_to_device(tr)
        self.r_step.copy_to_device(np.zeros(d.n_cells, np.int64))
        self.glob.copy_to_device(np.zeros((3, d.n_cells + 1), np.int32))
        if self.host_exchange:
            self.loc.copy_to_device(np.zeros((3, n + 1), np.int32))
        # recording
        cols = np.zeros(0, np.int64) if record_cols is None else np.asarray(record_cols, np.int64)
        roll_idx = np.full(n, -1, np.int64)
        roll_idx[cols] = np.arange(cols.size)
        i64_rows = np.zeros((K.N_I64, n), np.int64)
        i64_rows[K.I_ROLL] = roll_idx
        self.n_rec = cols.size
        if self.mode == K.MODE_TEST:
            i64_rows[K.I_SPK] = roll_idx
            self.spk_steps = to_device(np.zeros((cols.size, d.max_times), np.int32))
        else:
            i64_rows[K.I_SPK] = -1
            self.spk_steps = to_device(np.zeros((1, 1), np.int32))
        self.i64_rows.copy_to_device(i64_rows)
        self.n_vars = len(roll_vars)
        self.roll_sel = to_device(np.array([ROLL_NAMES.index(v) for v in roll_vars], np.int64))
        self.roll = to_device(np.zeros((len(self.group_ranges), self.n_vars, cols.size)))
        self.consts = step_constants(
            cfg,
            d,
            gid0=self.gid0,
            n_owned=n,
            model=self.cell.model_id,
            has_noise=self.has_noise,
            ou=self.ou if self.stim_online else None,
            inv_tau_ff=self.inv_tau_ff,
            n_roll_vars=self.n_vars if cols.size else 0,
        )
        const_i, const_f = pack(self.consts)
        self.const_i, self.const_f = to_device(const_i), to_device(const_f)
        self._restore = None
        self._t_done = 0
        self._nargs = (
            self.const_i,
            self.const_f,
            self.f32_rows,
            self.f64_rows,
            self.i64_rows,
            self.u64_rows,
            self.tr,
            self.r_step,
            self.loc,
            self.glob,
            self.stim,
            self.sample_group,
            self.roll_sel,
            self.roll,
            self.spk_steps,
            self.cp,
            self.cs,
        )
        w_in, w_ff = shared_weights(self.net)
        self._dargs = (
            self.const_i,
            self.const_f,
            self.glob,
            *self.st,
            *self.pl,
            w_in,
            self.f32_rows,
            self.r_ff,
            self.spk_ff,
            self.ff_base,
            self.rate_ff,
            w_ff,
        )
        self._fargs = (
            self.const_i,
            self.const_f,
            self.f32_rows,
            self.f64_rows,
            self.i64_rows,
            self.u64_rows,
            self.tr,
            self.r_step,
            self.glob,
            self.stim,
            self.sample_group,
            self.roll_sel,
            self.roll,
            self.spk_steps,
            *self.st,
            *self.pl,
            w_in,
            self.r_ff,
            self.spk_ff,
            self.ff_base,
            self.rate_ff,
            w_ff,
            self.cp,
            self.cs,
        )

    def advance(self, t_first: int, t_last: int) -> None:
        """Run steps t_first..t_last (1-based, inclusive) of the current trial."""
        if self._restore is not None:
            self._apply_restore(t_first - 1)
        mode, task, na, da = self.mode, self.task, self._nargs, self._dargs
        if self.fused and self._fused_ready(t_first, t_last):
            kern, blocks, threads = self._fused_kernel
            try:
                kern[blocks, threads](t_first, t_last, mode, task, *self._fargs)
                cuda.synchronize()
            except Exception as exc:  # noqa: BLE001
                if self._fused_launched:
                    raise
                # the first cooperative launch was refused (nothing ran): per-step kernels
                self._disable_fused(exc)
            else:
                self._fused_launched = True
                self._t_done = t_last
                return
        # configured per launch: the simulator's kernel[...] mutates a shared object
        kn, gn, bn = K.neuron_step, self.blocks, self.threads
        kd, gd, bd = K.deliver, self.d_blocks, self.d_threads
        for ti in range(t_first, t_last + 1):
            slot = ti % 3
            kn[gn, bn](ti, mode, task, slot, *na)
            if self.host_exchange:
                self._exchange(slot)
            kd[gd, bd](ti, mode, slot, *da)
        cuda.synchronize()
        self._t_done = t_last

    def _fused_ready(self, t_first: int, t_last: int) -> bool:
        """Compile the fused kernel once and size its cooperative grid; on failure (e.g. no
        cudadevrt for grid barriers) warn once and fall back to two launches per step."""
        if self._fused_kernel is not None:
            return True
        threads = 16 if simulated() else 128
        try:
            args = (t_first, t_last, self.mode, self.task, *self._fargs)
            kern = K.run_steps.specialize(*args)
            if simulated():
                max_blocks = 1
            else:
                max_blocks = next(iter(kern.overloads.values())).max_cooperative_grid_blocks(
                    threads
                )
            if max_blocks < 1:
                raise RuntimeError("no co-resident block fits")
            blocks = int(min(max_blocks, max(1, -(-self.n // threads))))
        except Exception as exc:  # noqa: BLE001 - any compile/link/occupancy failure
            self._disable_fused(exc)
            return False
        self._fused_kernel = (kern, blocks, threads)
        return True

    def _disable_fused(self, exc: BaseException) -> None:
        self.fused = False
        self._fused_kernel = None
        self.fused_error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        msg = f"GPU: fused time loop unavailable ({self.fused_error}); two launches per step"
        warnings.warn(msg, RuntimeWarning, stacklevel=4)

    def _exchange(self, slot: int) -> None:
        """Allgather this step's local spike ids through the host into ``glob[slot]``."""
        row = self.loc[slot]
        row[0:1].copy_to_host(self._cnt_h)
        c = int(self._cnt_h[0])
        if c:
            row[1 : 1 + c].copy_to_host(self._ids_h[:c])
        t0 = time.perf_counter()
        counts = self.comm.allgather_counts(c)
        ids = self.comm.allgatherv(self._ids_h[:c], counts)
        self.exchange_s[0] += time.perf_counter() - t0
        tot = int(np.sum(counts))
        self._glob_h[0] = tot
        self._glob_h[1 : 1 + tot] = ids
        self.glob[slot][0 : 1 + tot].copy_to_device(self._glob_h[: 1 + tot])

    def traces_at(self, t: int):
        """Presynaptic traces r at step ``t`` for the needed gids, in a length-N device array."""
        if self.n_needed:
            b, th = launch_shape(self.n_needed)
            K.traces_at[b, th](int(t), self.needed, self.n_needed, self.tr, self.r_step, self.r_now)
        return self.r_now

    def state_to_host(self) -> None:
        """Copy the GLIF state into ``cell.state`` (a no-op for LIF)."""
        if self.has_state:
            self.cell.state[...] = self.cs.copy_to_host().T

    def finish_trial(self) -> TrialResult:
        d = self.d
        self.state_to_host()
        i64_rows = self.i64_rows.copy_to_host()
        ns = i64_rows[K.I_NS].astype(np.int32)
        bins = None
        if self.n_vars:
            roll = self.roll.copy_to_host()[: len(self.group_ranges), : self.n_vars, : self.n_rec]
            bins = bins_from_groups(roll, self.group_count, self.group_ranges, d.n_learn)
        uavg = u0_std = None
        if self.mode == K.MODE_INIT:
            f64_rows = self.f64_rows.copy_to_host()
            uavg, u0_std = init_statistics(
                f64_rows[K.D_UAVG], f64_rows[K.D_U0S], f64_rows[K.D_U0Q], self.gid0, d
            )
        spikes = None
        if self.mode == K.MODE_TEST:
            spikes = self.spk_steps.copy_to_host()[: self.n_rec]
        return TrialResult(ns, bins, spikes, uavg, u0_std)

    # ---------------------------------------------------------------- interrupt checkpoints
    def _ff_draws(self, t: int) -> np.uint64:
        return np.uint64(max(0, t - self.d.stim_off_step))

    def trial_state(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Mid-trial state after the last advanced step, keyed as the CPU ``trial_state``."""
        self.state_to_host()
        f32_rows, f64_rows = self.f32_rows.copy_to_host(), self.f64_rows.copy_to_host()
        i64_rows, u64_rows = self.i64_rows.copy_to_host(), self.u64_rows.copy_to_host()
        rows = {f"trial_{k}": f32_rows[r] for k, r in _F_ROWS.items()}
        rows.update(
            trial_last_spike=f64_rows[K.D_LAST],
            trial_ns=i64_rows[K.I_NS].astype(np.int32),
            trial_noise_rng=u64_rows[K.U_NOISE],
            trial_ou_s=f64_rows[K.D_OUS],
            trial_ou_rng=u64_rows[K.U_OU],
        )
        n_groups, n_vars, n_cols = len(self.group_ranges), self.n_vars, self.n_rec
        if n_cols == self.n and n_vars and n_groups:
            rows["trial_roll"] = np.ascontiguousarray(
                self.roll.copy_to_host().reshape(n_groups * n_vars, n_cols).T
            )
        t = self._t_done
        glob = self.glob[t % 3].copy_to_host()
        training = self.mode in (K.MODE_TRAIN, K.MODE_TRAIN_TEST)
        pending = glob[1 : 1 + glob[0]].copy() if training else np.zeros(0, np.int32)
        lx = self.l_ff
        with np.errstate(over="ignore"):
            ff_rng = self.ff_base_host[:lx] + self._ff_draws(t) * rng.GOLDEN
        tr = self.tr.copy_to_host()
        globs = {
            "trial_r_val": tr[K.T_RVAL],
            "trial_r_step": self.r_step.copy_to_host(),
            "trial_pending": pending,
            "trial_r_ff": self.r_ff.copy_to_host()[:lx],
            "trial_spk_ff": self.spk_ff.copy_to_host()[:lx],
            "trial_ff_rng": ff_rng,
        }
        return rows, globs

    def restore_trial_state(
        self, rows: dict[str, np.ndarray], globs: dict[str, np.ndarray]
    ) -> None:
        """Inverse of :meth:`trial_state` (after ``start_trial`` with the same mode and task);
        the step-dependent parts are placed at the next :meth:`advance`."""
        f32_rows, f64_rows = self.f32_rows.copy_to_host(), self.f64_rows.copy_to_host()
        i64_rows, u64_rows = self.i64_rows.copy_to_host(), self.u64_rows.copy_to_host()
        for k, r in _F_ROWS.items():
            f32_rows[r] = rows[f"trial_{k}"]
        f64_rows[K.D_LAST] = rows["trial_last_spike"]
        f64_rows[K.D_OUS] = rows["trial_ou_s"]
        i64_rows[K.I_NS] = rows["trial_ns"]
        u64_rows[K.U_NOISE] = rows["trial_noise_rng"]
        u64_rows[K.U_OU] = rows["trial_ou_rng"]
        self.f32_rows.copy_to_device(f32_rows)
        self.f64_rows.copy_to_device(f64_rows)
        self.i64_rows.copy_to_device(i64_rows)
        self.u64_rows.copy_to_device(u64_rows)
        if "trial_roll" in rows:
            n_groups, n_vars, n_cols = len(self.group_ranges), self.n_vars, self.n_rec
            self.roll.copy_to_device(
                np.ascontiguousarray(rows["trial_roll"].T.reshape(n_groups, n_vars, n_cols))
            )
        tr = self.tr.copy_to_host()
        tr[K.T_RVAL] = globs["trial_r_val"]
        self.tr.copy_to_device(tr)
        self.r_step.copy_to_device(np.ascontiguousarray(globs["trial_r_step"], np.int64))
        lx = self.l_ff
        if lx:
            self.r_ff.copy_to_device(np.ascontiguousarray(globs["trial_r_ff"], np.float64))
            self.spk_ff.copy_to_device(np.ascontiguousarray(globs["trial_spk_ff"], np.float64))
        self._restore = (
            np.asarray(globs["trial_pending"], np.int32),
            np.asarray(globs["trial_ff_rng"], np.uint64),
        )

    def _apply_restore(self, t_done: int) -> None:
        pending, ff_rng = self._restore
        self._restore = None
        row = np.zeros(self.d.n_cells + 1, np.int32)
        row[0] = pending.size
        row[1 : 1 + pending.size] = pending
        self.glob[t_done % 3].copy_to_device(row)
        lx = self.l_ff
        with np.errstate(over="ignore"):
            self.ff_base_host[:lx] = ff_rng[:lx] - self._ff_draws(t_done) * rng.GOLDEN
        self.ff_base.copy_to_device(self.ff_base_host)
