"""Slow, obvious numpy versions of the kernels, written from the spec; backends are tested
against them.  Everything here works in float64 and loops over neurons in Python.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# ------------------------------------------------------------------------- RLS (spec §4.2-§4.5)


def pinv_reference(
    w_in: NDArray,
    pre_valid: NDArray[np.bool_],
    n_ff: int,
    penlambda: float,
    penlam_ff: float,
    penmu: float,
) -> NDArray[np.float64]:
    """Pinv of every neuron (spec §4.2): (n_owned, n, n) float64, padding rows/cols zero."""
    n_owned, m = w_in.shape
    n = n_ff + m
    out = np.zeros((n_owned, n, n))
    for i in range(n_owned):
        out[i, :n_ff, :n_ff] = penlam_ff * np.eye(n_ff)
        for a in range(m):
            for b in range(m):
                if not (pre_valid[i, a] and pre_valid[i, b]):
                    continue
                same = (w_in[i, a] > 0 and w_in[i, b] > 0) or (w_in[i, a] < 0 and w_in[i, b] < 0)
                out[i, n_ff + a, n_ff + b] = penlambda * (a == b) + penmu * same
    return out


def initial_p_reference(
    w_in: NDArray,
    pre_valid: NDArray[np.bool_],
    n_ff: int,
    penlambda: float,
    penlam_ff: float,
    penmu: float,
) -> NDArray[np.float64]:
    """P0 = inv(Pinv) restricted to the valid slots (padding rows/cols zero): (n_owned, n, n)."""
    pinv = pinv_reference(w_in, pre_valid, n_ff, penlambda, penlam_ff, penmu)
    out = np.zeros_like(pinv)
    for i in range(pinv.shape[0]):
        keep = np.concatenate([np.ones(n_ff, bool), pre_valid[i]])
        sub = np.linalg.inv(pinv[i][np.ix_(keep, keep)])
        out[i][np.ix_(keep, keep)] = sub
    return out


def gather_x_reference(pre: NDArray, r: NDArray, x_ff: NDArray) -> NDArray[np.float64]:
    """x = [x_ff; r[pre]] of every neuron, 0 on padding slots: (n_owned, LX + m) float64."""
    xr = np.where(pre >= 0, np.asarray(r, np.float64)[np.maximum(pre, 0)], 0.0)
    xf = np.broadcast_to(np.asarray(x_ff, np.float64), (pre.shape[0], len(x_ff)))
    return np.concatenate([xf, xr], axis=1)


def _apply_error(i, k, den, x, pre, w, w_ff, u_bal, target, textbook, apply):
    """Error with the old weights and the weight update of neuron i (spec §4.3 steps 5-6)."""
    n_ff = w_ff.shape[1]
    valid = pre[i] >= 0
    e = (
        float(np.dot(w[i].astype(np.float64)[valid], x[n_ff:][valid]))
        + float(np.dot(w_ff[i].astype(np.float64), x[:n_ff]))
        + float(u_bal[i])
        - float(target[i])
    )
    if apply:
        coef = e * den if textbook else e
        w[i, valid] = w[i, valid] - coef * k[n_ff:][valid]
        w_ff[i] = w_ff[i] - coef * k[:n_ff]
    return e


def rls_update_reference(
    P_full: NDArray,
    pre: NDArray,
    w: NDArray,
    r: NDArray,
    x_ff: NDArray,
    w_ff: NDArray,
    u_bal: NDArray,
    target: NDArray,
    textbook: bool,
    apply: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """One fast-mode RLS step (spec §4.3) in float64; returns updated copies.

    Returns (P (n_owned, n, n), w (n_owned, m), w_ff (n_owned, LX), e (n_owned,)), all float64.
    """
    P = np.array(P_full, dtype=np.float64)
    w = np.array(w, dtype=np.float64)
    w_ff = np.array(w_ff, dtype=np.float64).reshape(pre.shape[0], len(x_ff))
    X = gather_x_reference(pre, r, x_ff)
    err = np.zeros(pre.shape[0])
    for i in range(pre.shape[0]):
        x = X[i]
        k = P[i] @ x
        den = 1.0 / (1.0 + x @ k)
        P[i] = P[i] - den * np.outer(k, k)
        err[i] = _apply_error(i, k, den, x, pre, w, w_ff, u_bal, target, textbook, apply)
    return P, w, w_ff, err


def rls_small_reference(
    pre: NDArray,
    w: NDArray,
    r: NDArray,
    x_ff: NDArray,
    w_ff: NDArray,
    u_bal: NDArray,
    target: NDArray,
    hist: NDArray,
    hist_len: int,
    penlambda: float,
    penlam_ff: float,
    penmu: float,
    textbook: bool,
    apply: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """One small-mode step (spec §4.5, with the +LX history offset fixed); returns copies.

    hist: (H, LX + N) rows [x_ff; r]; rows 0..hist_len-1 are used.  Padding slots are dropped
    from the system.  Returns (w, w_ff, k (n_owned, n) with 0 on padding slots).
    """
    n_owned, m = pre.shape
    n_ff = len(x_ff)
    w0 = np.array(w, dtype=np.float64)
    pinv = pinv_reference(w0, pre >= 0, n_ff, penlambda, penlam_ff, penmu)
    w = w0.copy()
    w_ff = np.array(w_ff, dtype=np.float64).reshape(n_owned, n_ff)
    X = gather_x_reference(pre, r, x_ff)
    K = np.zeros((n_owned, n_ff + m))
    for i in range(n_owned):
        keep = np.concatenate([np.ones(n_ff, bool), pre[i] >= 0])
        a = pinv[i].copy()
        for h in range(hist_len):
            g = gather_x_reference(pre[i : i + 1], hist[h, n_ff:], hist[h, :n_ff])[0]
            a += np.outer(g, g)
        x = X[i]
        k = np.zeros(n_ff + m)
        k[keep] = np.linalg.solve(a[np.ix_(keep, keep)], x[keep])
        K[i] = k
        den = 1.0 / (1.0 + x @ k)
        _apply_error(i, k, den, x, pre, w, w_ff, u_bal, target, textbook, apply)
    return w, w_ff, K
