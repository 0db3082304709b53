"""test: trials without learning; spike times, PSTHs and rolling-average currents (spec §7)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tsn_mpi import rng
from tsn_mpi._version import __version__
from tsn_mpi.comm import Comm, SerialComm
from tsn_mpi.comm.agree import agree
from tsn_mpi.errors import ConfigError
from tsn_mpi.io import h5_write
from tsn_mpi.io.heartbeat import Heartbeat
from tsn_mpi.log import CompileWatch, format_seconds
from tsn_mpi.phases import heldout
from tsn_mpi.phases.common import (
    TEST_NAME,
    balance_by_work,
    check_memory,
    check_not_in_use,
    open_run,
    start_backend,
)
from tsn_mpi.phases.restore import read_run_files, restore_state
from tsn_mpi.simulate.trial import ROLL_NAMES

#: test trials run by default (``tsn-mpi test`` and ``run``): enough for the median and the
#: spread the figures draw
DEFAULT_TRIALS = 10


def parse_neurons(spec: str | list[int], n_cells: int) -> np.ndarray:
    """'0-15', '1,5,9' or a list -> sorted unique global ids, checked against n_cells."""
    if isinstance(spec, str):
        ids: list[int] = []
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            try:
                if "-" in part:
                    a, b = part.split("-", 1)
                    ids.extend(range(int(a), int(b) + 1))
                else:
                    ids.append(int(part))
            except ValueError:
                raise ConfigError(
                    f"test.neurons = {spec!r}: expected e.g. '0-15' or '1,5,9'"
                ) from None
    else:
        ids = [int(i) for i in spec]
    arr = np.unique(np.asarray(ids, dtype=np.int64))
    if arr.size == 0 or arr.min() < 0 or arr.max() >= n_cells:
        raise ConfigError(f"test.neurons = {spec!r}: ids must lie in [0, {n_cells})")
    return arr


def run_test(run_dir: str | Path, ntrials: int = DEFAULT_TRIALS,
             neurons: str | list[int] | None = None,
             restore_from_checkpoint: str | int | None = None, comm: Comm | None = None,
             quiet: bool = False, backend: str | None = None, force: bool = False) -> Path:
    """Run ``ntrials`` trials of every task; write test.h5 (rank 0) and return its path.

    ``force``: start even when the memory gate (:mod:`tsn_mpi.phases.memory`) says the launch
    does not fit, or another live job's heartbeat claims the run directory."""
    run = open_run(run_dir, comm, quiet, backend)
    check_not_in_use(run, "test", force)
    agree(run.comm, lambda: start_backend(run))
    check_memory(run, "test", force)
    hb = Heartbeat(run.run_dir, "test", active=run.comm.rank == 0, ranks=run.comm.size,
                   backend=run.cfg.run.backend, ntrials=ntrials)  # fmt: skip
    with hb, CompileWatch(run.out):
        return _test(run, hb, ntrials, neurons, restore_from_checkpoint)


