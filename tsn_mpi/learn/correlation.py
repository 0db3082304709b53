"""The learning-curve metric: Pearson correlation of rolling-average currents with targets."""

from __future__ import annotations

import numpy as np


def pearson_per_neuron(target: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Correlation of each column (neuron) of ``target`` and ``model`` (n_learn, n), float64.

    Constant columns give NaN, as in the reference (spec pitfall 19).
    """
    a = np.asarray(target, dtype=np.float64)
    b = np.asarray(model, dtype=np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = (a * b).sum(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def mean_correlation(per_neuron: np.ndarray) -> tuple[float, int]:
    """(mean over non-NaN neurons, number of NaN neurons); summed in global id order."""
    ok = ~np.isnan(per_neuron)
    n_nan = int(per_neuron.size - ok.sum())
    mean = float(np.mean(per_neuron[ok])) if ok.any() else float("nan")
    return mean, n_nan
