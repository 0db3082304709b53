"""Rolling-average bookkeeping (spec §3.3 step 3): which samples feed which target bins.

Samples are taken at every integer millisecond s in (stim_off, train_time] (integer step
arithmetic, spec pitfall 5); sample s feeds bins [start, end] with
start = floor((s - wid)/learn_every + 1), end = min(start + wid_inc, n_learn), start >= 1.
Samples with the same (start, end) form a group; the time loop only adds each sample into its
group, and bins are assembled from groups once per trial (in float64, fixed order).
"""

from __future__ import annotations

import math

import numpy as np

COLUMN_BLOCK = 8192  # columns per block when averaging (temporaries O(n_learn x block))


def sample_groups(cfg, d) -> tuple[np.ndarray, np.ndarray]:
    """(group index per step after stim_off (-1 = no sample), bin ranges (n_groups, 2) 0-based
    inclusive)."""
    sim, lr = cfg.simulation, cfg.learning
    n_after = d.n_steps - d.stim_off_step
    group_of_step = np.full(n_after + 1, -1, dtype=np.int32)
    ranges: list[tuple[int, int]] = []
    index: dict[tuple[int, int], int] = {}
    for k in range(1, n_after + 1):
        ti = d.stim_off_step + k
        if ti % d.steps_per_ms:
            continue
        s = ti // d.steps_per_ms - sim.stim_off
        start = math.floor((s - sim.wid) / lr.learn_every + 1)
        end = min(start + d.wid_inc, d.n_learn)
        start = max(start, 1)
        if end < start:
            continue
        key = (start - 1, end - 1)
        if key not in index:
            index[key] = len(ranges)
            ranges.append(key)
        group_of_step[k] = index[key]
    return group_of_step, np.array(ranges, dtype=np.int64).reshape(-1, 2)


def bins_from_groups(roll: np.ndarray, counts: np.ndarray, ranges: np.ndarray, n_learn: int
                     ) -> np.ndarray:
    """Average per bin: roll (n_groups, n_vars, n_cols) sums -> (n_vars, n_learn, n_cols).

    Built in blocks of columns (the only full-size array is the result)."""
    n_groups, n_vars, n_cols = roll.shape
    cnt = np.zeros(n_learn, dtype=np.float64)
    for g in range(n_groups):
        a, b = ranges[g]
        cnt[a : b + 1] += counts[g]
    out = np.empty((n_vars, n_learn, n_cols), dtype=np.float64)
    for c0 in range(0, n_cols, COLUMN_BLOCK):
        c1 = min(c0 + COLUMN_BLOCK, n_cols)
        total = np.zeros((n_learn, n_vars, c1 - c0), dtype=np.float64)
        for g in range(n_groups):
            a, b = ranges[g]
            total[a : b + 1] += roll[g, :, c0:c1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, :, c0:c1] = np.transpose(total / cnt[:, None, None], (1, 0, 2))
    return out


def group_counts(group_of_step: np.ndarray, n_groups: int) -> np.ndarray:
    g = group_of_step[group_of_step >= 0]
    return np.bincount(g, minlength=n_groups).astype(np.float64)
