"""The learning-curve metric: Pearson correlation of rolling-average currents with targets."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _pearson_columns(a, b, out):  # pragma: no cover - jitted
    n_rows, n_cols = a.shape
    for j in range(n_cols):
        ma = 0.0
        mb = 0.0
        for i in range(n_rows):
            ma += np.float64(a[i, j])
            mb += np.float64(b[i, j])
        ma /= n_rows
        mb /= n_rows
        sab = 0.0
        saa = 0.0
        sbb = 0.0
        for i in range(n_rows):
            x = np.float64(a[i, j]) - ma
            y = np.float64(b[i, j]) - mb
            sab += x * y
            saa += x * x
            sbb += y * y
        den = np.sqrt(saa * sbb)
        out[j] = sab / den if den > 0.0 else np.nan


def pearson_per_neuron(target: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Correlation of each column (neuron) of ``target`` and ``model`` (n_learn, n), float64.

    Constant columns give NaN, as in the reference (spec pitfall 19).  Each column is summed
    in row order on its own (the same bits however neurons are split across ranks) without
    float64 copies of the inputs (a rank of a million neurons would hold several).
    """
    target = np.asarray(target)
    model = np.asarray(model)
    out = np.empty(target.shape[1], dtype=np.float64)
    _pearson_columns(target, model, out)
    return out


def mean_correlation(per_neuron: np.ndarray) -> tuple[float, int]:
    """(mean over non-NaN neurons, number of NaN neurons); summed in global id order."""
    ok = ~np.isnan(per_neuron)
    n_nan = int(per_neuron.size - ok.sum())
    mean = float(np.mean(per_neuron[ok])) if ok.any() else float("nan")
    return mean, n_nan
