"""Spike trains -> binned counts per trial group -> PSTHs; smoothing; the learning-time grid.

A trial's window is ``[align + window_start, align + window_start + n_bins*bin)``; bins are
closed on the left.  The same binning and smoothing are applied to the recording (here) and to
the model's test trials (:func:`model_counts`), so their PSTHs compare bin for bin.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from tsn_mpi.errors import ConfigError

KERNELS = ("gaussian", "boxcar", "none")
GAUSS_HALF = 3.0  # the Gaussian kernel is cut at +-3 sd
_EPS = 1e-9  # bins: a spike on an edge (to float rounding) belongs to the later bin


def n_bins_of(window_ms: float, bin_ms: float, source: str) -> int:
    """Number of bins in a window; ConfigError when the bin width does not divide it."""
    q = window_ms / bin_ms
    n = int(round(q))
    if n < 1 or abs(q - n) > 1e-6 * max(1.0, q):
        raise ConfigError(
            f"{source}: data.bin_width = {bin_ms:g} ms does not divide the trial window of "
            f"{window_ms:g} ms (choose a bin width that does, or set data.window_stop)"
        )
    return n


@njit(cache=True)
def _group_counts(indptr, times, t0, span, bin_s, n_bins, group, out):  # pragma: no cover
    """out[u, group[i], b] += spikes of unit u in bin b of trial i (t0 sorted ascending;
    windows [t0_i, t0_i + span) may overlap; group < 0 = trial not counted)."""
    n_units = indptr.size - 1
    for u in range(n_units):
        for s in range(indptr[u], indptr[u + 1]):
            t = times[s]
            i = np.searchsorted(t0, t, side="right") - 1
            while i >= 0 and t < t0[i] + span:
                g = group[i]
                if g >= 0:
                    b = int(math.floor((t - t0[i]) / bin_s + _EPS))
                    if 0 <= b < n_bins:
                        out[u, g, b] += 1
                i -= 1


def group_counts(indptr: NDArray[np.int64], times: NDArray[np.float64],
                 t0: NDArray[np.float64], bin_ms: float, n_bins: int,
                 group: NDArray[np.int64], n_groups: int) -> NDArray[np.int32]:  # fmt: skip
    """Spike counts summed over the trials of each group, (n_units, n_groups, n_bins) int32.

    t0: (n_trials,) window starts (s); group: (n_trials,) group index of each trial (-1 =
    skip).  The spike times are in s and sorted within each unit.
    """
    order = np.argsort(t0, kind="stable")
    out = np.zeros((indptr.size - 1, n_groups, n_bins), np.int32)
    _group_counts(np.ascontiguousarray(indptr, dtype=np.int64),
                  np.ascontiguousarray(times, dtype=np.float64),
                  np.ascontiguousarray(t0[order], dtype=np.float64), n_bins * bin_ms / 1000.0,
                  bin_ms / 1000.0, n_bins, np.ascontiguousarray(group[order], dtype=np.int64),
                  out)  # fmt: skip
    return out


def trial_spikes(
    indptr: NDArray[np.int64],
    times: NDArray[np.float64],
    units: NDArray[np.int64],
    t0: float,
    span_ms: float,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Spike times (ms after t0) of ``units`` in ``[t0, t0+span)`` as CSR (indptr, times)."""
    ptr = [0]
    out = []
    for u in units:
        s = times[indptr[u] : indptr[u + 1]]
        a, b = np.searchsorted(s, [t0, t0 + span_ms / 1000.0])
        out.append(((s[a:b] - t0) * 1000.0).astype(np.float32))
        ptr.append(ptr[-1] + b - a)
    return np.array(ptr, np.int64), (np.concatenate(out) if out else np.zeros(0, np.float32))


def kernel(kind: str, width_ms: float, bin_ms: float) -> NDArray[np.float64]:
    """Smoothing weights over bin offsets -h..h (unnormalised).

    gaussian: sd ``width_ms``, cut at +-3 sd; boxcar: ``width_ms`` wide (rounded to an odd
    number of bins); none: [1].
    """
    if kind == "none" or width_ms <= 0:
        return np.ones(1)
    if kind == "gaussian":
        h = int(math.ceil(GAUSS_HALF * width_ms / bin_ms))
        x = np.arange(-h, h + 1) * bin_ms
        return np.exp(-0.5 * (x / width_ms) ** 2)
    if kind == "boxcar":
        h = max(int(round((width_ms / bin_ms - 1) / 2)), 0)
        return np.ones(2 * h + 1)
    raise ConfigError(f"data.smooth_kernel = {kind!r} must be one of {', '.join(KERNELS)}")


def smooth(x: NDArray[np.floating], k: NDArray[np.float64]) -> NDArray[np.float64]:
    """Convolve along the last axis with ``k``, renormalised at the edges (the weights inside
    the window sum to 1 in every bin, so the edges are not pulled towards 0)."""
    x = np.asarray(x, dtype=np.float64)
    h = k.size // 2
    if h == 0:
        return x.copy()
    n = x.shape[-1]
    num = np.zeros_like(x)
    den = np.zeros(n)
    for j in range(-h, h + 1):
        w = k[j + h]
        a, b = max(0, -j), min(n, n - j)  # out[i] += w*x[i+j] for i in [a, b)
        if a >= b:
            continue
        num[..., a:b] += w * x[..., a + j : b + j]
        den[a:b] += w
    return num / den


def to_learn_grid(rate: NDArray[np.floating], bin_ms: float, learn_every: float
                  ) -> NDArray[np.float64]:  # fmt: skip
    """Resample rates on data bins (..., n_bins) to the learning times (..., n_learn).

    Row m (1-based) is the mean rate over [(m-1)*learn_every, m*learn_every) after the window
    start: the bin the reference's PSTH assigns to target time stim_off + m*learn_every
    (spec §7.2).  learn_every must be a multiple of the bin width or divide it.
    """
    rate = np.asarray(rate, dtype=np.float64)
    n_bins = rate.shape[-1]
    q = learn_every / bin_ms
    if abs(q - round(q)) < 1e-9 and round(q) >= 1:
        k = int(round(q))
        n_learn = n_bins // k
        return rate[..., : n_learn * k].reshape(*rate.shape[:-1], n_learn, k).mean(axis=-1)
    r = bin_ms / learn_every
    if abs(r - round(r)) < 1e-9:
        return np.repeat(rate, int(round(r)), axis=-1)
    raise ConfigError(
        f"learning.learn_every = {learn_every:g} ms and data.bin_width = {bin_ms:g} ms: one must "
        "be a multiple of the other"
    )


def model_counts(spike_steps: NDArray[np.integer], dt: float, t0_ms: float, bin_ms: float,
                 n_bins: int) -> NDArray[np.int64]:  # fmt: skip
    """Binned counts of a model trial, (n_neurons, n_bins) int64.

    spike_steps: (n_neurons, max_times) 1-based step numbers, 0 = empty slot (the test phase's
    recording); bin b holds spikes at t = step*dt in [t0 + b*bin, t0 + (b+1)*bin) ms.
    """
    steps = np.asarray(spike_steps)
    n = steps.shape[0]
    rows, cols = np.nonzero(steps > 0)
    t = steps[rows, cols].astype(np.float64) * dt - t0_ms
    b = np.floor(np.round(t, 9) / bin_ms + _EPS).astype(np.int64)
    ok = (b >= 0) & (b < n_bins)
    flat = rows[ok] * n_bins + b[ok]
    return np.bincount(flat, minlength=n * n_bins).reshape(n, n_bins)
