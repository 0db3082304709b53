"""train: N loops of RLS learning with a learning curve, checkpoints and clean interruption.

A loop is one trial (spec §6): the time loop runs in compiled chunks of ``learn_step`` steps;
at each learning step RLS updates every owned neuron.  Between chunks the driver checks, with
one small Allreduce, whether any rank diverged (non-finite weights, P or currents) or received
SIGTERM/SIGINT; an interrupt writes checkpoint ``<loop>i`` holding the mid-trial state, so a
resumed run continues exactly where it stopped (bitwise equal to an uninterrupted run).
"""

from __future__ import annotations

import signal
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from tsn_mpi._version import __version__
from tsn_mpi.comm import Comm, SerialComm
from tsn_mpi.comm.agree import agree
from tsn_mpi.errors import DivergenceError, Interrupted
from tsn_mpi.io import h5_write
from tsn_mpi.io.checkpoint import write_checkpoint
from tsn_mpi.io.heartbeat import Heartbeat
from tsn_mpi.io.names import checkpoint_dir, checkpoint_name, list_checkpoints
from tsn_mpi.learn.correlation import mean_correlation, pearson_per_neuron
from tsn_mpi.log import TABLE_HEADER, CompileWatch, format_row
from tsn_mpi.monitor import LoopTimes, ResourceMonitor
from tsn_mpi.phases import checkpointing
from tsn_mpi.phases.common import (
    CURVE_NAME,
    Run,
    balance_by_work,
    check_memory,
    check_not_in_use,
    choose_task,
    open_run,
    start_backend,
)
from tsn_mpi.phases.restore import read_run_files, restore_state

CURVE_FIELDS = ("loop", "task", "elapsed_s", "firing_rate_hz", "correlation", "n_nan")
# rank 0's time split of each loop: compiled time loop (neuron update + delivery, incl. the
# exchange), within it the per-step allgather and the spike delivery (MPI only, else 0), RLS,
# waiting at chunk-boundary agreements (load imbalance), checkpoint and learning-curve writes
TIMING_FIELDS = ("sim_s", "exchange_s", "deliver_s", "rls_s", "sync_s", "io_s")


class LearningCurve:
    """One entry per completed loop (correlation NaN where not measured)."""

    def __init__(self, data: dict[str, np.ndarray] | None = None) -> None:
        self.cols: dict[str, list] = {k: [] for k in CURVE_FIELDS + TIMING_FIELDS}
        if data:
            n = len(np.asarray(data.get("curve_loop", [])))
            for k in self.cols:
                col = np.asarray(data.get(f"curve_{k}", np.full(n, np.nan))).tolist()
                self.cols[k] = col

    def append(self, loop, task, elapsed, rate, cor, n_nan, timing: dict) -> None:
        for k, v in zip(CURVE_FIELDS, (loop, task, elapsed, rate, cor, n_nan), strict=True):
            self.cols[k].append(v)
        for k in TIMING_FIELDS:
            self.cols[k].append(float(timing.get(k, 0.0)))

    def arrays(self) -> dict[str, np.ndarray]:
        dt = {"loop": np.int64, "task": np.int64, "n_nan": np.int64}
        return {k: np.asarray(v, dtype=dt.get(k, np.float64)) for k, v in self.cols.items()}

    def as_globals(self) -> dict[str, np.ndarray]:
        return {f"curve_{k}": v for k, v in self.arrays().items()}

    def write(self, path: Path) -> None:
        """Rank 0 only: the learning curve as its own small file (atomic)."""
        with h5_write.create(path, SerialComm(), attrs={"tsn_mpi_version": __version__}) as w:
            for k, v in self.arrays().items():
                w.write_global(k, v)


def checkpoint_attrs(cfg, d, learner, static_nnz: int, loop: int, kind: str,
                     **extra) -> dict:
    return {
        "model_hash": cfg.model_hash(), "n_cells": d.n_cells, "n_plastic": d.n_plastic,
        "n_rls": d.n_rls, "l_ff": d.l_ff, "static_nnz": static_nnz, "mode": learner.mode,
        "p_storage": learner.storage, "p_precision": learner.precision, "loop": loop,
        "kind": kind, "hist_count": learner.hist_count, "tsn_mpi_version": __version__, **extra,
    }


