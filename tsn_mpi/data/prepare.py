"""A recording -> the files a fit trains and is scored on, in the run directory.

``data-rates.npy`` (n_learn, n_cells, n_conditions) float32 Hz: the training trials' smoothed
PSTHs on the learning grid (hidden neurons: a constant rate), which ``targets.from_rate_file``
turns into target currents through the existing, cached rate-to-current path.
``data-fit.h5``: the training and held-out PSTHs (n_conditions, n_bins, n_units), the ceiling
and split-half reliability per unit, units, trials, the split and the settings, read by the
test phase, ``tsn-mpi evaluate`` and the fit figures (layout: docs/fitting.md).

Units are binned in blocks (memory O(block x trials' bins), not O(all units x trials x bins)),
so a 66,000-unit recording is prepared in about a GB.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tsn_mpi.data import binning
from tsn_mpi.data.metrics import pearson
from tsn_mpi.data.recording import SPAN_SLACK_S, Recording, check_recording
from tsn_mpi.data.split import split_trials
from tsn_mpi.errors import ConfigError, DataFileError

FIT_NAME = "data-fit.h5"
RATES_NAME = "data-rates.npy"
FORMAT_VERSION = 1
UNIT_BLOCK = 4096  # units binned at a time
RASTER_UNITS = 100  # units whose spikes in one held-out trial are kept for the raster figure


@dataclass
class Binned:
    """What a recording becomes: PSTHs (n_cond, n_bins, n_units) Hz, smoothed, and stats."""

    source: str
    format: str
    unit_ids: NDArray[np.int64]
    rate: NDArray[np.float64]  # (U,) mean rate over the windows (Hz)
    train: NDArray[np.float32]  # PSTH of the training trials
    heldout: NDArray[np.float32] | None  # PSTH of the held-out trials (None: none)
    ceiling: NDArray[np.float64]  # (U,) r(train, heldout), all conditions
    ceiling_cond: NDArray[np.float64]  # (C, U)
    split_half: NDArray[np.float64]  # (U,) r of two halves of all trials
    conditions: list[str]
    n_train: NDArray[np.int64]  # (C,) trials per condition (0: unknown)
    n_heldout: NDArray[np.int64]
    bin_ms: float
    window_start: float
    window_ms: float
    n_dropped: int  # units left out by min_rate / max_units
    trials: dict[str, NDArray] = field(default_factory=dict)
    raster: dict[str, NDArray] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return self.unit_ids.size

    @property
    def n_bins(self) -> int:
        return self.train.shape[1]


# ---- the input ---------------------------------------------------------------------------


def data_path(cfg, run_dir: str | Path) -> Path:
    """``data.file`` resolved against the run directory."""
    p = Path(cfg.data.file)
    return p if p.is_absolute() else Path(run_dir) / p


def detect_format(path: Path, fmt: str) -> str:
    """'nwb', 'sonata' or 'psth' from ``data.format`` or the file's suffix and content."""
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".nwb":
        return "nwb"
    if suffix == ".npy":
        return "psth"
    if suffix in (".h5", ".hdf5") and path.is_file():
        import h5py

        try:
            with h5py.File(path, "r") as fh:
                if "spikes" in fh:
                    return "sonata"
                if "units" in fh and "intervals" in fh or "nwb_version" in fh.attrs:
                    return "nwb"
                return "psth"
        except OSError as exc:
            raise DataFileError(f"{path}: cannot be read as HDF5 ({exc})") from None
    if not path.is_file():
        raise DataFileError(f"{path}: recording not found (data.file)")
    raise DataFileError(f"{path}: unknown recording type {suffix!r}; expected .nwb, SONATA .h5, "
                        ".npy or .h5 PSTH array (or set data.format)")  # fmt: skip


def _aux_path(cfg, run_dir: Path) -> Path | None:
    if not cfg.data.trials:
        return None
    p = Path(cfg.data.trials)
    return p if p.is_absolute() else run_dir / p


