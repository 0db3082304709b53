"""Figures of a test run and of a learning curve, drawn from the files alone (spec §7.2, §7.3).

Reads ``test.h5`` (written by ``tsn-mpi test``) and ``learning-curve.h5`` (written by
``tsn-mpi train``); never imports the simulation.  matplotlib is imported inside the functions
and used without pyplot: every figure is a :class:`matplotlib.figure.Figure` on an Agg canvas,
so plotting changes no global backend, registers nothing with pyplot and leaves no figure open.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tsn_mpi.errors import DataFileError, TsnError

#: default cap on the number of neurons drawn when ``neurons`` is not given
MAX_DEFAULT_NEURONS = 16
#: one panel of a neuron grid, in inches (8 cm x 6.5 cm, spec §7.3)
PANEL_IN = (8.0 / 2.54, 6.5 / 2.54)
#: MAD -> standard deviation of a normal distribution
MAD_SCALE = 1.4826
#: spike times and bin edges are rounded to this many decimals of a ms before binning, so a
#: spike on an edge lands in the same bin whatever the float rounding of step*dt
_MS_DECIMALS = 9

CURVE_FIELDS = ("loop", "task", "elapsed_s", "firing_rate_hz", "correlation", "n_nan")
TEST_ATTRS = ("dt", "stim_off", "learn_every", "train_time", "n_learn", "ntrials", "ntasks")


class NeuronSelectionError(TsnError, ValueError):
    """The neurons asked for were not recorded in the test file."""


@dataclass(frozen=True)
class TestOutput:
    """The parts of ``test.h5`` the figures use, for the selected neurons only.

    gids: (n,) int64 global ids. targets: (ntasks, n_learn, n) float32.
    utotal: (ntrials, ntasks, n_learn, n) float32. spike_steps[t][k][j]: 1-based step numbers of
    neuron j in trial t, task k. capped: (n,) bool, True where stored spikes < true count.
    """

    __test__ = False  # not a pytest class

    dt: float
    stim_off: float
    learn_every: float
    train_time: float
    n_learn: int
    ntrials: int
    ntasks: int
    gids: NDArray[np.int64]
    targets: NDArray[np.float32]
    utotal: NDArray[np.float32]
    spike_steps: list[list[list[NDArray[np.int64]]]]
    capped: NDArray[np.bool_]

    def times_s(self) -> NDArray[np.float64]:
        """(n_learn,) sample times in s after stim_off: m*learn_every/1000, m = 1..n_learn."""
        return np.arange(1, self.n_learn + 1) * self.learn_every / 1000.0

    def edges_ms(self) -> NDArray[np.float64]:
        """(n_learn+1,) PSTH bin edges in ms: stim_off, stim_off+learn_every, ..., train_time."""
        return self.stim_off + self.learn_every * np.arange(self.n_learn + 1)


# --------------------------------------------------------------------------------------------
# pure helpers


def psth(
    spike_steps_per_trial: Iterable[NDArray[np.integer]],
    dt: float,
    edges_ms: NDArray[np.floating] | Sequence[float],
    ntrials: int,
) -> NDArray[np.float64]:
    """Peri-stimulus time histogram of one neuron, in Hz (spec §7.2).

    spike_steps_per_trial: one 1-D integer array per trial of 1-based step numbers (time in ms =
    step*dt). edges_ms: (n_bins+1,) increasing bin edges in ms; bins are closed on the left,
    ``[e_i, e_{i+1})`` (the last one too), spikes outside the edges are ignored.
    ntrials: the divisor (trials run, including those without spikes).
    Returns (n_bins,) float64: spike count / ntrials / bin width in s.
    """
    edges = np.round(np.asarray(edges_ms, dtype=np.float64), _MS_DECIMALS)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"edges_ms must be 1-D with at least 2 entries, got shape {edges.shape}")
    width_ms = np.diff(edges)
    if not np.all(width_ms > 0):
        raise ValueError("edges_ms must be strictly increasing")
    if ntrials <= 0:
        raise ValueError(f"ntrials must be positive, got {ntrials}")
    counts = np.zeros(edges.size - 1, dtype=np.int64)
    for steps in spike_steps_per_trial:
        t_ms = np.round(np.asarray(steps, dtype=np.float64) * dt, _MS_DECIMALS)
        idx = np.searchsorted(edges, t_ms, side="right") - 1
        idx = idx[(idx >= 0) & (idx < counts.size)]
        counts += np.bincount(idx, minlength=counts.size)
    return counts / ntrials / (width_ms / 1000.0)


def median_mad(x: NDArray[np.floating], axis: int = 0) -> tuple[NDArray, NDArray]:
    """Median and normalized MAD (1.4826 * median |x - median|) along ``axis``."""
    med = np.median(x, axis=axis)
    mad = MAD_SCALE * np.median(np.abs(x - np.expand_dims(med, axis)), axis=axis)
    return med, mad


def grid_shape(n: int) -> tuple[int, int]:
    """(nrows, ncols) of the neuron grid: nrows = isqrt(n), ncols = ceil(n/nrows) (spec §7.3)."""
    if n < 1:
        raise ValueError(f"need at least one panel, got {n}")
    nrows = math.isqrt(n)
    return nrows, -(-n // nrows)


def select_neurons(recorded: Sequence[int], neurons: Iterable[int] | None) -> list[int]:
    """Columns of ``recorded`` to draw, in the order asked for (duplicates dropped).

    neurons: global ids, all of which must be recorded (NeuronSelectionError names the others);
    None = the first :data:`MAX_DEFAULT_NEURONS` recorded neurons.
    """
    recorded = [int(g) for g in recorded]
    if neurons is None:
        return list(range(min(len(recorded), MAX_DEFAULT_NEURONS)))
    wanted = list(dict.fromkeys(int(g) for g in neurons))
    if not wanted:
        raise NeuronSelectionError("no neurons asked for")
    col = {g: j for j, g in enumerate(recorded)}
    missing = [g for g in wanted if g not in col]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise NeuronSelectionError(
            f"neurons {shown} were not recorded by the test run "
            f"({len(recorded)} recorded neurons; see test.neurons)"
        )
    return [col[g] for g in wanted]


# --------------------------------------------------------------------------------------------
# readers


def _check_complete(f: Any, path: Path) -> None:
    if not bool(f.attrs.get("complete", False)):
        raise DataFileError(f"{path} is incomplete (attribute 'complete' is not set)")


def read_test(test_file: str | Path, neurons: Iterable[int] | None = None) -> TestOutput:
    """Read ``test.h5`` for the selected neurons (see :func:`select_neurons`)."""
    import h5py

    path = Path(test_file)
    if not path.is_file():
        raise DataFileError(f"test output {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            _check_complete(f, path)
            a = {k: f.attrs[k] for k in TEST_ATTRS}
            recorded = np.asarray(f["neurons"][()], dtype=np.int64)
            cols = select_neurons(recorded.tolist(), neurons)
            targets = np.asarray(f["targets"][()])[..., cols]
            utotal = np.asarray(f["utotal"][()])[..., cols]
            indptr = np.asarray(f["spikes/indptr"][()], dtype=np.int64)
            steps = np.asarray(f["spikes/steps"][()], dtype=np.int64)
            count = np.asarray(f["spikes/count"][()], dtype=np.int64)
    except KeyError as e:
        raise DataFileError(f"{path} lacks {e.args[0] if e.args else 'a dataset'}") from None
    except OSError as e:
        raise DataFileError(f"cannot read {path}: {e}") from None
    ntrials, ntasks, n_learn = int(a["ntrials"]), int(a["ntasks"]), int(a["n_learn"])
    if utotal.shape[:3] != (ntrials, ntasks, n_learn) or targets.shape[:2] != (ntasks, n_learn):
        raise DataFileError(
            f"{path}: utotal {utotal.shape} / targets {targets.shape} do not match "
            f"ntrials={ntrials}, ntasks={ntasks}, n_learn={n_learn}"
        )
    if ntrials < 1:
        raise DataFileError(f"{path} holds no finished trial")
    spike_steps = [
        [[steps[indptr[t, k, j] : indptr[t, k, j + 1]] for j in cols] for k in range(ntasks)]
        for t in range(ntrials)
    ]
    stored = np.diff(indptr, axis=-1)[..., cols]
    return TestOutput(
        dt=float(a["dt"]),
        stim_off=float(a["stim_off"]),
        learn_every=float(a["learn_every"]),
        train_time=float(a["train_time"]),
        n_learn=n_learn,
        ntrials=ntrials,
        ntasks=ntasks,
        gids=recorded[cols],
        targets=targets,
        utotal=utotal,
        spike_steps=spike_steps,
        capped=np.any(count[..., cols] > stored, axis=(0, 1)),
    )


def read_learning_curve(curve_file: str | Path) -> dict[str, NDArray]:
    """Read ``learning-curve.h5``: one 1-D array per field of :data:`CURVE_FIELDS`."""
    import h5py

    path = Path(curve_file)
    if not path.is_file():
        raise DataFileError(f"learning curve {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            _check_complete(f, path)
            curve = {k: np.asarray(f[k][()]) for k in CURVE_FIELDS}
    except KeyError as e:
        raise DataFileError(f"{path} lacks {e.args[0] if e.args else 'a dataset'}") from None
    except OSError as e:
        raise DataFileError(f"cannot read {path}: {e}") from None
    lengths = {k: v.shape for k, v in curve.items()}
    if len(set(lengths.values())) != 1 or curve["loop"].ndim != 1:
        raise DataFileError(f"{path}: datasets differ in shape: {lengths}")
    curve["correlation"] = curve["correlation"].astype(np.float64)
    return curve


# --------------------------------------------------------------------------------------------
# figures


def new_figure(figsize: tuple[float, float], **kwargs: Any) -> Any:
    """A Figure on an Agg canvas, unknown to pyplot (nothing to close, nothing leaks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def check_formats(formats: Iterable[str]) -> list[str]:
    """Lower-cased file formats without dots; ValueError for one matplotlib cannot write."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmts = [str(f).lower().lstrip(".") for f in formats]
    if not fmts:
        raise ValueError("no output format given")
    known = FigureCanvasBase.get_supported_filetypes()
    bad = [f for f in fmts if f not in known]
    if bad:
        raise ValueError(f"unsupported figure format(s) {bad}; use one of {sorted(known)}")
    return fmts


def save_figure(fig: Any, stem: Path, formats: Sequence[str]) -> list[Path]:
    """Save ``fig`` as ``stem.<fmt>`` for every format, then clear it; returns the paths.
    Each file is written under a temporary name and renamed when complete (a full disk leaves
    the previous figure, never a truncated one); an OSError names the figure's file."""
    out = []
    for fmt in formats:
        p = stem.with_name(f"{stem.name}.{fmt}")
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        try:
            fig.savefig(tmp, format=fmt, dpi=150)
            os.replace(tmp, p)
        except BaseException as e:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:  # e.g. a read-only file system: nothing was written either
                pass
            if isinstance(e, OSError):
                raise OSError(e.errno, e.strerror or str(e), str(p)) from e
            raise
        out.append(p)
    fig.clear()
    return out


def _neuron_grid(n: int, suptitle: str) -> tuple[Any, list[Any]]:
    nrows, ncols = grid_shape(n)
    fig = new_figure((ncols * PANEL_IN[0], nrows * PANEL_IN[1]))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(suptitle)
    return fig, list(axes[:n])


def _label(ax: Any, i: int, n: int, ylabel: str, gid: int, capped: bool) -> None:
    nrows, ncols = grid_shape(n)
    ax.set_title(f"neuron #{gid}" + (" (spikes capped)" if capped else ""))
    if i % ncols == 0:
        ax.set_ylabel(ylabel)
    if i + ncols >= n:  # nothing drawn below this panel
        ax.set_xlabel("time after stimulus offset (s)")
    if i == 0:
        ax.legend(loc="best", frameon=False)


def plot_test(
    test_file: str | Path,
    neurons: Iterable[int] | None = None,
    out_dir: str | Path | None = None,
    formats: Sequence[str] = ("pdf", "png"),
    rates: NDArray[np.floating] | None = None,
) -> list[Path]:
    """Draw the synaptic-input and PSTH figures of a test run (spec §7.3).

    For every task k (0-based, as in the file: task0, task1, ...) writes
    ``test-syninput-task{k}.{fmt}`` (target "data"; with several trials the median over trials
    with a band of ± normalized MAD and trial 0 thin; with one trial that trial alone) and
    ``test-psth-task{k}.{fmt}`` (PSTH "model"; ``rates`` overlaid as "data" when given) for
    every format.  Legends list only what is drawn (no band where the MAD is zero).

    neurons: global ids (0-based) to draw, all recorded in ``test_file`` (NeuronSelectionError,
    a ValueError, names the others); default the first 16 recorded. out_dir: default the test
    file's folder. rates: target rates in Hz, (n_learn, N) for every task or
    (ntasks, n_learn, N), indexed by global id. Returns the written paths.
    """
    fmts = check_formats(formats)
    data = read_test(test_file, neurons)
    out = Path(out_dir) if out_dir is not None else Path(test_file).parent
    out.mkdir(parents=True, exist_ok=True)
    rates_k = _task_rates(rates, data) if rates is not None else None

    import matplotlib

    x = data.times_s()
    edges = data.edges_ms()
    n = data.gids.size
    written: list[Path] = []
    with matplotlib.rc_context({"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7}):
        for k in range(data.ntasks):
            med, mad = median_mad(data.utotal[:, k], axis=0)
            trials = f"{data.ntrials} trial{'s' if data.ntrials > 1 else ''}"
            fig, axes = _neuron_grid(n, f"synaptic input, task {k} ({trials})")
            for j, ax in enumerate(axes):
                ax.plot(x, data.targets[k, :, j], color="k", lw=1.2, label="data")
                _model_lines(ax, x, data.utotal[:, k, :, j], med[:, j], mad[:, j])
                _label(ax, j, n, "synaptic input (a.u.)", int(data.gids[j]), False)
            written += save_figure(fig, out / f"test-syninput-task{k}", fmts)

            fig, axes = _neuron_grid(n, f"spike rate, task {k} ({trials})")
            for j, ax in enumerate(axes):
                trials = [data.spike_steps[t][k][j] for t in range(data.ntrials)]
                hz = psth(trials, data.dt, edges, data.ntrials)
                if rates_k is not None:
                    ax.plot(x, rates_k[k][:, data.gids[j]], color="k", lw=1.2, label="data")
                ax.plot(x, hz, color="C0", lw=1.2, label="model")
                ax.set_ylim(bottom=0)
                _label(ax, j, n, "spike rate (Hz)", int(data.gids[j]), bool(data.capped[j]))
            written += save_figure(fig, out / f"test-psth-task{k}", fmts)
    return written


def _model_lines(ax: Any, x: NDArray, trials: NDArray, med: NDArray, mad: NDArray) -> None:
    """The model's synaptic input of one neuron, ``trials`` (ntrials, n_learn): with one trial
    that trial; with several the median, its ± MAD band (when not zero) and trial 0 thin."""
    ntrials = trials.shape[0]
    if ntrials == 1:
        ax.plot(x, trials[0], color="C0", lw=1.2, label="model (1 trial)")
        return
    if np.any(mad > 0):
        ax.fill_between(x, med - mad, med + mad, color="C0", alpha=0.3, lw=0,
                        label="model ± MAD")  # fmt: skip
    ax.plot(x, med, color="C0", lw=1.2, label=f"model (median of {ntrials} trials)")
    ax.plot(x, trials[0], color="C1", lw=0.6, alpha=0.8, label="model, trial 0")


def _task_rates(rates: NDArray[np.floating], data: TestOutput) -> list[NDArray]:
    r = np.asarray(rates, dtype=np.float64)
    if r.ndim == 2:
        r = np.broadcast_to(r, (data.ntasks, *r.shape))
    if r.ndim != 3 or r.shape[:2] != (data.ntasks, data.n_learn):
        raise ValueError(
            f"rates must be (n_learn={data.n_learn}, N) or (ntasks={data.ntasks}, "
            f"n_learn, N), got {np.shape(rates)}"
        )
    if data.gids.max() >= r.shape[2]:
        raise ValueError(f"rates has {r.shape[2]} neurons but neuron #{data.gids.max()} is drawn")
    return list(r)


def plot_learning_curve(
    curve_file: str | Path,
    out_dir: str | Path | None = None,
    formats: Sequence[str] = ("pdf", "png"),
) -> list[Path]:
    """Draw ``learning-curve.{fmt}``: correlation (top) and firing rate (bottom) per loop.

    One line per task (0-based); only loops where the correlation was measured appear in the
    top panel, loops where some neurons gave NaN correlations are circled in red.
    out_dir: default the curve file's folder. Returns the written paths.
    """
    fmts = check_formats(formats)
    c = read_learning_curve(curve_file)
    out = Path(out_dir) if out_dir is not None else Path(curve_file).parent
    out.mkdir(parents=True, exist_ok=True)

    import matplotlib
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context({"font.size": 9, "legend.fontsize": 8}):
        fig = new_figure((16 / 2.54, 13 / 2.54))
        ax_c, ax_r = fig.subplots(2, 1, sharex=True)
        loop, task = c["loop"], c["task"]
        for k in np.unique(task):
            sel = task == k
            meas = sel & np.isfinite(c["correlation"])
            ax_c.plot(loop[meas], c["correlation"][meas], "o-", ms=3, label=f"task {k}")
            ax_r.plot(loop[sel], c["firing_rate_hz"][sel], "o-", ms=3, label=f"task {k}")
        bad = np.isfinite(c["correlation"]) & (c["n_nan"] > 0)
        if bad.any():
            ax_c.plot(loop[bad], c["correlation"][bad], "o", ms=8, mfc="none", mec="r",
                      label="some neurons NaN")  # fmt: skip
        if not np.isfinite(c["correlation"]).any():
            ax_c.text(0.5, 0.5, "correlation not measured", transform=ax_c.transAxes,
                      ha="center", va="center")  # fmt: skip
        ax_c.set_ylabel("correlation (Pearson r)")
        ax_r.set_ylabel("firing rate (Hz)")
        ax_r.set_xlabel("training loop")
        ax_r.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in (ax_c, ax_r):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", frameon=False)
        mean_s = float(np.mean(c["elapsed_s"])) if loop.size else float("nan")
        fig.suptitle(f"learning curve: {loop.size} loops, {mean_s:.3g} s/loop")
        return save_figure(fig, out / "learning-curve", fmts)