def checkpoint_payload(net, learner, cell, curve: LearningCurve | None):
    rows = {"w_in": net.w_in, "w_ff": net.w_ff}
    p = learner.p_rows_lazy()  # CPU: converted from the tiles block by block while written
    if p is not None:
        rows["P"] = p
    if cell.state.shape[1]:
        rows["cell_state"] = cell.state
    globs = {} if curve is None else curve.as_globals()
    if learner.hist is not None:
        globs["history"] = learner.hist
    return rows, globs


class _Signals:
    """Turns SIGTERM/SIGINT into a flag checked at chunk boundaries (restored on exit)."""

    def __init__(self) -> None:
        self.flag = 0
        self._old: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.flag = int(signum)

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run_train(run_dir: str | Path, nloops: int | None = 1, correlation_interval: int = 1,
              save_best_checkpoint: bool = False, restore_from_checkpoint: str | int | None = None,
              total_loops: int | None = None, comm: Comm | None = None,
              quiet: bool = False, monitor_resources: float | None = None,
              backend: str | None = None, force: bool = False,
              checkpoint_every: int | None = None, checkpoint_minutes: float | None = None,
              checkpoint_keep: int | None = None) -> dict[str, np.ndarray]:
    """Train; returns the learning curve (all loops so far) as arrays.

    ``backend``: "cpu" or "gpu" overrides ``run.backend`` (the CLI's ``--gpu``).
    ``monitor_resources``: every that many seconds, sample CPU %, RSS and GPU memory of every
    rank; rank 0 prints them after each loop.  ``force``: start even when the memory gate
    (:mod:`tsn_mpi.phases.memory`) says the launch does not fit, or another live job's
    heartbeat claims the run directory.  ``checkpoint_every``,
    ``checkpoint_minutes``, ``checkpoint_keep``: periodic checkpoints (None: the config's
    ``run.checkpoint_*``; :mod:`tsn_mpi.phases.checkpointing`)."""
    run = open_run(run_dir, comm, quiet, backend)
    check_not_in_use(run, "train", force)
    sched = checkpointing.CheckpointSchedule.from_config(
        run.cfg.run, checkpoint_every, checkpoint_minutes, checkpoint_keep)
    agree(run.comm, lambda: start_backend(run))
    check_memory(run, "train", force)
    hb = Heartbeat(run.run_dir, "train", active=run.comm.rank == 0, ranks=run.comm.size,
                   backend=run.cfg.run.backend, n_cells=run.d.n_cells)  # fmt: skip
    with hb, CompileWatch(run.out) as cw:
        return _train(run, hb, cw, nloops, correlation_interval, save_best_checkpoint,
                      restore_from_checkpoint, total_loops, monitor_resources,
                      sched)  # fmt: skip