def settings_key(cfg) -> str:
    """Hash of the [data] settings and learning.learn_every: data-fit.h5 and data-rates.npy
    are rebuilt when it changes."""
    h = hashlib.sha256(json.dumps(cfg.data.as_dict(), sort_keys=True).encode())
    h.update(repr(float(cfg.learning.learn_every)).encode())
    h.update(str(FORMAT_VERSION).encode())
    return h.hexdigest()[:20]


def file_key(cfg, run_dir: str | Path) -> str:
    """Size and modification time of the recording (and trials file): a rewritten recording
    is prepared again; a recording no longer there keeps the prepared files."""
    run_dir = Path(run_dir)
    h = hashlib.sha256()
    for p in (data_path(cfg, run_dir), _aux_path(cfg, run_dir)):
        if p is not None and p.is_file():
            st = p.stat()
            h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def read_input(cfg, run_dir: str | Path):
    """The recording (:class:`Recording`) or PSTH array of ``data.file``, and its format."""
    run_dir = Path(run_dir)
    s = cfg.data
    path = data_path(cfg, run_dir)
    if not s.file:
        raise ConfigError("data.file is empty: this run does not fit a recording")
    if not path.is_file():
        raise DataFileError(f"{path}: recording not found (data.file)")
    fmt = detect_format(path, s.format)
    if fmt == "nwb":
        from tsn_mpi.data.nwb import read_nwb

        rec = read_nwb(path, s.condition, s.align)
    elif fmt == "sonata":
        from tsn_mpi.data.sonata import read_sonata

        rec = read_sonata(path, _aux_path(cfg, run_dir) or "", s.population, s.condition,
                          s.align)  # fmt: skip
    else:
        from tsn_mpi.data.psth_array import read_psth

        return read_psth(path, s.bin_width), fmt
    check_recording(rec)
    return rec, fmt


# ---- binning a recording -----------------------------------------------------------------


def bin_input(cfg, run_dir: str | Path) -> Binned:
    """Read ``data.file`` and make the PSTHs the fit needs (see the module docstring)."""
    obj, fmt = read_input(cfg, run_dir)
    if fmt == "psth":
        return _from_psth(cfg, obj)
    return _from_recording(cfg, obj, fmt)


def _window(cfg, rec: Recording) -> tuple[NDArray[np.float64], float]:
    s, tr = cfg.data, rec.trials
    if s.window_stop == "auto":
        stop_ms = float(np.min(tr.stop - tr.align)) * 1000.0
    else:
        stop_ms = float(s.window_stop)
    width = round(stop_ms - s.window_start, 6)
    if not width > 0:
        raise ConfigError(
            f"{rec.source}: the fitted window [{s.window_start:g}, {stop_ms:g}] ms "
            "after the alignment is empty (data.window_start, data.window_stop)"
        )
    t0 = tr.align + s.window_start / 1000.0
    first, last = rec.span
    out = np.flatnonzero((t0 < min(first, 0.0)) | (t0 + width / 1000.0 > last + SPAN_SLACK_S))
    if out.size:
        i = int(out[0])
        raise DataFileError(
            f"{rec.source}: the window of trial {i} [{t0[i]:.6g}, {t0[i] + width / 1000:.6g}] s "
            f"lies outside the recording [{first:.6g}, {last:.6g}] s (data.align, data.window_*)"
        )
    return t0, width


