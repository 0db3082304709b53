"""Figures of a data fit, drawn from ``test.h5`` (its ``heldout/`` group) and ``data-fit.h5``.

``fit-summary.{pdf,png}``: per-unit held-out r against the data's ceiling, the distribution of
r, model against data rates, and PSTH overlays (held-out data, training data, model; every
condition side by side) for example units spread over the distribution of r.
``fit-raster.{pdf,png}``: one held-out trial of the recording next to one model trial, per
condition, for the first recorded units.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tsn_mpi.errors import DataFileError
from tsn_mpi.plot.figures import check_formats, new_figure, save_figure

N_EXAMPLES = 6
QUANTILES = (0.95, 0.8, 0.6, 0.4, 0.2, 0.05)  # example units at these quantiles of r


def _read(test_file: Path, fit_file: Path) -> dict:
    import h5py

    for p in (test_file, fit_file):
        if not p.is_file():
            raise DataFileError(f"{p}: not found")
    out: dict = {}
    try:
        with h5py.File(fit_file, "r") as f:
            a = f.attrs
            out["conditions"] = json.loads(a["conditions"])
            out["bin_ms"] = float(a["bin_width"])
            out["window_ms"] = float(a["window_ms"])
            out["unit_ids"] = f["unit_ids"][()]
            out["train"] = f["psth_train"][()]
            out["held"] = f["psth_heldout"][()] if "psth_heldout" in f else None
            out["raster"] = {k: f[f"raster/{k}"][()] for k in f["raster"]} if "raster" in f else {}
        with h5py.File(test_file, "r") as f:
            h = f["heldout"]
            for k in ("r", "ceiling", "rate_model", "rate_data", "model_psth", "scored"):
                out[k] = h[k][()]
            out["neurons"] = f["neurons"][()]
            out["indptr"] = f["spikes/indptr"][()]
            out["steps"] = f["spikes/steps"][()]
            out["dt"] = float(f.attrs["dt"])
            out["stim_off"] = float(f.attrs["stim_off"])
    except KeyError as exc:
        raise DataFileError(
            f"{test_file}: no held-out evaluation ({exc.args[0]} missing); run "
            "'tsn-mpi test' on a run made by 'tsn-mpi new --data'"
        ) from None
    return out


def example_units(r: np.ndarray, scored: np.ndarray, n: int = N_EXAMPLES) -> list[int]:
    """Units at spread quantiles of r (best first), distinct."""
    idx = np.flatnonzero(scored)
    if idx.size == 0:
        return []
    order = idx[np.argsort(-r[idx], kind="stable")]
    picks = [int(order[min(int((1 - q) * order.size), order.size - 1)]) for q in QUANTILES[:n]]
    return list(dict.fromkeys(picks))


def plot_fit(
    run_dir: str | Path, units: Sequence[int] | None = None, formats: Sequence[str] = ("pdf", "png")
) -> list[Path]:
    """Draw fit-summary and fit-raster for the run in ``run_dir``; returns the paths.

    units: model neuron ids (= unit index in data-fit.h5) for the PSTH panels; default
    :data:`N_EXAMPLES` units spread over the distribution of r."""
    import matplotlib

    run_dir = Path(run_dir)
    fmts = check_formats(formats)
    d = _read(run_dir / "test.h5", run_dir / "data-fit.h5")
    ex = list(units) if units else example_units(d["r"], d["scored"])
    bad = [u for u in ex if not 0 <= u < d["r"].size]
    if bad:
        raise DataFileError(f"units {bad} are not fitted units (0..{d['r'].size - 1})")
    with matplotlib.rc_context({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 7}):
        written = save_figure(_summary(d, ex), run_dir / "fit-summary", fmts)
        if d["raster"]:
            written += save_figure(_raster(d), run_dir / "fit-raster", fmts)
    return written


def _summary(d: dict, ex: list[int]):
    held = d["held"] is not None
    ref = d["held"] if held else d["train"]
    ncols = 3
    nrows = 1 + -(-len(ex) // ncols)
    fig = new_figure((ncols * 6.0 / 2.54 * 1.3, nrows * 5.0 / 2.54 * 1.2))
    gs = fig.add_gridspec(nrows, ncols)
    r, ceil, s = d["r"], d["ceiling"], d["scored"]
    ax = fig.add_subplot(gs[0, 0])
    if held:
        ax.plot(ceil[s], r[s], ".", ms=3, alpha=0.6)
        ax.plot([-0.2, 1], [-0.2, 1], "k--", lw=0.8, label="r = ceiling")
        ax.set_xlabel("data ceiling r (training vs held-out)")
        ax.legend(loc="upper left", frameon=False)
    else:
        ax.text(0.5, 0.5, "no held-out trials", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("model r (held-out PSTH)" if held else "model r (fitted PSTH)")
    ax.set_title("per unit")
    ax = fig.add_subplot(gs[0, 1])
    bins = np.linspace(-0.5, 1.0, 31)
    ax.hist(r[s], bins=bins, color="C0", alpha=0.7, label=f"model, mean {np.mean(r[s]):.2f}")
    if held:
        ax.hist(ceil[s], bins=bins, histtype="step", color="k",
                label=f"ceiling, mean {np.nanmean(ceil[s]):.2f}")  # fmt: skip
    ax.set_xlabel("PSTH r")
    ax.set_ylabel("units")
    ax.legend(loc="upper left", frameon=False)
    ax.set_title(f"{int(s.sum())} units")
    ax = fig.add_subplot(gs[0, 2])
    rd, rm = d["rate_data"][s], d["rate_model"][s]
    lo = max(min(rd.min(initial=1.0), rm.min(initial=1.0)), 0.05)
    hi = max(rd.max(initial=1.0), rm.max(initial=1.0)) * 1.2
    ax.loglog(np.maximum(rd, lo), np.maximum(rm, lo), ".", ms=3, alpha=0.6)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("data rate (Hz)")
    ax.set_ylabel("model rate (Hz)")
    ax.set_title(f"rates: model {np.mean(rm):.1f}, data {np.mean(rd):.1f} Hz")
    n_bins = ref.shape[1]
    t = (np.arange(n_bins) + 0.5) * d["bin_ms"] / 1000.0
    span = d["window_ms"] / 1000.0
    for q, u in enumerate(ex):
        ax = fig.add_subplot(gs[1 + q // ncols, q % ncols])
        for c in range(ref.shape[0]):
            x = t + c * span * 1.05
            ax.plot(x, d["train"][c, :, u], color="0.6", lw=0.8,
                    label="data, training trials" if c == 0 else None)  # fmt: skip
            if held:
                ax.plot(x, ref[c, :, u], color="k", lw=1.0,
                        label="data, held-out trials" if c == 0 else None)  # fmt: skip
            ax.plot(x, d["model_psth"][c, :, u], color="C0", lw=1.0,
                    label="model" if c == 0 else None)  # fmt: skip
            if c:
                ax.axvline(c * span * 1.025, color="0.8", lw=0.6)
        ax.set_ylim(bottom=0)
        extra = f", ceiling {ceil[u]:.2f}" if held else ""
        ax.set_title(f"#{u} (unit {int(d['unit_ids'][u])}): r {r[u]:.2f}{extra}")
        if q % ncols == 0:
            ax.set_ylabel("rate (Hz)")
        if q == 0:
            ax.legend(loc="upper right", frameon=False)
        ax.set_xlabel("time in window (s); conditions " + " | ".join(d["conditions"]))
    fig.suptitle("fit of the recording: held-out evaluation" if held else "fit of the PSTHs")
    return fig


def _raster(d: dict):
    rs = d["raster"]
    conds = d["conditions"]
    n_units = rs["indptr"].shape[1] - 1
    rec = {int(g): j for j, g in enumerate(d["neurons"])}
    fig = new_figure((2 * 8.0 / 2.54, len(conds) * 6.0 / 2.54))
    axes = fig.subplots(len(conds), 2, squeeze=False, sharex=True)
    w = d["window_ms"]
    for c, name in enumerate(conds):
        ax = axes[c, 0]
        ptr = rs["indptr"][c]
        for u in range(n_units):
            ts = rs["times_ms"][ptr[u] : ptr[u + 1]]
            ax.plot(ts / 1000.0, np.full(ts.size, u), "|", color="k", ms=2, mew=0.5)
        ax.set_title(f"data: trial {int(rs['trial'][c])} ({name})")
        ax.set_ylabel("unit (model neuron id)")
        ax = axes[c, 1]
        ptr = d["indptr"][0, c]
        for u in range(n_units):
            j = rec.get(u)
            if j is None:
                continue
            st = d["steps"][ptr[j] : ptr[j + 1]]
            ts = st * d["dt"] - d["stim_off"]
            ts = ts[(ts >= 0) & (ts < w)]
            ax.plot(ts / 1000.0, np.full(ts.size, u), "|", color="C0", ms=2, mew=0.5)
        ax.set_title(f"model: test trial 0 ({name})")
    for ax in axes[-1]:
        ax.set_xlabel("time in window (s)")
    for ax in axes.ravel():
        ax.set_ylim(-1, n_units)
        ax.set_xlim(0, w / 1000.0)
    fig.suptitle("one held-out trial of the recording and one model trial")
    return fig