def _train(run: Run, hb: Heartbeat, cw: CompileWatch, nloops, correlation_interval,
           save_best_checkpoint, restore_from_checkpoint, total_loops, monitor_resources,
           sched: checkpointing.CheckpointSchedule):
    """:func:`run_train` once the run is open, its memory checked and its heartbeat beating."""
    cfg, d, comm = run.cfg, run.d, run.comm
    agree(comm, lambda: balance_by_work(run))
    # files and plugins are checked on every rank and agreed on: bad input on any rank gives
    # the same one-line error on all of them (no rank left waiting in a collective)
    net, init, ck = agree(comm, lambda: read_run_files(run, restore_from_checkpoint))
    nnz = int(comm.allreduce_sum(np.array([net.st_pre.size], np.int64))[0])
    expect = {"model_hash": cfg.model_hash(), "n_cells": d.n_cells, "n_plastic": d.n_plastic,
              "n_rls": d.n_rls, "static_nnz": nnz}
    # a corrupted checkpoint: the error names the newest intact one
    state = checkpointing.restore_naming_intact(
        run, ck, lambda: restore_state(run, net, init, ck, expect))
    checkpointing.start(run)  # temporary files of killed checkpoint writers
    chooser = agree(comm, lambda: choose_task(run))
    attrs, rows, globs = state.attrs, state.rows, state.globs
    cell, learner, sim = state.cell, state.learner, state.sim
    del state
    curve = LearningCurve(globs)
    ntasks = net.targets.shape[0]
    done = int(attrs["loop"])
    resume = attrs.get("kind") == "i"
    first = done if resume else done + 1
    last = total_loops if total_loops is not None else first + (nloops or 1) - 1
    run.out.info(f"using checkpoint {ck.label}; training loops {first}..{last} on "
                 f"{comm.size} rank(s)")
    run.out.info(f"backend: {run.backend.describe()}")
    run.out.info(sched.describe())
    run.out.info(TABLE_HEADER)
    hb.update(first_loop=first, last_loop=last, loop=done, stage="training", force=True)
    maxcor = max([c for c in curve.cols["correlation"] if c == c] or [-np.inf])
    walls = LoopTimes()
    monitor = ResourceMonitor(monitor_resources) if monitor_resources else nullcontext()
    with _Signals() as sigs, monitor:
        for loop in range(first, last + 1):
            t0 = time.perf_counter()
            compiled0 = cw.seconds
            task = int(chooser(loop, ntasks))
            measure = loop % correlation_interval == 0
            mode = "train_test" if measure else "train"
            cols = np.arange(net.n_owned) if measure else None
            sim.start_trial(mode, loop, task, cols, (d.correlation_var,) if measure else ())
            start_step, learn_seq, prior = 1, 0, 0.0
            if resume and loop == first:
                sim.restore_trial_state(rows, globs)
                start_step = int(attrs["trial_step"]) + 1
                learn_seq = int(attrs["trial_learn_seq"])
                prior = float(attrs.get("trial_elapsed", 0.0))
            timing = dict.fromkeys(TIMING_FIELDS, 0.0)
            ex0, dl0 = float(sim.exchange_s[0]), float(sim.exchange_s[-1])
            stop_step = _run_loop(run, sim, learner, net, task, start_step, learn_seq, sigs,
                                  loop, timing)
            timing["exchange_s"] = float(sim.exchange_s[0]) - ex0
            if sim.exchange_s.size > 1:
                timing["deliver_s"] = float(sim.exchange_s[-1]) - dl0
            if stop_step is not None:
                _write_interrupt(run, sim, learner, net, cell, curve, nnz, loop, stop_step,
                                 prior + time.perf_counter() - t0, sched.keep)
                raise Interrupted(
                    f"stopped by signal {sigs.flag} at loop {loop} step {stop_step}; resume with "
                    f"'tsn-mpi train {run.run_dir} --restore-from-checkpoint {loop}i'"
                )
            res = sim.finish_trial()
            # rank 0's wall-time checkpoint decision rides on this Allreduce (no collective added)
            tot = comm.allreduce_sum(np.array([res.ns.sum(), sched.wall_flag(comm.rank)],
                                              np.int64))  # fmt: skip
            spikes, periodic = int(tot[0]), sched.due(loop, bool(tot[1])) or loop == last
            rate = 1000.0 * spikes / d.n_cells / (d.n_steps * cfg.simulation.dt)
            cor, n_nan = None, 0
            if measure:
                per = pearson_per_neuron(net.targets[task], res.bins[0])
                allc = comm.gatherv(per, comm.allgather_counts(per.size))
                cor, n_nan = comm.bcast(mean_correlation(allc) if comm.rank == 0 else None)
            elapsed = prior + time.perf_counter() - t0
            curve.append(loop, task, elapsed, rate, np.nan if cor is None else cor, n_nan,
                         timing)
            t_io = time.perf_counter()
            if save_best_checkpoint and cor is not None and n_nan == 0 and cor > maxcor:
                _save(run, net, learner, cell, curve, nnz, loop, "", cor=cor, best=True)
                maxcor = cor
            if periodic:
                agree(comm, lambda lp=loop: _save(run, net, learner, cell, curve, nnz, lp, "",
                                                  keep=sched.keep))  # fmt: skip
                sched.written()
            elapsed = prior + time.perf_counter() - t0
            curve.cols["elapsed_s"][-1] = elapsed
            curve.cols["io_s"][-1] = time.perf_counter() - t_io
            # the slowest rank's compilation held every rank (the ETA leaves it out)
            walls.add(elapsed, float(comm.allreduce_max(np.array([cw.seconds - compiled0]))[0]))
            # rank 0 writes; a storage error there stops every rank with the same line
            agree(comm, lambda: curve.write(run.run_dir / CURVE_NAME) if comm.rank == 0 else None)
            eta = walls.eta(last - loop)
            run.out.info(format_row(loop, task, elapsed, rate, cor, n_nan, eta))
            hb.update(loop=loop, task=task, rate_hz=rate, correlation=cor, eta_s=eta,
                      s_per_loop=walls.per_loop(), loop_ended=time.time())  # fmt: skip
            if monitor_resources:
                monitor.report(comm, run.out)
    return curve.arrays()


