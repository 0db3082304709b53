"""Held-out evaluation of a data fit, done by the test phase (and ``tsn-mpi evaluate``).

When ``data.file`` is set, every test trial records the spikes and rolling-average currents
of all owned neurons; they are binned exactly like the recording (data bins over the fitted
window, which starts at stim_off) and summed over trials.  After the last trial the counts go
to rank 0, which smooths them like the data, scores the model's PSTHs against the held-out
trials (:mod:`tsn_mpi.data.metrics`), stores per-unit values in ``test.h5`` (group
``heldout/``), writes ``fit-metrics.json`` and prints the one-screen summary.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tsn_mpi.data import binning, metrics
from tsn_mpi.data.fitfile import FitData, read_fit
from tsn_mpi.data.prepare import FIT_NAME
from tsn_mpi.errors import DataFileError
from tsn_mpi.simulate.trial import ROLL_NAMES, TrialResult

METRICS_NAME = "fit-metrics.json"


class FitRecorder:
    """Accumulates the model's binned spikes and currents of this rank's neurons over trials."""

    def __init__(self, run, fit: FitData, ntasks: int) -> None:
        d, owned = run.d, run.owned
        if abs(fit.window_ms - run.cfg.simulation.train_duration) > 1e-6:
            raise DataFileError(
                f"{fit.path}: window {fit.window_ms:g} ms but simulation.train_duration = "
                f"{run.cfg.simulation.train_duration:g}; rerun 'tsn-mpi init'"
            )
        self.fit, self.d = fit, d
        self.dt, self.t0 = run.cfg.simulation.dt, run.cfg.simulation.stim_off
        self.n_units_local = max(0, min(owned.stop, fit.n_units) - owned.start)
        self.cols = np.arange(len(owned), dtype=np.int64)  # record every owned neuron
        self.var = ROLL_NAMES.index(d.correlation_var)
        self.counts = np.zeros((ntasks, self.n_units_local, fit.n_bins), np.int64)
        self.current = np.zeros((ntasks, d.n_learn, len(owned)), np.float64)
        self.ntrials = np.zeros(ntasks, np.int64)

    def add(self, res: TrialResult, task: int, lids: np.ndarray) -> TrialResult:
        """Bin one finished trial; returns it restricted to the recorded neurons ``lids``."""
        steps = res.spike_steps
        self.counts[task] += binning.model_counts(steps[: self.n_units_local], self.dt, self.t0,
                                                  self.fit.bin_ms, self.fit.n_bins)  # fmt: skip
        self.current[task] += res.bins[self.var]
        self.ntrials[task] += 1
        return TrialResult(res.ns, res.bins[:, :, lids], steps[lids], res.uavg, res.u0_std)

    def finish(self, comm, targets: np.ndarray) -> tuple[dict[str, np.ndarray], list[str], dict]:
        """Collective: gather to rank 0 and score.  Returns (datasets for test.h5, summary
        lines, summary numbers) on rank 0, empty ones elsewhere.

        targets: (ntasks, n_learn, n_owned) target currents of the owned neurons.
        """
        nt = np.maximum(self.ntrials, 1)[:, None, None]
        mean_cur = self.current / nt
        cur_r = np.nanmean(np.stack([metrics.pearson(mean_cur[k], targets[k])
                                     for k in range(targets.shape[0])]), axis=0)  # fmt: skip
        offset = (mean_cur - targets).mean(axis=(0, 1))
        per = comm.allgather_counts(cur_r.size)
        g_r = comm.gatherv(np.ascontiguousarray(cur_r), per)
        g_off = comm.gatherv(np.ascontiguousarray(offset), per)
        cnt = comm.allgather_counts(self.n_units_local)
        g_c = comm.gatherv(np.ascontiguousarray(np.moveaxis(self.counts, 1, 0)), cnt)
        if comm.rank != 0:
            return {}, [], {}
        counts = np.moveaxis(g_c, 0, -1)  # (ntasks, n_bins, n_units)
        ntrials = int(self.ntrials.max())
        return score(self.fit, counts, ntrials, g_r[: self.fit.n_units], g_off)


def score(fit: FitData, counts: np.ndarray, ntrials: int, current_r: np.ndarray,
          offset: np.ndarray) -> tuple[dict[str, np.ndarray], list[str], dict]:  # fmt: skip
    """Metrics of binned model counts (ntasks, n_bins, n_units) summed over ``ntrials``."""
    k = binning.kernel(fit.smooth_kernel, fit.smooth_width, fit.bin_ms)
    rate = counts / max(ntrials, 1) / (fit.bin_ms / 1000.0)
    model = np.moveaxis(binning.smooth(np.moveaxis(rate, 1, -1), k), -1, 1)
    m = metrics.evaluate(model, fit.reference, fit.train, current_r)
    held = fit.heldout is not None
    if not held:  # scored on the fitted PSTH itself: no ceiling
        m.ceiling[:] = np.nan
        m.ceiling_cond[:] = np.nan
    lines = metrics.summary_lines(m, fit.conditions, heldout=held)
    if held and fit.n_train.size and ntrials < int(fit.n_train.max()):
        lines.append(
            f"  note: {ntrials} model trial(s) per condition, fewer than the "
            f"{int(fit.n_train.max())} training trials behind the ceiling (--ntrials)"
        )
    data = {f"heldout/{name}": np.asarray(v) for name, v in m.as_dict().items()}
    data["heldout/model_psth"] = model.astype(np.float32)
    data["heldout/model_counts"] = counts.astype(np.int32)
    data["heldout/current_offset"] = np.asarray(offset, np.float64)
    summ = metrics.summary(m)
    summ.update(
        ntrials=ntrials,
        heldout=held,
        conditions=fit.conditions,
        current_offset_mean=float(np.mean(offset)),
    )
    return data, lines, summ


def open_recorder(run, ntasks: int) -> FitRecorder | None:
    """A recorder when the run fits a recording (``data.file`` set), else None."""
    if not run.cfg.data.file:
        return None
    return FitRecorder(run, read_fit(Path(run.run_dir) / FIT_NAME), ntasks)


def write_metrics_json(run_dir: str | Path, summ: dict, checkpoint: str) -> Path:
    """``fit-metrics.json``: the summary numbers (NaN written as null)."""
    path = Path(run_dir) / METRICS_NAME
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in summ.items()}  # fmt: skip
    clean["checkpoint"] = checkpoint
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(clean, indent=1) + "\n")
    tmp.replace(path)
    return path


def evaluate_run(run_dir: str | Path) -> tuple[list[str], dict]:
    """Re-score ``test.h5`` against ``data-fit.h5`` without simulating (``tsn-mpi evaluate``):
    returns the summary lines and numbers and rewrites fit-metrics.json."""
    import h5py

    run_dir = Path(run_dir)
    fit = read_fit(run_dir / FIT_NAME)
    path = run_dir / "test.h5"
    if not path.is_file():
        raise DataFileError(f"{path}: not found; run 'tsn-mpi test {run_dir}' first")
    try:
        with h5py.File(path, "r") as fh:
            counts = np.asarray(fh["heldout/model_counts"][()])
            cur_r = np.asarray(fh["heldout/current_r"][()])
            offset = np.asarray(fh["heldout/current_offset"][()])
            ntrials = int(fh.attrs["ntrials"])
            label = str(fh.attrs.get("checkpoint", ""))
    except KeyError:
        raise DataFileError(f"{path}: has no held-out evaluation (written before data.file "
                            "was set?); rerun 'tsn-mpi test'") from None  # fmt: skip
    _, lines, summ = score(fit, counts, ntrials, cur_r, offset)
    write_metrics_json(run_dir, summ, label)
    return lines, summ
