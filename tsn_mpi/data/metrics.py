"""How well a fitted network predicts trials it never trained on.

Per recorded unit, with the model's PSTH (test trials, the data's bins and smoothing) against
the held-out trials' PSTH: Pearson r over all conditions' bins concatenated (shape and the
differences between conditions), per condition, and R2 = 1 - SSE/SST (the fraction of the
held-out PSTH's variance explained: it also counts offsets in rate, which r ignores).  The
ceiling is the same r for the PSTH of the *training* trials, i.e. for a model that reproduced
its targets exactly: with as many model trials as training trials (the test phase's default),
a perfect fit scores about the ceiling.  Units whose held-out PSTH is constant cannot be scored
and are left out; a model unit with a constant PSTH (silent) scores r = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray


def pearson(a: NDArray, b: NDArray) -> NDArray[np.float64]:
    """Pearson r along the first axis, per column: (T, U), (T, U) -> (U,); NaN where one of
    the columns is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=0) / den
    return np.where(den > 1e-12 * max(float(np.max(den, initial=0.0)), 1e-300), r, np.nan)


def r_squared(data: NDArray, model: NDArray) -> NDArray[np.float64]:
    """1 - sum((data-model)^2)/sum((data-mean(data))^2) per column, NaN where data is
    constant."""
    data = np.asarray(data, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    sst = ((data - data.mean(axis=0)) ** 2).sum(axis=0)
    sse = ((data - model) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sst > 0, 1.0 - sse / sst, np.nan)


@dataclass
class FitMetrics:
    """Per-unit values (n_units,) and per condition (n_cond, n_units); NaN = not scorable."""

    r: NDArray[np.float64]
    r2: NDArray[np.float64]
    ceiling: NDArray[np.float64]
    r_cond: NDArray[np.float64]
    r2_cond: NDArray[np.float64]
    ceiling_cond: NDArray[np.float64]
    rate_model: NDArray[np.float64]
    rate_data: NDArray[np.float64]
    current_r: NDArray[np.float64]
    scored: NDArray[np.bool_]

    def as_dict(self) -> dict[str, NDArray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _flat(x: NDArray) -> NDArray:
    """(C, B, U) -> (C*B, U)."""
    return np.asarray(x).reshape(-1, np.shape(x)[-1])


def evaluate(model: NDArray, heldout: NDArray, train: NDArray,
             current_r: NDArray | None = None) -> FitMetrics:  # fmt: skip
    """Score the model PSTH against the held-out PSTH (see the module docstring).

    model, heldout, train: (n_cond, n_bins, n_units) Hz, smoothed the same way.
    current_r: (n_units,) correlation of the model's current with its target (optional).
    """
    model, heldout, train = (np.asarray(x, dtype=np.float64) for x in (model, heldout, train))
    n_units = model.shape[-1]
    scored = np.isfinite(pearson(_flat(heldout), _flat(train)))
    r = np.nan_to_num(pearson(_flat(heldout), _flat(model)), nan=0.0)
    r_cond = np.stack(
        [np.nan_to_num(pearson(h, m), nan=0.0) for h, m in zip(heldout, model, strict=True)]
    )
    ceil_cond = np.stack([pearson(h, t) for h, t in zip(heldout, train, strict=True)])
    r2_cond = np.stack([r_squared(h, m) for h, m in zip(heldout, model, strict=True)])
    out = FitMetrics(
        r=np.where(scored, r, np.nan),
        r2=np.where(scored, r_squared(_flat(heldout), _flat(model)), np.nan),
        ceiling=np.where(scored, pearson(_flat(heldout), _flat(train)), np.nan),
        r_cond=np.where(np.isfinite(ceil_cond), r_cond, np.nan),
        r2_cond=r2_cond,
        ceiling_cond=ceil_cond,
        rate_model=model.mean(axis=(0, 1)),
        rate_data=heldout.mean(axis=(0, 1)),
        current_r=np.full(n_units, np.nan)
        if current_r is None
        else np.asarray(current_r, np.float64),
        scored=scored,
    )
    return out


def _m(x: NDArray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.mean(x)) if x.size else float("nan")


def _med(x: NDArray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def summary(m: FitMetrics) -> dict[str, float]:
    """The numbers of the one-screen summary (means over scored units)."""
    s = m.scored
    q = np.quantile(m.r[s], [0.1, 0.5, 0.9]) if s.any() else [np.nan] * 3
    rm, rd = m.rate_model[s], m.rate_data[s]
    return {
        "n_units": int(m.r.size),
        "n_scored": int(s.sum()),
        "r_mean": _m(m.r),
        "r_p10": float(q[0]),
        "r_median": float(q[1]),
        "r_p90": float(q[2]),
        "r2_median": _med(m.r2),
        "r2_mean": _m(m.r2),
        "ceiling_mean": _m(m.ceiling),
        "fraction_of_ceiling": _m(m.r) / _m(m.ceiling) if _m(m.ceiling) > 0 else float("nan"),
        "rate_model_hz": _m(rm),
        "rate_data_hz": _m(rd),
        "rate_r": float(pearson(rd[:, None], rm[:, None])[0]) if rm.size > 1 else float("nan"),
        "current_r_mean": _m(m.current_r),
        "n_model_silent": int(np.sum(s & (m.rate_model == 0))),
        **{f"r_mean_cond{k}": _m(m.r_cond[k]) for k in range(m.r_cond.shape[0])},
    }


def headline(m: FitMetrics, heldout: bool = True) -> str:
    """``held-out PSTH r = 0.712 (mean of 400 units; R2 = 0.48; data split-half ceiling r =
    0.84)`` (R2: the median over units; the ceiling: training vs held-out trials).  Without
    held-out trials the model is scored on the PSTH it was fitted to, and says so."""
    s = summary(m)
    if not heldout:
        return (
            f"PSTH r = {s['r_mean']:.3f} against the fitted PSTH (mean of {s['n_scored']} "
            f"units; R2 = {s['r2_median']:.2f}; no held-out trials to score on)"
        )
    return (
        f"held-out PSTH r = {s['r_mean']:.3f} (mean of {s['n_scored']} units; "
        f"R2 = {s['r2_median']:.2f}; data split-half ceiling r = {s['ceiling_mean']:.2f})"
    )


def summary_lines(m: FitMetrics, conditions: list[str], heldout: bool = True) -> list[str]:
    """The one-screen summary: headline, distribution, conditions, rates, currents."""
    s = summary(m)
    lines = [headline(m, heldout)]
    lines.append(
        f"  per-unit r: 10% {s['r_p10']:.2f}, median {s['r_median']:.2f}, 90% {s['r_p90']:.2f}"
        f"; mean r / ceiling = {s['fraction_of_ceiling']:.2f}; mean R2 = {s['r2_mean']:.2f}"
    )
    conds = ", ".join(f"{c} {s[f'r_mean_cond{k}']:.3f}" for k, c in enumerate(conditions))
    lines.append(f"  per condition (r of the time course): {conds}")
    lines.append(
        f"  rates: model {s['rate_model_hz']:.2f} Hz, data {s['rate_data_hz']:.2f} Hz "
        f"({'held-out' if heldout else 'fitted'} trials; across units r = {s['rate_r']:.2f})"
        + (f"; {s['n_model_silent']} model units silent" if s["n_model_silent"] else "")
    )
    lines.append(f"  current r (test trials vs targets) = {s['current_r_mean']:.3f}")
    if s["n_scored"] < s["n_units"]:
        lines.append(f"  {s['n_units'] - s['n_scored']} units not scored (constant held-out PSTH)")
    return lines