def _from_recording(cfg, rec: Recording, fmt: str) -> Binned:
    s = cfg.data
    t0, width = _window(cfg, rec)
    bin_ms = float(s.bin_width)
    n_bins = binning.n_bins_of(width, bin_ms, rec.source)
    names = rec.trials.conditions()
    cond = rec.trials.condition_index()
    C = len(names)
    sp = split_trials(
        cond, names, s.heldout_fraction, s.split_seed, rec.trials.source or rec.source
    )
    has_held = s.heldout_fraction > 0
    n_train, n_held = sp.counts(cond, C)
    n_half = np.stack([np.bincount(cond[sp.half == h], minlength=C) for h in (0, 1)], axis=1)
    group = cond * 4 + sp.heldout.astype(np.int64) * 2 + sp.half
    k = binning.kernel(s.smooth_kernel, s.smooth_width, bin_ms)
    bin_s = bin_ms / 1000.0
    keep_ids, rates, trains, helds, halves = [], [], [], [], []
    n_kept = 0
    limit = s.max_units if s.max_units > 0 else rec.n_units
    for u0 in range(0, rec.n_units, UNIT_BLOCK):
        if n_kept >= limit:
            break
        u1 = min(u0 + UNIT_BLOCK, rec.n_units)
        ptr = rec.indptr[u0 : u1 + 1]
        cnt = binning.group_counts(
            ptr - ptr[0], rec.times[ptr[0] : ptr[-1]], t0, bin_ms, n_bins, group, 4 * C
        ).reshape(u1 - u0, C, 2, 2, n_bins)
        rate = cnt.sum(axis=(1, 2, 3, 4)) / (rec.trials.n * width / 1000.0)
        sel = np.flatnonzero(rate >= s.min_rate)[: limit - n_kept]
        if sel.size == 0:
            continue
        n_kept += sel.size
        cnt = cnt[sel].astype(np.float64)
        keep_ids.append(u0 + sel)
        rates.append(rate[sel])
        if has_held:
            trains.append(cnt[:, :, 0].sum(axis=2) / n_train[None, :, None] / bin_s)
            helds.append(cnt[:, :, 1].sum(axis=2) / n_held[None, :, None] / bin_s)
        else:
            trains.append(cnt.sum(axis=(2, 3)) / np.maximum(n_train, 1)[None, :, None] / bin_s)
        halves.append(cnt.sum(axis=2) / np.maximum(n_half, 1)[None, :, :, None] / bin_s)
    if n_kept == 0:
        raise DataFileError(f"{rec.source}: no unit fires at >= data.min_rate = {s.min_rate:g} "
                            "Hz in the trial windows")  # fmt: skip
    idx = np.concatenate(keep_ids)
    train = binning.smooth(np.concatenate(trains), k)  # (U, C, B)
    held = binning.smooth(np.concatenate(helds), k) if has_held else None
    half = binning.smooth(np.concatenate(halves), k)  # (U, C, 2, B)
    split_half = pearson(_tb(half[:, :, 0]), _tb(half[:, :, 1]))
    split_half[np.any(n_half == 0)] = np.nan
    ceiling = pearson(_tb(train), _tb(held)) if has_held else np.full(idx.size, np.nan)
    ceiling_cond = (np.stack([pearson(train[:, c].T, held[:, c].T) for c in range(C)])
                    if has_held else np.full((C, idx.size), np.nan))  # fmt: skip
    raster = _raster(rec, idx, t0, width, cond, sp.heldout if has_held else None, C)
    trials = {"start": rec.trials.start, "stop": rec.trials.stop, "align": rec.trials.align,
              "condition": cond, "heldout": sp.heldout, "half": sp.half}  # fmt: skip
    return Binned(
        rec.source,
        fmt,
        rec.unit_ids[idx],
        np.concatenate(rates),
        _cbu(train),
        None if held is None else _cbu(held),
        ceiling,
        ceiling_cond,
        split_half,
        names,
        n_train,
        n_held,
        bin_ms,
        float(s.window_start),
        width,
        rec.n_units - idx.size,
        trials,
        raster,
    )


def _tb(x: NDArray) -> NDArray:
    """(U, C, B) -> (C*B, U) for per-unit correlations over all conditions' bins."""
    return np.asarray(x).reshape(x.shape[0], -1).T


