"""Initial inverse covariance P0 of every owned neuron, in closed form (spec §4.2).

``Pinv`` is ``penlam_ff * I`` on the LX feed-forward slots and, on the m recurrent slots,
``penlambda * I + penmu * (e e^T + h h^T)`` with ``e`` / ``h`` the indicators of positive /
negative weights among the valid slots (zero weights join no group).  Each sign group of size g
is inverted with Sherman-Morrison, ``(lam I + mu 1 1^T)^-1 = (1/lam)(I - mu/(lam + g mu) 1 1^T)``,
so P0 costs O(n^2) per neuron and no matrix inverse (one compiled loop, a few ns per entry).
Padding slots (``pre_valid`` False) get all-zero rows and columns, so the RLS update never moves
them.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


def sign_groups(w_in: NDArray, pre_valid: NDArray[np.bool_], n_ff: int) -> NDArray[np.int8]:
    """Group label of every RLS slot: (n_owned, n_ff + m) int8.

    0 = no group (feed-forward, padding or zero weight), 1 = positive, 2 = negative weight.
    """
    n_owned, m = w_in.shape
    grp = np.zeros((n_owned, n_ff + m), dtype=np.int8)
    grp[:, n_ff:][(w_in > 0) & pre_valid] = 1
    grp[:, n_ff:][(w_in < 0) & pre_valid] = 2
    return grp


@njit(cache=True)
def _fill_p0(grp, pre_valid, n_ff, lam, mu, penlam_ff, full, out):
    """Write P0 of every neuron into out (n_owned, L): packed upper or full row-major."""
    n_owned, n = grp.shape
    same = np.zeros(3)  # same-group off-diagonal entry per label (0: none)
    diag = np.empty(n)
    for i in range(n_owned):
        g_pos = 0
        g_neg = 0
        for a in range(n):
            g_pos += grp[i, a] == 1
            g_neg += grp[i, a] == 2
        same[1] = -mu / (lam * (lam + g_pos * mu))
        same[2] = -mu / (lam * (lam + g_neg * mu))
        for a in range(n):
            if a < n_ff:
                diag[a] = 1.0 / penlam_ff
            elif pre_valid[i, a - n_ff]:
                diag[a] = 1.0 / lam + same[grp[i, a]]
            else:
                diag[a] = 0.0
        idx = 0
        for row in range(n):
            for col in range(n if full else row + 1):
                a, b = (row, col) if full else (col, row)  # packed: column b = row, a <= b
                if a == b:
                    out[i, idx] = diag[a]
                elif grp[i, a] == grp[i, b]:
                    out[i, idx] = same[grp[i, a]]
                else:
                    out[i, idx] = 0.0
                idx += 1


def initial_p_rows(
    w_in: NDArray[np.floating],
    pre_valid: NDArray[np.bool_],
    n_ff: int,
    penlambda: float,
    penlam_ff: float,
    penmu: float,
    storage: str = "packed",
) -> NDArray[np.float64]:
    """P0 = inv(Pinv) of every owned neuron, one neuron per row (spec §4.2).

    w_in: (n_owned, m) plastic recurrent weights whose signs define the groups.
    pre_valid: (n_owned, m) bool, False on padding slots. n_ff: LX, the feed-forward slots first.
    Returns (n_owned, L) float64, ``L = n_packed(n)`` (storage 'packed', upper triangle column by
    column) or ``L = n*n`` (storage 'full', row-major, symmetric), ``n = n_ff + m``.
    """
    w_in = np.asarray(w_in)
    pre_valid = np.asarray(pre_valid, dtype=bool)
    if w_in.ndim != 2 or pre_valid.shape != w_in.shape:
        raise ValueError(f"w_in {w_in.shape} and pre_valid {pre_valid.shape} must be equal 2-D")
    n_owned, m = w_in.shape
    n = n_ff + m
    if storage not in ("packed", "full"):
        raise ValueError(f"storage must be 'packed' or 'full', got {storage!r}")
    out = np.empty((n_owned, n * n if storage == "full" else n * (n + 1) // 2))
    valid = np.ascontiguousarray(pre_valid)
    _fill_p0(sign_groups(w_in, valid, n_ff), valid, n_ff, float(penlambda), float(penmu),
             float(penlam_ff), storage == "full", out)  # fmt: skip
    return out