def _run_loop(run: Run, sim, learner, net, task, start_step, learn_seq, sigs, loop, timing):
    """Advance one loop from ``start_step``; returns the last step done if interrupted.

    ``timing`` accumulates seconds in the time loop, RLS and the chunk-boundary Allreduce."""
    d, comm = run.d, run.comm
    ls = d.learn_step
    step = start_step
    while step <= d.n_steps:
        t0 = time.perf_counter()
        if step % ls == 0 and step > d.stim_off_step:
            r_now = sim.traces_at(step - 1)
            nbad = learner.update(r_now, sim.r_ff, sim.u_bal, net.targets[task, learn_seq])
            learn_seq += 1
        else:
            nbad = 0
        t1 = time.perf_counter()
        end = min((step // ls + 1) * ls - 1, d.n_steps)
        sim.advance(step, end)
        t2 = time.perf_counter()
        flags = comm.allreduce_max(np.array([nbad > 0, sigs.flag], np.int64))
        timing["rls_s"] += t1 - t0
        timing["sim_s"] += t2 - t1
        timing["sync_s"] += time.perf_counter() - t2
        if flags[0]:
            _diverged(run, learner, loop, task, step)
        if flags[1] and end < d.n_steps:
            sim.learn_seq = learn_seq
            return end
        step = end + 1
    return None


def _diverged(run: Run, learner, loop, task, step) -> None:
    comm = run.comm
    bad = learner.bad_lids() + run.owned.start
    allbad = comm.gatherv(bad.astype(np.int64), comm.allgather_counts(bad.size))
    msg = None
    if comm.rank == 0:
        shown = ", ".join(str(g) for g in allbad[:20])
        more = f" and {allbad.size - 20} more" if allbad.size > 20 else ""
        msg = (f"training diverged at loop {loop}, task {task}, step {step}: non-finite weights, "
               f"P or currents in neuron(s) {shown}{more}; the last checkpoint is unchanged")
    raise DivergenceError(comm.bcast(msg))


def _save(run: Run, net, learner, cell, curve, nnz, loop, kind, cor=None, best=False,
          extra=None, trial=None, keep: int = 0) -> None:
    """Write checkpoint ``<loop><kind>`` (collective); then rank 0 keeps the newest ``keep``
    periodic/interrupt checkpoints (0: all) and, for a best one, only the newest best."""
    cdir = checkpoint_dir(run.run_dir)
    name = checkpoint_name(loop, kind, cor if best else None)
    learner.sync_to_host()  # GPU: weights live on the device
    rows, globs = checkpoint_payload(net, learner, cell, curve)
    if trial is not None:
        rows.update(trial[0])
        globs.update(trial[1])
    attrs = checkpoint_attrs(run.cfg, run.d, learner, nnz, loop, kind, **(extra or {}))
    write_checkpoint(cdir / name, run.comm, run.owned, run.d.n_cells, attrs, rows, globs)
    if best and run.comm.rank == 0:
        for c in list_checkpoints(cdir):
            if c.cor is not None and c.path.name != name:
                c.path.unlink(missing_ok=True)
    if not best:
        checkpointing.prune(run, keep)
    run.comm.barrier()


def _write_interrupt(run, sim, learner, net, cell, curve, nnz, loop, step, elapsed,
                     keep: int = 0) -> None:
    extra = {"trial_step": int(step), "trial_learn_seq": int(sim.learn_seq),
             "trial_elapsed": float(elapsed)}
    _save(run, net, learner, cell, curve, nnz, loop, "i", extra=extra, trial=sim.trial_state(),
          keep=keep)