def _cbu(x: NDArray) -> NDArray[np.float32]:
    """(U, C, B) -> (C, B, U) float32, the layout of targets and test output."""
    return np.ascontiguousarray(np.transpose(x, (1, 2, 0)), dtype=np.float32)


def _raster(rec: Recording, idx, t0, width, cond, heldout, C) -> dict[str, NDArray]:
    """Spikes (ms into the window) of the first RASTER_UNITS units in one held-out trial (or
    the first trial) of each condition."""
    units = idx[:RASTER_UNITS]
    ptrs, times, which = [], [], []
    for c in range(C):
        pick = np.flatnonzero((cond == c) & (heldout if heldout is not None else True))
        i = int(pick[0])
        ptr, t = binning.trial_spikes(rec.indptr, rec.times, units, float(t0[i]), width)
        ptrs.append(ptr + sum(x.size for x in times))
        times.append(t)
        which.append(i)
    return {"indptr": np.stack(ptrs), "times_ms": np.concatenate(times),
            "trial": np.array(which, np.int64)}  # fmt: skip


def _from_psth(cfg, arr) -> Binned:
    s = cfg.data
    k = binning.kernel(s.smooth_kernel, s.smooth_width, arr.bin_ms)
    rate = arr.psth.mean(axis=(1, 2))
    sel = np.flatnonzero(rate >= s.min_rate)
    if s.max_units > 0:
        sel = sel[: s.max_units]
    if sel.size == 0:
        raise DataFileError(f"{arr.source}: no unit has a mean rate >= data.min_rate = "
                            f"{s.min_rate:g} Hz")  # fmt: skip
    train = binning.smooth(arr.psth[sel], k)
    held = binning.smooth(arr.heldout[sel], k) if arr.heldout is not None else None
    C, B = train.shape[1], train.shape[2]
    ceiling = pearson(_tb(train), _tb(held)) if held is not None else np.full(sel.size, np.nan)
    ceiling_cond = (np.stack([pearson(train[:, c].T, held[:, c].T) for c in range(C)])
                    if held is not None else np.full((C, sel.size), np.nan))  # fmt: skip
    zero = np.zeros(C, np.int64)
    return Binned(
        arr.source,
        "psth",
        arr.unit_ids[sel],
        rate[sel],
        _cbu(train),
        None if held is None else _cbu(held),
        ceiling,
        ceiling_cond,
        np.full(sel.size, np.nan),
        arr.conditions,
        zero,
        zero,
        arr.bin_ms,
        0.0,
        B * arr.bin_ms,
        arr.n_units - sel.size,
    )


# ---- the outputs ---------------------------------------------------------------------------


def hidden_rate(cfg, b: Binned) -> float:
    r = cfg.data.hidden_rate
    return float(np.mean(b.rate)) if r == "auto" else float(r)


def target_rates(cfg, b: Binned) -> NDArray[np.float32]:
    """(n_learn, n_units + hidden, n_cond) float32 Hz: training PSTHs on the learning grid."""
    grid = binning.to_learn_grid(np.transpose(b.train, (0, 2, 1)), b.bin_ms,
                                 cfg.learning.learn_every)  # (C, U, n_learn)  # fmt: skip
    out = np.transpose(grid, (2, 1, 0))
    if cfg.data.hidden:
        extra = np.full((out.shape[0], cfg.data.hidden, out.shape[2]), hidden_rate(cfg, b))
        out = np.concatenate([out, extra], axis=1)
    return np.ascontiguousarray(out, dtype=np.float32)


