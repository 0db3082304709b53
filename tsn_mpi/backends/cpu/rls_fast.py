"""numba kernel of the fast-mode RLS weight update: P stored per neuron, in tiles (spec §4.3).

Fast mode keeps every neuron's P in AoSoA tiles ``P[t, idx, lane]`` of ``TILE_W`` neurons (see
:mod:`tsn_mpi.learn.packed`): neuron ``lid`` is tile ``lid // TILE_W``, lane ``lid % TILE_W``.
One thread takes one tile at a time and streams it twice: once to compute ``k = P x`` for its 32
neurons, once to apply ``P -= den k k^T``; the tile stays in L2/L3 in between, so memory sees
about one read and one write of P per update.  All inner loops run across the 32 lanes (the
vector intrinsics of :mod:`~tsn_mpi.backends.cpu.lane_vectors`), so each neuron goes through
exactly the same sequence of float operations whatever its lane, its tile or the number of
threads: results are bitwise reproducible (no ``fastmath``, no FMA contraction).

Storage and arithmetic types of P:

- float64 P: arithmetic in float64;
- float32 P: x is rounded to float32, ``k = P x`` and the P update run in float32; ``x.k``,
  ``den`` and ``den*k`` are formed in float64 (then rounded to float32 for the update);
- float16 P: numba has no float16 arithmetic on the CPU, so float16 arrays are carried as their
  ``uint16`` bit patterns (``p16.view(np.uint16)``; the Python wrappers accept either).  Each
  element is widened to float32, updated as for float32 P, and rounded back to the nearest
  float16 (ties to even).  :mod:`~tsn_mpi.backends.cpu.float16` has the same conversions for
  scalars.

Full storage (:func:`rls_fast_full`, tiles ``(n_tiles, n*n, TILE_W)``, element ``(a, b)`` at
``a*n + b``) reads and writes only the upper triangle ``a <= b``, like Julia's ``Symmetric``; the
lower triangle is never touched and goes stale (``packed.symmetrize_full_rows`` rebuilds it).

Neurons whose gain k, ``den``, error or new weights are not finite are flagged in ``bad`` and
left untouched (neither their P nor their weights change), so a run can stop with a clean state.

:func:`rls_fast` and :func:`rls_fast_full` are Python wrappers that check shapes and call one
compiled parallel kernel, :func:`fast_kernel` (callable from other jitted code).  It sees P as
bytes plus a storage code, so one compilation serves every P dtype and both storages (cold:
~5-10 s on 2 Zen 5 cores; then loaded from numba's cache in well under a second).

Speed (benchmarks/rls_kernel.py, 2 threads, 300 MB of P): n = 90 float32 packed moves
2 * bytes(P) at ~44 GB/s, ~85% of a 2-thread numba copy; the rows of k = P x prefetch 32 KB
ahead, and each tile prefetches the traces r[pre] the next tile will gather.  The tiles should
live in transparent huge pages (``packed.alloc_tiles`` / ``rows_to_tiles`` do that).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload
from numpy.typing import NDArray

from tsn_mpi.backends.cpu.lane_vectors import (
    F16,
    F32,
    F64,
    PREFETCH_BYTES,
    W,
    lanes_dot,
    lanes_scale,
    prefetch_item,
    spmv_line,
    update_line,
)
from tsn_mpi.backends.cpu.rls_checks import check_common_arrays

_CODES = {
    np.dtype(np.float64): F64,
    np.dtype(np.float32): F32,
    np.dtype(np.uint16): F16,
    np.dtype(np.float16): F16,
}

# ------------------------------------------------------------------------ fast mode, one tile


def _spmv_tile(P, code, t, full, X, K):
    """K = P[t] X: packed columns b (elements (a, b), a <= b) or full rows a (a*n + b, b >= a).

    Overloaded on the scratch dtype: float64 scratch goes with float64 P, float32 scratch with
    float32 or float16 P, so only matching intrinsics are compiled.
    """


def _update_tile(P, code, t, full, K, KD):
    """P[t] -= KD K^T on the upper triangle: element (a, b), a <= b, minus KD[b] * K[a]."""


def _lines(spmv, codes):
    """Implementation of _spmv_tile (spmv True) or _update_tile for the given storage codes."""
    c0, c1 = codes[0], codes[-1]

    def spmv_impl(P, code, t, full, X, K):
        n = X.shape[0]
        K[:] = 0.0
        pf = 0 if full else PREFETCH_BYTES  # full rows skip the lower triangle: no prefetch
        base = 0
        for b in range(n):
            off, j0, j1 = (b * n, b + 1, n) if full else (base, 0, b)
            if code == c0:
                spmv_line(P, c0, t, off, X, K, b, j0, j1, pf)
            else:
                spmv_line(P, c1, t, off, X, K, b, j0, j1, pf)
            base += b + 1

    def update_impl(P, code, t, full, K, KD):
        n = K.shape[0]
        base = 0
        for b in range(n):
            if full:  # row b: elements (b, c), c >= b, minus K[b] * KD[c]
                S, T, off, j0, j1 = K, KD, b * n, b, n
            else:  # packed column b: elements (a, b), a <= b, minus KD[b] * K[a]
                S, T, off, j0, j1 = KD, K, base, 0, b + 1
            if code == c0:
                update_line(P, c0, t, off, S, T, b, j0, j1)
            else:
                update_line(P, c1, t, off, S, T, b, j0, j1)
            base += b + 1

    return spmv_impl if spmv else update_impl


@overload(_spmv_tile)
def _ol_spmv_tile(P, code, t, full, X, K):
    return _lines(True, (F64,) if X.dtype == types.float64 else (F32, F16))


@overload(_update_tile)
def _ol_update_tile(P, code, t, full, K, KD):
    return _lines(False, (F64,) if K.dtype == types.float64 else (F32, F16))


@njit(cache=True, inline="always")
def _gather_tile(t, pre, w, r, x_ff, w_ff, u_bal, target, X, lanes, xb):
    """X[:, lane] = [x_ff; r[pre[lid]]] (0 on padding slots and lanes) in X's dtype, and the
    error e = (w.x_rec + w_ff.x_ff + u_bal) - target of each lane into lanes[2] (float64,
    old weights; w.x_rec summed in two chains, even and odd slots).  xb: (>= m,) float64
    scratch.  Also prefetches the traces that tile t + 1 will gather."""
    n_owned, m = pre.shape
    n_ff = x_ff.shape[0]
    n_lanes = min(W, n_owned - t * W)  # runtime trip counts: keeps LLVM from unrolling by 32
    for lane in range(n_lanes, X.shape[1]):  # padding lanes
        for a in range(n_ff + m):
            X[a, lane] = 0
        lanes[2, lane] = 0.0
    for lane in range(n_lanes):
        lid = t * W + lane
        for a in range(n_ff):
            X[a, lane] = x_ff[a]
        for j in range(m):
            g = pre[lid, j]
            xb[j] = r[g] if g >= 0 else 0.0
            X[n_ff + j, lane] = xb[j]
        e0 = 0.0  # w.x_rec in two chains: even and odd slots
        e1 = 0.0
        for j in range(0, m - 1, 2):
            e0 += np.float64(w[lid, j]) * xb[j]
            e1 += np.float64(w[lid, j + 1]) * xb[j + 1]
        if m % 2:
            e0 += np.float64(w[lid, m - 1]) * xb[m - 1]
        e = e0 + e1
        for a in range(n_ff):
            e += np.float64(w_ff[lid, a]) * x_ff[a]
        lanes[2, lane] = (e + np.float64(u_bal[lid])) - np.float64(target[lid])
    for lid in range((t + 1) * W, min((t + 2) * W, n_owned)):
        for j in range(m):
            if pre[lid, j] >= 0:
                prefetch_item(r, pre[lid, j])


@njit(cache=True, inline="always")
def _finish_tile(t, pre, w, w_ff, textbook, apply, bad, K, KD, lanes, wnew):
    """den, ok flag and new weights of every lane of tile t; KD = den*K (K = KD = 0 if bad).

    lanes (5, W) float64: rows 0 = x.k, 1 = 0 or NaN (non-finite k), 2 = e (in), 3 = den,
    4 = ok.  wnew: (n,) float64 scratch.  Weights change only if apply and the lane is good.
    """
    n_owned, m = pre.shape
    n_ff = w_ff.shape[1]
    for lane in range(K.shape[1]):  # (= W; a runtime trip count keeps LLVM from unrolling)
        lid = t * W + lane
        den = 1.0 / (1.0 + lanes[0, lane])
        e = lanes[2, lane]
        coef = e * den if textbook else e
        ok = np.isfinite(den) and np.isfinite(coef) and lanes[1, lane] == 0.0
        if lid < n_owned:
            for a in range(n_ff):
                wnew[a] = np.float32(w_ff[lid, a] - coef * np.float64(K[a, lane]))
                ok = ok and np.isfinite(wnew[a])
            for j in range(m):  # (padding slots have k = 0: their weight stays finite)
                wnew[n_ff + j] = np.float32(w[lid, j] - coef * np.float64(K[n_ff + j, lane]))
                ok = ok and np.isfinite(wnew[n_ff + j])
            bad[lid] = 0 if ok else 1
            if ok and apply:
                for a in range(n_ff):
                    w_ff[lid, a] = wnew[a]
                for j in range(m):
                    if pre[lid, j] >= 0:
                        w[lid, j] = wnew[n_ff + j]
        lanes[3, lane] = den
        lanes[4, lane] = 1.0 if ok else 0.0
    lanes_scale(K, KD, lanes[3], lanes[4])


@njit(cache=True)
def _tile_range(P, code, t0, t1, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply,
                bad, X, K, KD):  # fmt: skip
    """Fast-mode step of tiles t0..t1-1, one after the other, with scratch X, K, KD (n, W) in
    the arithmetic type: gather x and e, k = P x, den and weights, P -= den k k^T."""
    n = X.shape[0]
    lanes = np.empty((5, W))
    wnew = np.empty(n)
    for t in range(t0, t1):
        _gather_tile(t, pre, w, r, x_ff, w_ff, u_bal, target, X, lanes, wnew)
        _spmv_tile(P, code, t, full, X, K)
        lanes_dot(X, K, lanes)
        _finish_tile(t, pre, w, w_ff, textbook, apply, bad, K, KD, lanes, wnew)
        _update_tile(P, code, t, full, K, KD)


@njit(cache=True)
def _fast_range(P, code, t0, t1, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply,
                bad):  # fmt: skip
    """Tiles t0..t1-1 with float64 scratch for float64 P, float32 scratch otherwise."""
    n = x_ff.shape[0] + pre.shape[1]
    args = (P, code, t0, t1, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply, bad)
    if code == F64:
        _tile_range(*args, np.empty((n, W)), np.empty((n, W)), np.empty((n, W)))
    else:
        f4 = np.float32
        _tile_range(*args, np.empty((n, W), f4), np.empty((n, W), f4), np.empty((n, W), f4))


_CHUNKS = 256  # work units of fast_kernel: enough for load balance, few scratch allocations


@njit(parallel=True, cache=True)
def fast_kernel(
    P: NDArray[np.uint8],
    code: int,
    full: bool,
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
) -> int:
    """Compiled fast-mode step over all tiles in parallel; no argument checks (use rls_fast).

    P: the tiles as bytes, ``P_tiles.view(np.uint8)`` (n_tiles, L, TILE_W * itemsize).
    code: F64, F32 or F16.  full: True for full storage.  Others as :func:`rls_fast`.
    Tiles go in up to _CHUNKS contiguous chunks, each with its own scratch arrays.
    """
    n_tiles = (pre.shape[0] + W - 1) // W
    n_chunks = min(n_tiles, _CHUNKS)
    # the gufunc's prange index is unsigned: cast it, or every callee is compiled twice
    for ch in prange(n_chunks):
        c = np.int64(ch)
        t0, t1 = c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks
        _fast_range(P, code, t0, t1, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook,
                    apply, bad)  # fmt: skip
    nb = 0
    for i in range(bad.shape[0]):
        nb += bad[i] != 0
    return nb



# ------------------------------------------------------------------------- Python entry points


def _fast(P, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply, bad) -> int:
    """Check the arguments of rls_fast / rls_fast_full and run the compiled kernel."""
    pre, r, x_ff, u_bal, target = check_common_arrays(pre, w, r, x_ff, w_ff, u_bal, target, bad)
    (n_owned, m), n_ff = pre.shape, x_ff.shape[0]
    n = n_ff + m
    length = n * n if full else n * (n + 1) // 2
    if not isinstance(P, np.ndarray) or P.dtype not in _CODES or not P.flags.c_contiguous:
        raise ValueError("P must be a C-contiguous float64, float32 or float16/uint16 array")
    want = ((n_owned + W - 1) // W, length, W)
    if P.ndim != 3 or P.shape[1:] != want[1:] or P.shape[0] < want[0]:
        kind = "full n*n" if full else "packed n*(n+1)/2"
        raise ValueError(f"P has shape {P.shape}, expected {want} ({kind}, n = LX + m = {n})")
    code = _CODES[P.dtype]
    Pb = P.view(np.uint16 if code == F16 else P.dtype).view(np.uint8)
    return int(
        fast_kernel(
            Pb, code, full, pre, w, r, x_ff, w_ff, u_bal, target, bool(textbook), bool(apply), bad
        )
    )


def rls_fast(
    P: NDArray,
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
) -> int:
    """One fast-mode RLS step of every owned neuron, packed P in tiles, in place (spec §4.3).

    P: (n_tiles, n*(n+1)//2, TILE_W) float64, float32, or float16 (or its uint16 view),
    n = LX + m, n_tiles >= ceil(n_owned / TILE_W); lanes past n_owned must be zero.
    pre: (n_owned, m) int32 global presynaptic ids, -1 = padding. w: (n_owned, m) float32.
    r: (N_global,) float64 traces. x_ff: (LX,) float64. w_ff: (n_owned, LX) float32.
    u_bal, target: (n_owned,) float32. textbook: use e*den*k (else the a-priori e*k of HEAD).
    apply: False = benchmark mode (P changes, weights do not). bad: (n_owned,) uint8 output.
    Per neuron: x = [x_ff; r[pre]], k = P x, den = 1/(1 + x.k), P -= den k k^T,
    e = w.x_rec + w_ff.x_ff + u_bal - target (old weights), w -= e k_rec, w_ff -= e k_ff.
    Returns the number of bad neurons (non-finite k, den, error or new weights; left untouched).
    """
    return _fast(P, False, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply, bad)


def rls_fast_full(
    P: NDArray,
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
) -> int:
    """:func:`rls_fast` for full storage: P (n_tiles, n*n, TILE_W), element (a, b) at a*n + b.

    Only the upper triangle (a <= b) is read and written; the lower triangle goes stale.
    """
    return _fast(P, True, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply, bad)

