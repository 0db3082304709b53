"""What a trial is on any backend: its modes, recorded variables, result, and the names of
the mid-trial state an interrupt checkpoint holds (spec §3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODE_NAMES = ("init", "train", "train_test", "test")  # a backend's mode codes, in this order
ROLL_NAMES = ("utotal", "ubal_e", "ubal_i", "uplastic")  # rolling-average variables
# per-neuron rows of the mid-trial state (checkpoint datasets "trial_<name>")
TRIAL_ROWS = ("v", "u_bale", "u_bali", "u_plas", "u_bal", "in_e", "in_i", "in_p", "last_spike",
              "ns", "noise_rng", "ou_s", "ou_rng")  # fmt: skip


@dataclass
class TrialResult:
    """What a finished trial hands back to the phase (host arrays, owned neurons)."""

    ns: np.ndarray                  # (n_owned,) spike counts
    bins: np.ndarray | None         # (n_vars, n_learn, n_cols) rolling averages
    spike_steps: np.ndarray | None  # (n_rec_local, max_times) int32, 0 = empty
    uavg: np.ndarray | None         # init: mean u per owned neuron
    u0_std: np.ndarray | None       # init: std of u for owned neurons with gid < u0_ncells


def exchange_capacity(n_owned: int, dt: float) -> int:
    """Spike ids per rank and step the fixed allgather buffer holds: 4x the spikes of
    ``n_owned`` neurons at 20 Hz (overflow falls back to a second allgather)."""
    return max(64, int(4 * n_owned * 20.0 * dt / 1000.0) + 16)


def init_statistics(sum_u: np.ndarray, sum_u0: np.ndarray, sumsq_u0: np.ndarray, gid0: int,
                    d) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(uavg, u0_std)`` of an init trial from the time loop's float64 sums over the steps
    after u0_skip: mean current of every owned neuron, and the standard deviation of the
    current of the owned neurons with gid < u0_ncells (sums given for all owned neurons)."""
    cnt = d.n_steps - d.u0_skip_steps
    sel = np.arange(gid0, gid0 + sum_u.size) < d.u0_ncells
    s, q = sum_u0[sel], sumsq_u0[sel]
    return sum_u / cnt, np.sqrt(np.maximum(q - s * s / cnt, 0.0) / (cnt - 1))