def write_outputs(cfg, run_dir: str | Path, b: Binned) -> tuple[Path, Path]:
    """Write data-rates.npy and data-fit.h5 atomically; returns their paths."""
    import h5py

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rates = target_rates(cfg, b)
    rpath, fpath = run_dir / RATES_NAME, run_dir / FIT_NAME
    tmp = rpath.with_name(f".{rpath.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        np.save(fh, rates)
    os.replace(tmp, rpath)
    tmp = fpath.with_name(f".{fpath.name}.{os.getpid()}.tmp")
    with h5py.File(tmp, "w") as fh:
        a = fh.attrs
        a.update({
            "format_version": FORMAT_VERSION, "source": b.source, "format": b.format,
            "settings_key": settings_key(cfg), "file_key": file_key(cfg, run_dir),
            "bin_width": b.bin_ms,
            "window_start": b.window_start, "window_ms": b.window_ms, "n_bins": b.n_bins,
            "smooth_kernel": cfg.data.smooth_kernel, "smooth_width": cfg.data.smooth_width,
            "n_units": b.n_units, "n_hidden": cfg.data.hidden, "n_dropped": b.n_dropped,
            "learn_every": cfg.learning.learn_every, "has_heldout": b.heldout is not None,
            "conditions": json.dumps(b.conditions), "settings": json.dumps(cfg.data.as_dict()),
        })  # fmt: skip
        fh["unit_ids"] = b.unit_ids
        fh["rate"] = b.rate
        fh["n_train"] = b.n_train
        fh["n_heldout"] = b.n_heldout
        fh["psth_train"] = b.train
        if b.heldout is not None:
            fh["psth_heldout"] = b.heldout
        fh["ceiling_r"] = b.ceiling
        fh["ceiling_r_cond"] = b.ceiling_cond
        fh["split_half_r"] = b.split_half
        for k, v in b.trials.items():
            fh[f"trials/{k}"] = v
        for k, v in b.raster.items():
            fh[f"raster/{k}"] = v
    os.replace(tmp, fpath)
    return rpath, fpath


def prepare(cfg, run_dir: str | Path) -> Binned:
    """Bin ``data.file`` and write data-rates.npy and data-fit.h5 into ``run_dir``."""
    b = bin_input(cfg, run_dir)
    write_outputs(cfg, run_dir, b)
    return b


def stale_reason(cfg, run_dir: str | Path) -> str | None:
    """Why data-fit.h5 must be rebuilt (missing, or made with other settings), or None."""
    import h5py

    fpath, rpath = Path(run_dir) / FIT_NAME, Path(run_dir) / RATES_NAME
    if not fpath.is_file() or not rpath.is_file():
        return f"{fpath.name} or {rpath.name} missing"
    try:
        with h5py.File(fpath, "r") as fh:
            key, fkey = fh.attrs.get("settings_key"), fh.attrs.get("file_key")
    except OSError:
        return f"{fpath.name} unreadable"
    if key != settings_key(cfg):
        return "[data] settings or learning.learn_every changed"
    if data_path(cfg, run_dir).is_file() and fkey != file_key(cfg, run_dir):
        return "the recording changed"
    return None


def check_config(cfg, run_dir: str | Path) -> None:
    """The network, trial and tasks of ``cfg`` match the prepared data (ConfigError naming the
    key and the value it must have)."""
    from tsn_mpi.data.fitfile import read_attrs

    a = read_attrs(Path(run_dir) / FIT_NAME)
    n = int(a["n_units"]) + int(cfg.data.hidden)
    ntasks = len(json.loads(a["conditions"]))
    for key, have, want in (
        ("network.n_cells", cfg.network.n_cells, n),
        ("simulation.train_duration", cfg.simulation.train_duration, float(a["window_ms"])),
        ("targets.ntasks", cfg.targets.ntasks, ntasks),
    ):
        if abs(float(have) - float(want)) > 1e-6:
            raise ConfigError(
                f"{key} = {have:g} but the prepared recording needs {want:g} ({a['n_units']} "
                f"units + {cfg.data.hidden} hidden, a {float(a['window_ms']):g}-ms window, "
                f"{ntasks} condition(s)); set it, or rerun 'tsn-mpi new DIR --data FILE --force'"
            )
