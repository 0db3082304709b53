"""Initial inverse covariance P0 of every owned neuron, in closed form (spec §4.2).

``Pinv`` is ``penlam_ff * I`` on the LX feed-forward slots and, on the m recurrent slots,
``penlambda * I + penmu * (e e^T + h h^T)`` with ``e`` / ``h`` the indicators of positive /
negative weights among the valid slots (zero weights join no group).  Each sign group of size g
is inverted with Sherman-Morrison, ``(lam I + mu 1 1^T)^-1 = (1/lam)(I - mu/(lam + g mu) 1 1^T)``,
so P0 costs O(n^2) per neuron and no matrix inverse.  Padding slots (``pre_valid`` False) get
all-zero rows and columns, so the RLS update never moves them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tsn_mpi.learn.packed import upper_indices

_CHUNK_ELEMENTS = 1 << 24  # neurons are processed in chunks of about this many P entries


def _storage_indices(n: int, storage: str) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Row/column index of every stored element: packed upper or full row-major."""
    if storage == "packed":
        return upper_indices(n)
    if storage == "full":
        a, b = np.divmod(np.arange(n * n), n)
        return a, b
    raise ValueError(f"storage must be 'packed' or 'full', got {storage!r}")


def sign_groups(w_in: NDArray, pre_valid: NDArray[np.bool_], n_ff: int) -> NDArray[np.int8]:
    """Group label of every RLS slot: (n_owned, n_ff + m) int8.

    0 = no group (feed-forward, padding or zero weight), 1 = positive, 2 = negative weight.
    """
    n_owned, m = w_in.shape
    grp = np.zeros((n_owned, n_ff + m), dtype=np.int8)
    grp[:, n_ff:][(w_in > 0) & pre_valid] = 1
    grp[:, n_ff:][(w_in < 0) & pre_valid] = 2
    return grp


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
    a, b = _storage_indices(n, storage)
    length = a.size
    out = np.empty((n_owned, length), dtype=np.float64)
    if n_owned == 0 or length == 0:
        return out

    lam, mu = float(penlambda), float(penmu)
    diag_pos = np.flatnonzero(a == b)  # where element (s, s) lives, for s = 0..n-1
    chunk = max(1, _CHUNK_ELEMENTS // length)
    for lo in range(0, n_owned, chunk):
        hi = min(lo + chunk, n_owned)
        grp = sign_groups(w_in[lo:hi], pre_valid[lo:hi], n_ff)
        g_pos = np.count_nonzero(grp == 1, axis=1)
        g_neg = np.count_nonzero(grp == 2, axis=1)
        # same-group entry of (1/lam)(I - mu/(lam + g mu) 11^T), per neuron and group label
        same = np.zeros((hi - lo, 3), dtype=np.float64)
        same[:, 1] = -mu / (lam * (lam + g_pos * mu))
        same[:, 2] = -mu / (lam * (lam + g_neg * mu))
        ga = grp[:, a]
        block = np.take_along_axis(same, ga.astype(np.intp), axis=1)
        block[ga != grp[:, b]] = 0.0
        # diagonal: 1/penlam_ff (FF), 1/lam + same-group term (recurrent), 0 (padding)
        diag = np.take_along_axis(same, grp.astype(np.intp), axis=1)
        diag[:, n_ff:] += 1.0 / lam
        diag[:, :n_ff] = 1.0 / penlam_ff
        diag[:, n_ff:][~pre_valid[lo:hi]] = 0.0
        block[:, diag_pos] = diag
        out[lo:hi] = block
    return out