def _test(run, hb: Heartbeat, ntrials: int, neurons, restore_from_checkpoint) -> Path:
    """:func:`run_test` once the run is open, its memory checked and its heartbeat beating."""
    cfg, d, comm = run.cfg, run.d, run.comm
    agree(comm, lambda: balance_by_work(run))
    owned = run.owned

    def setup():  # files and plugins, checked on every rank and agreed on (one clean error)
        rec = parse_neurons(cfg.test.neurons if neurons is None else neurons, d.n_cells)
        net, init, ck = read_run_files(run, restore_from_checkpoint)
        state = restore_state(run, net, init, ck, {"model_hash": cfg.model_hash()},
                              with_learner=False)  # fmt: skip
        return rec, net, ck, state.sim

    rec, net, ck, sim = agree(comm, setup)
    fit = agree(comm, lambda: heldout.open_recorder(run, net.targets.shape[0]))  # data fits
    run.out.info(f"using checkpoint {ck.label}; backend: {run.backend.describe()}")
    mine = rec[(rec >= owned.start) & (rec < owned.stop)]
    lids = mine - owned.start
    ntasks = net.targets.shape[0]
    n_rec = rec.size
    utot = np.zeros((ntrials, ntasks, len(ROLL_NAMES), d.n_learn, mine.size), np.float32)
    steps = np.zeros((ntrials, ntasks, mine.size, d.max_times), np.int32)
    counts = np.zeros((ntrials, ntasks, mine.size), np.int64)
    t_all = time.perf_counter()
    for trial in range(ntrials):
        for task in range(ntasks):
            t0 = time.perf_counter()
            done = trial * ntasks + task
            hb.update(trial=trial, task=task, progress=round(done / (ntrials * ntasks), 4))
            key = rng.TEST_TRIAL_OFFSET + trial * ntasks + task
            sim.start_trial("test", key, task, lids if fit is None else fit.cols, ROLL_NAMES)
            chunk = 1000
            for a in range(1, d.n_steps + 1, chunk):
                sim.advance(a, min(a + chunk - 1, d.n_steps))
            res = sim.finish_trial()
            if fit is not None:  # bins every unit like the data, keeps the recorded ones
                res = fit.add(res, task, lids)
            utot[trial, task] = res.bins
            steps[trial, task] = res.spike_steps
            counts[trial, task] = res.ns[lids]
            run.out.info(f"trial #{trial}, task #{task}: "
                         f"{format_seconds(time.perf_counter() - t0)}")  # fmt: skip
    # gather the (small) recordings to rank 0 in global id order
    cnt = comm.allgather_counts(mine.size)
    g_u = comm.gatherv(np.ascontiguousarray(np.moveaxis(utot, -1, 0)), cnt)
    g_s = comm.gatherv(np.ascontiguousarray(np.moveaxis(steps, 2, 0)), cnt)
    g_c = comm.gatherv(np.ascontiguousarray(np.moveaxis(counts, -1, 0)), cnt)
    tg = np.ascontiguousarray(net.targets[:, :, lids].transpose(2, 0, 1))
    g_t = comm.gatherv(tg, cnt)
    out = run.run_dir / TEST_NAME
    extra, lines, summ = fit.finish(comm, net.targets) if fit is not None else ({}, [], {})
    if comm.rank == 0:
        # rank 0 writes; a storage error there stops every rank with the same one line
        agree(comm, lambda: _write_test(out, cfg, d, ck.label, rec, ntrials, ntasks, g_u, g_s,
                                        g_c, g_t, extra))  # fmt: skip
        if summ:
            heldout.write_metrics_json(run.run_dir, summ, ck.label)
            for line in lines:
                run.out.info(line)
        run.out.info(f"wrote {out} ({n_rec} neurons, {ntrials} trial(s), {ntasks} task(s)) "
                     f"in {format_seconds(time.perf_counter() - t_all)}")  # fmt: skip
    else:
        agree(comm, lambda: None)  # rank 0's write, agreed on
    return out


def _write_test(path, cfg, d, label, rec, ntrials, ntasks, g_u, g_s, g_c, g_t,
                extra: dict | None = None) -> None:
    u = np.moveaxis(g_u, 0, -1)  # (ntrials, ntasks, 4, n_learn, n_rec)
    steps = np.moveaxis(g_s, 0, 2)  # (ntrials, ntasks, n_rec, max_times)
    count = np.moveaxis(g_c, 0, -1)  # (ntrials, ntasks, n_rec)
    stored = np.minimum(count, d.max_times)
    indptr = np.zeros((ntrials, ntasks, rec.size + 1), np.int64)
    flat = []
    total = 0
    for t in range(ntrials):
        for k in range(ntasks):
            for j in range(rec.size):
                s = steps[t, k, j, : stored[t, k, j]]
                flat.append(s)
                indptr[t, k, j] = total
                total += s.size
            indptr[t, k, rec.size] = total
    # indptr holds global offsets into the flat array for each (trial, task)
    attrs = {
        "dt": cfg.simulation.dt, "stim_off": cfg.simulation.stim_off,
        "learn_every": cfg.learning.learn_every, "train_time": d.train_time,
        "n_learn": d.n_learn, "ntrials": ntrials, "ntasks": ntasks, "checkpoint": label,
        "tsn_mpi_version": __version__,
    }
    with h5_write.create(path, SerialComm(), attrs=attrs) as w:
        w.write_global("neurons", rec)
        w.write_global("targets", np.ascontiguousarray(np.moveaxis(g_t, 0, -1)))
        for q, name in enumerate(ROLL_NAMES):
            w.write_global(name, np.ascontiguousarray(u[:, :, q]))
        w.write_global("spikes/indptr", indptr)
        w.write_global("spikes/steps", np.concatenate(flat).astype(np.int32) if flat else
                       np.zeros(0, np.int32))
        w.write_global("spikes/count", count)
        for name, arr in (extra or {}).items():  # a data fit's held-out scores
            w.write_global(name, arr)
