"""numba kernel of the small-mode RLS weight update: no stored P (spec §4.5).

Per neuron, ``k = A^-1 x`` is solved in float64 from ``A = Pinv + sum_h g_h g_h^T`` over a short
history of trace vectors (:func:`push_history` keeps it): by the Woodbury identity around the
closed-form ``Pinv^-1`` when the history is shorter than n, else by a dense Cholesky
(:func:`use_woodbury`).  :func:`rls_small` is the Python wrapper that checks shapes and calls
the compiled parallel kernel :func:`small_kernel` (blocks of ``TILE_W`` neurons; cold: a few
seconds on 2 Zen 5 cores, then loaded from numba's cache).  Neurons whose A is not positive
definite or whose k, error or new weights are not finite are flagged in ``bad`` and left
untouched.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from tsn_mpi.backends.cpu.rls_checks import check_common_arrays
from tsn_mpi.learn.packed import TILE_W

W = TILE_W


def push_history(
    hist: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    r: NDArray[np.float64],
    count: int,
    mean: bool = False,
) -> int:
    """Store the trace vector [x_ff; r] in the circular window of hist; return count + 1.

    Without ``mean`` the window is all H rows of hist (H, LX + N) and the vector goes to row
    ``count % H``; the number of valid rows for :func:`rls_small` is then ``min(count + 1, H)``.
    With ``mean`` the window is the first H - 1 rows and the last row holds the running mean of
    all ``count + 1`` vectors pushed so far (``rls_small(..., mean_row=H - 1,
    mean_weight=count + 1)`` at the next step).
    """
    n_ff = x_ff.shape[0]
    if hist.ndim != 2 or hist.shape[1] != n_ff + r.shape[0] or hist.shape[0] < 1 + mean:
        raise ValueError(
            f"hist has shape {hist.shape}, rows must hold LX + N = {n_ff + r.shape[0]} values"
        )
    window = hist.shape[0] - mean
    slot = count % window
    hist[slot, :n_ff] = x_ff
    hist[slot, n_ff:] = r
    if mean:
        _running_mean(hist[-1], hist[slot], count + 1)
    return count + 1


@njit(cache=True)
def _running_mean(mean: NDArray[np.float64], x: NDArray[np.float64], count: int) -> None:
    """mean += (x - mean) / count, in place (the mean of count vectors, x the last)."""
    for a in range(mean.shape[0]):
        mean[a] += (x[a] - mean[a]) / count


@njit(cache=True)
def _small_gather(lid, pre, w, r, x_ff, x, grp):
    """x = [x_ff; r[pre]] (0 on padding) and sign groups grp (0: none, 1: w > 0, 2: w < 0)."""
    n_ff = x_ff.shape[0]
    for a in range(n_ff):
        x[a] = x_ff[a]
    for j in range(pre.shape[1]):
        gid = pre[lid, j]
        valid = gid >= 0
        x[n_ff + j] = r[gid] if valid else 0.0
        wj = w[lid, j]
        grp[j] = valid * ((wj > 0) + 2 * (wj < 0))  # branch-free: signs are mixed


@njit(cache=True, inline="always")
def _scaled_dots(G, c1, c2, c3, a0, a1, sc):
    """(sc G[c1].G[c2], sc G[c1].G[c3]) over columns a0..a1-1, in 4 fixed interleaved sums each."""
    p0 = p1 = p2 = p3 = 0.0
    q0 = q1 = q2 = q3 = 0.0
    a4 = a0 + (a1 - a0) // 4 * 4
    for a in range(a0, a4, 4):
        x0, x1, x2, x3 = G[c1, a], G[c1, a + 1], G[c1, a + 2], G[c1, a + 3]
        p0 += x0 * G[c2, a]
        p1 += x1 * G[c2, a + 1]
        p2 += x2 * G[c2, a + 2]
        p3 += x3 * G[c2, a + 3]
        q0 += x0 * G[c3, a]
        q1 += x1 * G[c3, a + 1]
        q2 += x2 * G[c3, a + 2]
        q3 += x3 * G[c3, a + 3]
    for a in range(a4, a1):
        p0 += G[c1, a] * G[c2, a]
        q0 += G[c1, a] * G[c3, a]
    return ((p0 + p1) + (p2 + p3)) * sc, ((q0 + q1) + (q2 + q3)) * sc


@njit(cache=True)
def _small_gain_woodbury(
    lid, pre, hist, rows, scales, penlambda, penlam_ff, penmu, x, grp, k, G, M, S
):
    """k = A^-1 x with A = Pinv + sum_h g_h g_h^T by the Woodbury identity; False if S is not PD.

    P0 = Pinv^-1 is known in closed form (spec §4.2): per sign group s of size n_s,
    ``(I - c_s 11^T)/lam`` with ``c_s = mu/(lam + n_s mu)``; 1/penlam_ff on feed-forward
    slots.  With the history rows g_h as the rows of G_h (hl x n),
    ``A^-1 x = P0 (x - G_h^T c)`` where ``S c = G_h P0 x`` and ``S = I + G_h P0 G_h^T``:
    O(hl^2 n) instead of O(hl n^2 + n^3/6) for building and factorising A.
    History row h is ``scales[h] * hist[rows[h]]`` gathered (hl = len(rows)).
    Scratch: G (hl + 1, n) holds x in row 0 and g_h in row 1 + h; M (hl + 1, hl + 1) gets
    ``G P0 G^T`` (lower triangle) as the scaled Gram matrix of G minus the rank-2 term of the
    row sums over each sign group, kept in S (3, hl + 1) (row 0: no group, unused).
    """
    m = pre.shape[1]
    n = x.shape[0]
    n_ff = n - m
    hist_len = rows.shape[0]
    q = hist_len + 1
    for s in range(3):
        for c in range(q):
            S[s, c] = 0.0
    for a in range(n_ff):
        G[0, a] = x[a]
        for h in range(hist_len):
            G[1 + h, a] = scales[h] * hist[rows[h], a]
    size_pos = 0
    size_neg = 0
    for j in range(m):
        a = n_ff + j
        gid = pre[lid, j]
        s = grp[j]
        size_pos += s == 1
        size_neg += s == 2
        G[0, a] = x[a]
        S[s, 0] += x[a]
        if gid >= 0:
            for h in range(hist_len):
                val = scales[h] * hist[rows[h], n_ff + gid]
                G[1 + h, a] = val
                S[s, 1 + h] += val
        else:
            for h in range(hist_len):
                G[1 + h, a] = 0.0
    inv_lam = 1.0 / penlambda
    inv_ff = 1.0 / penlam_ff
    c_pos = penmu / (penlambda + size_pos * penmu)
    c_neg = penmu / (penlambda + size_neg * penmu)
    # M = G diag(1/penlam_ff.., 1/lam..) G^T - (c_pos s_pos s_pos^T + c_neg s_neg s_neg^T) / lam
    for c1 in range(q):
        p1 = c_pos * S[1, c1] * inv_lam
        n1 = c_neg * S[2, c1] * inv_lam
        for c2 in range(0, c1 + 1, 2):
            c3 = c2 + 1 if c2 < c1 else c2
            d2, d3 = _scaled_dots(G, c1, c2, c3, n_ff, n, inv_lam)
            if n_ff > 0:
                f2, f3 = _scaled_dots(G, c1, c2, c3, 0, n_ff, inv_ff)
                d2 += f2
                d3 += f3
            M[c1, c2] = d2 - (p1 * S[1, c2] + n1 * S[2, c2])
            M[c1, c3] = d3 - (p1 * S[1, c3] + n1 * S[2, c3])
    # S_h = I + M[1:, 1:]: Cholesky in place (lower), then S_h c = b with b = M[1:, 0]
    for i in range(1, q):
        M[i, i] += 1.0
    for i in range(1, q):
        for j in range(1, i + 1):
            s = M[i, j]
            for t in range(1, j):
                s -= M[i, t] * M[j, t]
            if i == j:
                if not s > 0.0:  # also catches NaN
                    return False
                M[i, i] = np.sqrt(s)
            else:
                M[i, j] = s / M[j, j]
    cvec = S[0]  # reused: c at cvec[1..hl]
    for i in range(1, q):
        s = M[i, 0]
        for t in range(1, i):
            s -= M[i, t] * cvec[t]
        cvec[i] = s / M[i, i]
    for i in range(q - 1, 0, -1):
        s = cvec[i]
        for t in range(i + 1, q):
            s -= M[t, i] * cvec[t]
        cvec[i] = s / M[i, i]
    # k = P0 v with v = x - G_h^T c
    for a in range(n):
        k[a] = G[0, a]
    for c in range(1, q):
        cc = cvec[c]
        for a in range(n):
            k[a] -= cc * G[c, a]
    v_pos = 0.0
    v_neg = 0.0
    for j in range(m):
        g = grp[j]
        v = k[n_ff + j]
        v_pos += v if g == 1 else 0.0
        v_neg += v if g == 2 else 0.0
    v_pos *= c_pos
    v_neg *= c_neg
    for a in range(n_ff):
        k[a] *= inv_ff
    for j in range(m):
        g = grp[j]
        k[n_ff + j] = (k[n_ff + j] - (v_pos if g == 1 else (v_neg if g == 2 else 0.0))) * inv_lam
    return True


@njit(cache=True)
def _small_gain_direct(lid, pre, hist, rows, scales, penlambda, penlam_ff, penmu, x, grp, k, A, g):
    """k = A^-1 x with A = Pinv + sum_h g_h g_h^T built densely and factorised by Cholesky.

    Used when the history is at least as long as n (then cheaper than Woodbury).  Padding
    slots get A = 1 (x = 0 there, so k = 0).  False if A is not positive definite.
    """
    m = pre.shape[1]
    n = x.shape[0]
    n_ff = n - m
    for a in range(n):
        for b in range(a + 1):
            A[a, b] = 0.0
    for a in range(n_ff):
        A[a, a] = penlam_ff
    for ja in range(m):
        a = n_ff + ja
        if pre[lid, ja] < 0:
            A[a, a] = 1.0
            continue
        A[a, a] = penlambda
        for jb in range(ja + 1):
            if grp[ja] != 0 and grp[ja] == grp[jb]:
                A[a, n_ff + jb] += penmu
    for h in range(rows.shape[0]):
        sc = scales[h]
        for a in range(n_ff):
            g[a] = sc * hist[rows[h], a]
        for j in range(m):
            gid = pre[lid, j]
            g[n_ff + j] = sc * hist[rows[h], n_ff + gid] if gid >= 0 else 0.0
        for a in range(n):
            ga = g[a]
            for b in range(a + 1):
                A[a, b] += ga * g[b]
    for i in range(n):
        for j in range(i + 1):
            s = A[i, j]
            for q in range(j):
                s -= A[i, q] * A[j, q]
            if i == j:
                if not s > 0.0:  # also catches NaN
                    return False
                A[i, i] = np.sqrt(s)
            else:
                A[i, j] = s / A[j, j]
    for i in range(n):
        s = x[i]
        for q in range(i):
            s -= A[i, q] * k[q]
        k[i] = s / A[i, i]
    for i in range(n - 1, -1, -1):
        s = k[i]
        for q in range(i + 1, n):
            s -= A[q, i] * k[q]
        k[i] = s / A[i, i]
    return True


@njit(cache=True)
def _small_apply(lid, pre, w, x_ff, w_ff, u_bal, target, textbook, apply, x, k):
    """Error with the old weights and the update w -= e k (or e den k); True if all finite."""
    n_ff = x_ff.shape[0]
    m = pre.shape[1]
    n = n_ff + m
    c = 0.0
    for a in range(n):
        c += x[a] * k[a]
    den = 1.0 / (1.0 + c)
    e = 0.0
    for j in range(m):
        if pre[lid, j] >= 0:
            e += np.float64(w[lid, j]) * x[n_ff + j]
    for a in range(n_ff):
        e += np.float64(w_ff[lid, a]) * x_ff[a]
    e = (e + np.float64(u_bal[lid])) - np.float64(target[lid])
    ok = np.isfinite(den) and np.isfinite(e)
    for a in range(n):
        ok = ok and np.isfinite(k[a])
    coef = e * den if textbook else e
    if ok:
        for j in range(m):
            if pre[lid, j] >= 0:
                ok = ok and np.isfinite(np.float32(w[lid, j] - coef * k[n_ff + j]))
        for a in range(n_ff):
            ok = ok and np.isfinite(np.float32(w_ff[lid, a] - coef * k[a]))
    if ok and apply:
        for j in range(m):
            if pre[lid, j] >= 0:
                w[lid, j] = np.float64(w[lid, j]) - coef * k[n_ff + j]
        for a in range(n_ff):
            w_ff[lid, a] = np.float64(w_ff[lid, a]) - coef * k[a]
    return ok


def use_woodbury(hist_len: int, n: int) -> bool:
    """Whether small mode solves by Woodbury (fewer history terms than n) or a dense Cholesky."""
    return hist_len < n


@njit(cache=True)
def _small_block(
    blk,
    pre,
    w,
    r,
    x_ff,
    w_ff,
    u_bal,
    target,
    hist,
    rows,
    scales,
    penlambda,
    penlam_ff,
    penmu,
    textbook,
    apply,
    bad,
):
    """Small-mode step of neurons blk*W .. blk*W + W - 1, sharing one set of scratch arrays."""
    n_owned, m = pre.shape
    n = x_ff.shape[0] + m
    hist_len = rows.shape[0]
    woodbury = hist_len < n  # keep in step with use_woodbury
    x = np.empty(n)
    k = np.empty(n)
    grp = np.empty(m, np.int8)
    q = hist_len + 1 if woodbury else 1
    G = np.empty((q, n))
    M = np.empty((q, q))
    S = np.empty((3, q))
    na = 1 if woodbury else n
    A = np.empty((na, na))
    g = np.empty(na)
    for lid in range(blk * W, min(n_owned, blk * W + W)):
        _small_gather(lid, pre, w, r, x_ff, x, grp)
        if woodbury:
            ok = _small_gain_woodbury(
                lid, pre, hist, rows, scales, penlambda, penlam_ff, penmu, x, grp, k, G, M, S
            )
        else:
            ok = _small_gain_direct(
                lid, pre, hist, rows, scales, penlambda, penlam_ff, penmu, x, grp, k, A, g
            )
        if ok:
            ok = _small_apply(lid, pre, w, x_ff, w_ff, u_bal, target, textbook, apply, x, k)
        bad[lid] = 0 if ok else 1


@njit(parallel=True, cache=True)
def small_kernel(
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    hist: NDArray[np.float64],
    rows: NDArray[np.int64],
    scales: NDArray[np.float64],
    penlambda: float,
    penlam_ff: float,
    penmu: float,
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
) -> int:
    """Compiled small-mode step, blocks of TILE_W neurons in parallel; no checks (rls_small).

    The history terms are ``scales[h] * hist[rows[h]]`` for h < len(rows).
    """
    # cast the unsigned prange index (see rls_fast.fast_kernel)
    for blk in prange((pre.shape[0] + W - 1) // W):
        _small_block(
            np.int64(blk),
            pre,
            w,
            r,
            x_ff,
            w_ff,
            u_bal,
            target,
            hist,
            rows,
            scales,
            penlambda,
            penlam_ff,
            penmu,
            textbook,
            apply,
            bad,
        )
    nb = 0
    for i in range(bad.shape[0]):
        nb += bad[i] != 0
    return nb


def rls_small(
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    hist: NDArray[np.float64],
    hist_len: int,
    penlambda: float,
    penlam_ff: float,
    penmu: float,
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
    mean_row: int = -1,
    mean_weight: float = 0.0,
) -> int:
    """One small-mode RLS step (spec §4.5): no stored P, k = A^-1 x solved per neuron in float64.

    A = Pinv from the *current* weight signs (as ``initial_p_rows``, not inverted) plus
    ``sum_h g g^T`` over history rows ``h < hist_len`` of hist (H, LX + N), each laid out
    [x_ff; r], with ``g = [h[:LX]; h[LX + pre]]`` (the reference forgot the ``+LX``).
    With ``mean_weight`` T > 0, A also gets ``T gbar gbar^T`` with gbar gathered from row
    ``mean_row`` of hist: the running mean of all T past trace vectors, i.e. the mean part of
    fast mode's full sum ``sum_t x_t x_t^T`` (see :func:`push_history`; the reference has no
    such term).  With ``hist_len + (T > 0) < n`` (the usual case: H = 10, n = 58 in the default
    model) k comes from the Woodbury identity around the closed-form ``Pinv^-1`` (a small
    Cholesky, O(hl^2 n) per neuron); otherwise A is built densely and factorised by Cholesky
    (O(hl n^2 + n^3/6)).  Both agree to float64 rounding.  Padding slots are decoupled (k = 0
    there).  Error, weight update and the other arguments as
    :func:`~tsn_mpi.backends.cpu.rls_fast.rls_fast` (a-priori ``e*k``, or ``e*den*k`` if
    textbook); a neuron whose A is not positive definite or whose k, error or new weights are
    not finite is flagged in ``bad`` and left untouched.
    Returns the number of bad neurons.  Pushing the current traces into hist
    (:func:`push_history`) is the caller's job, after this call.
    """
    pre, r, x_ff, u_bal, target = check_common_arrays(pre, w, r, x_ff, w_ff, u_bal, target, bad)
    n_ff = x_ff.shape[0]
    if not isinstance(hist, np.ndarray) or hist.dtype != np.float64 or hist.ndim != 2:
        raise ValueError("hist must be a 2-D float64 array")
    if hist.shape[1] != n_ff + r.shape[0] or not 0 <= hist_len <= hist.shape[0]:
        raise ValueError(
            f"hist has shape {hist.shape} and hist_len {hist_len}; expected "
            f"(H, LX + N = {n_ff + r.shape[0]}) and 0 <= hist_len <= H"
        )
    rows = list(range(int(hist_len)))
    scales = [1.0] * len(rows)
    if mean_weight > 0:
        if not hist_len <= mean_row < hist.shape[0]:
            raise ValueError(f"mean_row {mean_row} must be a row of hist after the window")
        rows.append(int(mean_row))
        scales.append(float(np.sqrt(mean_weight)))
    return int(
        small_kernel(
            pre,
            w,
            r,
            x_ff,
            w_ff,
            u_bal,
            target,
            np.ascontiguousarray(hist),
            np.asarray(rows, dtype=np.int64),
            np.asarray(scales, dtype=np.float64),
            float(penlambda),
            float(penlam_ff),
            float(penmu),
            bool(textbook),
            bool(apply),
            bad,
        )
    )
