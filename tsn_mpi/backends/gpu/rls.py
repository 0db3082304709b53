"""The fast-mode RLS update on the GPU, packed P (spec §4.3, §4.4, §5.4).

P is ``(n_owned, L)``, ``L = n(n+1)/2``: row i is neuron i's packed upper triangle, column by
column (element (a, b), a <= b, at ``T_b + a`` with ``T_b = b(b+1)/2``) -- the layout of the
checkpoint files, so no transposes are needed.

Three kernels (:func:`rls_launch` picks one): the default :func:`rls_block_kernel` gives each
neuron a thread block with one thread per row (see its docstring; 69 % of an H100's copy
bandwidth at n = 90); the warp kernels below give each neuron one warp and either stage its row
in shared memory too (``warp``, the previous default) or stream it from device memory when the
row does not fit (``streamed``).  In the warp kernels the 32 lanes of a warp share one neuron:

1. gather ``x = [x_ff; r[pre]]`` into shared memory and the error partial sums (old weights);
2. ``k = P x`` in one pass over P: lane l owns the rows ``a = l, l+32, ...`` (k in registers);
   column b is read by the lanes at consecutive addresses (coalesced / bank-conflict free),
   ``k[a] += P(a,b) x[b]`` for a <= b; then lane l adds the column dots ``sum_{a<b} P(a,b) x[a]``
   of its columns ``b = l, l+32, ...`` (triangular numbers mod 32 are distinct, so the 32 lanes
   reading 32 different columns hit 32 different banks);
3. ``c = x.k``, ``den``, the error and the finite checks as warp reductions through shared
   memory (every lane sums the 32 partials in the same order: one value per warp);
4. ``P -= (den k) k^T`` and the weight update.

The ``warp`` kernel (and the block kernel) first copy the neuron's P row into shared memory
(unrolled, many loads in flight), run steps 2-4 there and write the row back: device memory
sees exactly one read and one write of P per update.  Rows too large for shared memory use the
``streamed`` kernel, which reads P from device memory in step 2 and again in step 4 (the second
read mostly hits L2).

Storage types: float64 (float64 arithmetic), float32 and float16 (float32 arithmetic; float16 is
widened on load and rounded to nearest even on store), int16 (float32 arithmetic) and int32
(float64 arithmetic) with a scale s (spec §4.3 PScale): the stored value is ``round(s * P)``,
``k = (P_stored x) / s``, and the update subtracts ``(den * s) k k^T``, rounded half up and
clamped to +-(2^15 - 1) or +-(2^31 - 1).  Everything else (float64 ``x.k``, ``den``, error with
the old weights, a-priori or textbook gain, benchmark mode, bad neurons left untouched) is the
CPU learner's (``backends/cpu/rls_fast.py``); sums run in another order, so results agree to
rounding, not bitwise.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numba import cuda

WARP = 32
INT_LIMITS = {"int16": 2**15 - 1, "int32": 2**31 - 1}
STORAGE = ("float64", "float32", "float16", "int16", "int32")
# static shared memory per block is limited to 48 KB; leave room for x, k and the partials
SHARED_BUDGET = 46 * 1024
MAX_WARPS = 4  # neurons (warps) per block
UNROLL = 16  # loads in flight per lane while staging a P row
FOLD = 4  # partial sums every thread of the block kernel adds up


def math_dtype(p_dtype: str) -> type:
    """Arithmetic type for P of dtype p_dtype: float64 for float64 and int32, else float32."""
    return np.float64 if p_dtype in ("float64", "int32") else np.float32


def packed_len(n: int) -> int:
    return n * (n + 1) // 2


def plan(n: int, p_dtype: str, staged: bool | None = None) -> tuple[bool, int]:
    """(staged, warps per block) for n inputs: staged when one warp's P row, x and k fit the
    shared-memory budget (unless ``staged`` forces a choice; forcing True on a row that does not
    fit raises ValueError)."""
    row = packed_len(n) * np.dtype(p_dtype).itemsize
    scratch = 2 * max(n, 1) * np.dtype(math_dtype(p_dtype)).itemsize + 2 * WARP * 8 + 8
    fits = row + scratch <= SHARED_BUDGET
    if staged is None:
        staged = fits
    if staged and not fits:
        raise ValueError(f"P row of {row} bytes does not fit in shared memory (n = {n})")
    if staged:
        return True, max(1, min(MAX_WARPS, SHARED_BUDGET // (row + scratch)))
    return False, MAX_WARPS


U0, U1, UW = np.uint64(0), np.uint64(1), np.uint64(WARP)


@cuda.jit(device=True, inline=True)
def _store(arr, idx, v, lim):
    """arr[idx] = v; integer storage (lim > 0) rounds half up and clamps to +-lim."""
    if lim > 0:
        q = math.floor(v + 0.5)
        if q > lim:
            q = lim
        elif q < -lim:
            q = -lim
        arr[idx] = q
    else:
        arr[idx] = v


def _row_copier(length: int, stride: int, unroll: int, store_t):
    """Device function ``copy_in(src, dst, start)``: ``dst[c] = src[c]`` for c = start, start +
    stride, ... < length (start < stride), in groups of ``unroll`` loads issued before their
    stores.

    The groups that lie inside the row for every start are plain unrolled loads; the tail is one
    unrolled group of unconditional loads whose indices past the end are clamped to the last
    element (only its stores are conditional), where a remainder loop could wait one memory
    latency per element.  (ptxas schedules the loads itself: at n = 90 it keeps ~15-20 of a
    thread's loads in flight whatever ``unroll`` is above that.)"""
    full = length // stride  # elements every thread has
    share = -(-length // stride)  # elements the first threads have
    unroll = max(1, min(unroll, share))
    groups = full // unroll
    tail = share - groups * unroll  # <= unroll
    n_u = np.uint64(length)
    last = np.uint64(max(length - 1, 0))
    s_u = np.uint64(stride)
    step = np.uint64(stride * unroll)

    @cuda.jit(device=True, inline=True)
    def copy_in(src, dst, start):
        tmp = cuda.local.array(unroll, store_t)
        c0 = start
        for _ in range(groups):
            for u in range(unroll):
                tmp[u] = src[c0 + np.uint64(u) * s_u]
            for u in range(unroll):
                dst[c0 + np.uint64(u) * s_u] = tmp[u]
            c0 += step
        for u in range(tail):
            c = c0 + np.uint64(u) * s_u
            tmp[u] = src[c if c < last else last]
        for u in range(tail):
            c = c0 + np.uint64(u) * s_u
            if c < n_u:
                dst[c] = tmp[u]

    return copy_in


def block_threads(n: int) -> int:
    """Threads per block of the block-per-neuron kernel: one per row of P, in whole warps."""
    return WARP * max(1, -(-n // WARP))


def block_shared_bytes(n: int, p_dtype: str) -> int:
    """Static shared memory of one block of the block-per-neuron kernel."""
    nt = block_threads(n)
    row = packed_len(n) * np.dtype(p_dtype).itemsize
    return row + 2 * nt * np.dtype(math_dtype(p_dtype)).itemsize + 2 * (WARP + FOLD) * 8


@functools.cache
def rls_block_kernel(n_ff: int, m: int, p_dtype: str, unroll: int = 0):
    """``(kernel, threads)``: the fast-mode update with one thread block per neuron.

    Launch ``kernel[n_owned, threads](...)`` with the arguments of :func:`rls_warp_kernel`.
    Thread t owns row and column t of the neuron's P (threads = n rounded up to whole warps):

    1. all threads stage the packed row in shared memory (in unrolled groups of ``unroll`` loads
       per thread; 0 = the whole share as one group) and gather ``x_t``;
    2. ``k_t = sum_j P(min(t, j), max(t, j)) x_j``: n steps per thread reading column t
       ``T_t + j`` (j < t; triangular numbers are distinct mod 32: no bank conflicts) and row
       t's upper part ``T_j + t`` (j >= t; consecutive in t) -- every thread does the same work;
    3. ``c = x.k`` and the error (old weights, float64): 32 partial sums by warp 0, folded to 4
       by 4 lanes, which every thread adds in the same order;
    4. thread t subtracts ``(den s k_t) k_b`` from row t's part ``b >= t`` and updates its weight;
       then all threads write the row back.

    More threads per staged byte than one warp per neuron: 3 warps per 16 KB row at n = 90 keep
    36 warps per SM in flight where the warp kernel had 12, and every thread does the same work
    (no lane waits for the longest column).  Shared-memory traffic is what limits it (Nsight
    Compute: L1/shared throughput 93 %, DRAM 43 % on an H200)."""
    n = n_ff + m
    if n < 1:
        raise ValueError("the block kernel needs n >= 1 inputs")
    L = packed_len(n)
    nt = block_threads(n)
    if block_shared_bytes(n, p_dtype) > SHARED_BUDGET:
        raise ValueError(f"P row of {L * np.dtype(p_dtype).itemsize} bytes does not fit in "
                         f"shared memory (n = {n})")  # fmt: skip
    math_t = math_dtype(p_dtype)
    store_t = np.dtype(p_dtype).type
    lim = INT_LIMITS.get(p_dtype, 0)
    zero = math_t(0.0)
    share = -(-L // nt)
    copy_in = _row_copier(L, nt, share if unroll <= 0 else unroll, store_t)
    L_u, n_u = np.uint64(L), np.uint64(n)
    nt_u = np.uint64(nt)

    @cuda.jit(device=True, inline=True)
    def x_of(a, i, pre, r, x_ff):
        """Input a of neuron i: feed-forward rate or presynaptic trace (0 for padding)."""
        if a < n_ff:
            return math_t(x_ff[a])
        if a < n:
            g = pre[i, a - n_ff]
            if g >= 0:
                return math_t(r[g])
        return zero

    @cuda.jit
    def kernel(P, pre, w, r, x_ff, w_ff, u_bal, target, scale, textbook, apply, bad, nbad):
        i = cuda.blockIdx.x
        t = cuda.threadIdx.x
        if i >= u_bal.shape[0]:  # the whole block leaves together
            return
        buf = cuda.shared.array(L, store_t)
        xs = cuda.shared.array(nt, math_t)
        ks = cuda.shared.array(nt, math_t)
        red_e = cuda.shared.array(WARP, np.float64)
        red_c = cuda.shared.array(WARP, np.float64)
        fold_e = cuda.shared.array(FOLD, np.float64)
        fold_c = cuda.shared.array(FOLD, np.float64)
        prow = P[i]
        tu = np.uint64(t)
        copy_in(prow, buf, tu)
        # 1. x_t (the error terms are summed by warp 0 below, in float64)
        xs[t] = x_of(t, i, pre, r, x_ff)
        cuda.syncthreads()
        # 2. k_t over the full symmetric row t
        # (while loops: numba's range() adds iterator bookkeeping to every step)
        k = zero
        if tu < n_u:
            col = (tu * (tu + U1)) >> U1  # column t: P(j, t), j < t, contiguous
            ju = U0
            while ju < tu:
                k += math_t(buf[col + ju]) * xs[ju]
                ju += U1
            idx = col + tu  # row t: P(t, j), j >= t, at T_j + t
            while ju < n_u:
                k += math_t(buf[idx]) * xs[ju]
                ju += U1
                idx += ju
            k = k * math_t(1.0 / scale)
        ks[t] = k
        bad_k = tu < n_u and not math.isfinite(k)
        cuda.syncthreads()
        # 3. partial sums of the error and of x.k by warp 0 (lane l: inputs l, l + 32, ...)
        if t < WARP:
            e = 0.0
            c = 0.0
            for a in range(t, n, WARP):
                c += np.float64(xs[a]) * np.float64(ks[a])
                if a < n_ff:
                    e += np.float64(w_ff[i, a]) * x_ff[a]
                else:
                    g = pre[i, a - n_ff]
                    if g >= 0:
                        e += np.float64(w[i, a - n_ff]) * r[g]
            red_e[t] = e
            red_c[t] = c
        cuda.syncthreads()
        # lanes 0-3 fold 8 partials each; then every thread adds the 4 in the same order (one
        # value per block; shared-memory traffic, the kernel's limit, stays small)
        if t < FOLD:
            e = 0.0
            c = 0.0
            for q in range(WARP // FOLD):
                e += red_e[t * (WARP // FOLD) + q]
                c += red_c[t * (WARP // FOLD) + q]
            fold_e[t] = e
            fold_c[t] = c
        cuda.syncthreads()
        e = 0.0
        c = 0.0
        for q in range(FOLD):
            e += fold_e[q]
            c += fold_c[q]
        e = (e + np.float64(u_bal[i])) - np.float64(target[i])
        den = 1.0 / (1.0 + c)
        coef = e * den if textbook != 0 else e
        # finite checks: k, the new weights, den and the coefficient
        bad_w = False
        if t < n_ff:
            bad_w = not math.isfinite(np.float32(w_ff[i, t] - coef * np.float64(k)))
        elif t < n:
            if pre[i, t - n_ff] >= 0:
                bad_w = not math.isfinite(np.float32(w[i, t - n_ff] - coef * np.float64(k)))
        any_bad = cuda.syncthreads_or(1 if bad_k or bad_w else 0)
        ok = any_bad == 0 and math.isfinite(den) and math.isfinite(coef)
        if t == 0:
            bad[i] = 0 if ok else 1
            if not ok:
                cuda.atomic.add(nbad, 0, 1)
        if ok:
            # 4. P -= (den s k) k^T: thread t owns (t, b) for b >= t
            if tu < n_u:
                ka = math_t(den * scale * np.float64(k))
                idx = ((tu * (tu + U1)) >> U1) + tu
                bu = tu
                while bu < n_u:
                    _store(buf, idx, math_t(buf[idx]) - ka * ks[bu], lim)
                    bu += U1
                    idx += bu
                if apply != 0:
                    if t < n_ff:
                        w_ff[i, t] = np.float64(w_ff[i, t]) - coef * np.float64(k)
                    elif pre[i, t - n_ff] >= 0:
                        w[i, t - n_ff] = np.float64(w[i, t - n_ff]) - coef * np.float64(k)
            cuda.syncthreads()
            c1 = tu
            while c1 < L_u:
                prow[c1] = buf[c1]
                c1 += nt_u

    kernel.tsn_key = ("block", n_ff, m, p_dtype, unroll)  # see from_key
    return kernel, nt


KINDS = ("block", "warp", "streamed")


@dataclass(frozen=True)
class RlsLaunch:
    """A compiled fast-mode RLS kernel and its launch shape."""

    kernel: object
    kind: str  # one of KINDS
    neurons_per_block: int
    threads: int

    def blocks(self, n_owned: int) -> int:
        return max(1, -(-n_owned // self.neurons_per_block))

    def __call__(self, n_owned: int, *args) -> None:
        """Launch on n_owned neurons; args as for :func:`rls_warp_kernel`'s kernel."""
        self.kernel[self.blocks(n_owned), self.threads](*args)


def from_key(key) -> object:
    """The kernel whose ``tsn_key`` is key (lets tests rebuild a launched kernel)."""
    kind, n_ff, m, p_dtype, unroll = key
    return rls_launch(n_ff, m, p_dtype, kind, unroll).kernel


def block_fits(n: int, p_dtype: str) -> bool:
    return n >= 1 and block_shared_bytes(n, p_dtype) <= SHARED_BUDGET


def rls_launch(n_ff: int, m: int, p_dtype: str, kind: str | None = None,
               unroll: int = 0) -> RlsLaunch:  # fmt: skip
    """The update kernel for n = n_ff + m inputs: ``kind`` 'block' (one block per neuron, P row in
    shared memory; the default where the row fits), 'warp' (one warp per neuron, row in shared
    memory) or 'streamed' (one warp per neuron, P read from device memory; rows too large for
    shared memory).  ``unroll``: loads per thread in each unrolled group while the block kernel
    stages a row (0 = its whole share in one group)."""
    n = n_ff + m
    if kind is None:
        kind = "block" if block_fits(n, p_dtype) else "streamed"
    if kind == "block":
        kern, nt = rls_block_kernel(n_ff, m, p_dtype, unroll)
        return RlsLaunch(kern, kind, 1, nt)
    if kind in ("warp", "streamed"):
        kern, wpb = rls_warp_kernel(n_ff, m, p_dtype, kind == "warp")
        return RlsLaunch(kern, kind, wpb, WARP * wpb)
    raise ValueError(f"RLS kernel {kind!r}: expected one of {', '.join(KINDS)}")


@functools.cache
def rls_warp_kernel(n_ff: int, m: int, p_dtype: str, staged: bool | None = None):
    """``(kernel, warps_per_block)`` of the fast-mode update for n = n_ff + m and P of p_dtype.

    ``kernel[blocks, 32 * warps_per_block](P, pre, w, r, x_ff, w_ff, u_bal, target, scale,
    textbook, apply, bad, nbad)`` with blocks = ceil(n_owned / warps_per_block):

    - P (n_owned, n(n+1)/2) p_dtype; pre (n_owned, >= m) int32 global ids (-1 = padding);
      w (n_owned, >= m) float32; w_ff (n_owned, >= n_ff) float32; r (N,) float64 traces;
      x_ff (>= n_ff,) float64; u_bal, target (n_owned,) float32;
    - scale: float64 storage scale (1.0 for float P); textbook, apply: 0/1;
    - bad (n_owned,) uint8 output; nbad (1,) int32 incremented per bad neuron (caller zeroes).
    """
    n = n_ff + m
    nl = max(n, 1)
    L = packed_len(n)
    Q = max(1, -(-n // WARP))  # rows (and columns) per lane
    math_t = math_dtype(p_dtype)
    store_t = np.dtype(p_dtype).type
    lim = INT_LIMITS.get(p_dtype, 0)
    staged, wpb = plan(n, p_dtype, staged)
    Ls = max(L, 1)
    zero = math_t(0.0)
    # hot loops index with uint64: numba then emits no negative-index wraparound code
    L_u = np.uint64(L)
    copy_in = _row_copier(L, WARP, UNROLL, store_t)

    @cuda.jit(device=True)
    def body(src, i, valid, wi, lane, P, pre, w, r, x_ff, w_ff, u_bal, target, scale,
             textbook, apply, bad, nbad, xs, ks, red_e, red_c, flag):  # fmt: skip
        """Steps 1-4 for neuron i (warp wi of the block) with its P row in src (1-D)."""
        inv_scale = 1.0 / scale
        xw = xs[wi]
        kw = ks[wi]
        lu = np.uint64(lane)
        # 1. gather x and the error partials (float64, old weights)
        e = 0.0
        if valid:
            for a in range(lane, n_ff, WARP):
                xs[wi, a] = math_t(x_ff[a])
                e += np.float64(w_ff[i, a]) * x_ff[a]
            for j in range(lane, m, WARP):
                g = pre[i, j]
                if g >= 0:
                    rv = r[g]
                    xs[wi, n_ff + j] = math_t(rv)
                    e += np.float64(w[i, j]) * rv
                else:
                    xs[wi, n_ff + j] = zero
        red_e[wi, lane] = e
        if lane == 0:
            flag[wi] = 0
        cuda.syncthreads()
        # 2. k = P x: rows a = lane + 32q (a <= b), then the column dots of b = lane + 32q
        kr = cuda.local.array(Q, math_t)
        for q in range(Q):
            kr[q] = zero
        if valid:
            ub = U0
            for b in range(n):
                bu = np.uint64(b)
                xb = xw[bu]
                for q in range(Q):
                    au = np.uint64(q * WARP) + lu
                    if au <= bu:
                        kr[q] += math_t(src[ub + au]) * xb
                ub += bu + U1
            for q in range(Q):
                b = q * WARP + lane
                if b < n:
                    bu = np.uint64(b)
                    ub = (bu * (bu + U1)) >> U1
                    acc = zero
                    for a in range(b):
                        au = np.uint64(a)
                        acc += math_t(src[ub + au]) * xw[au]
                    kr[q] += acc
        c = 0.0
        bad_k = False
        for q in range(Q):
            a = q * WARP + lane
            kq = kr[q] * math_t(inv_scale)
            kr[q] = kq
            if a < n:
                ks[wi, a] = kq
                if valid:  # a warp past the last neuron never wrote its xs (racecheck)
                    c += np.float64(xs[wi, a]) * np.float64(kq)
                if not math.isfinite(kq):
                    bad_k = True
        red_c[wi, lane] = c
        if bad_k:
            flag[wi] = 1
        cuda.syncthreads()
        # 3. error, den, coefficient (the same in every lane), finite checks of the new weights
        e = 0.0
        c = 0.0
        for j in range(WARP):
            e += red_e[wi, j]
            c += red_c[wi, j]
        if valid:
            e = (e + np.float64(u_bal[i])) - np.float64(target[i])
        den = 1.0 / (1.0 + c)
        coef = e * den if textbook != 0 else e
        if valid:
            bad_w = False
            for a in range(lane, n_ff, WARP):
                if not math.isfinite(np.float32(w_ff[i, a] - coef * np.float64(ks[wi, a]))):
                    bad_w = True
            for j in range(lane, m, WARP):
                if pre[i, j] >= 0:
                    wn = np.float32(w[i, j] - coef * np.float64(ks[wi, n_ff + j]))
                    if not math.isfinite(wn):
                        bad_w = True
            if bad_w:
                flag[wi] = 1
        cuda.syncthreads()
        ok = valid and flag[wi] == 0 and math.isfinite(den) and math.isfinite(coef)
        if valid and lane == 0:
            bad[i] = 0 if ok else 1
            if not ok:
                cuda.atomic.add(nbad, 0, 1)
        if ok:
            # 4. P -= (den s k) k^T on the upper triangle, then the weights
            dscale = den * scale
            ub = U0
            for b in range(n):
                bu = np.uint64(b)
                kdb = math_t(dscale * np.float64(kw[bu]))
                for q in range(Q):
                    au = np.uint64(q * WARP) + lu
                    if au <= bu:
                        idx = ub + au
                        _store(src, idx, math_t(src[idx]) - kdb * kr[q], lim)
                ub += bu + U1
            if apply != 0:
                for a in range(lane, n_ff, WARP):
                    w_ff[i, a] = np.float64(w_ff[i, a]) - coef * np.float64(ks[wi, a])
                for j in range(lane, m, WARP):
                    if pre[i, j] >= 0:
                        w[i, j] = np.float64(w[i, j]) - coef * np.float64(ks[wi, n_ff + j])
        return ok

    if staged:

        @cuda.jit
        def kernel(P, pre, w, r, x_ff, w_ff, u_bal, target, scale, textbook, apply, bad, nbad):
            wi = cuda.threadIdx.x // WARP
            lane = cuda.threadIdx.x % WARP
            i = cuda.blockIdx.x * wpb + wi
            valid = i < u_bal.shape[0]
            buf = cuda.shared.array((wpb, Ls), store_t)
            xs = cuda.shared.array((wpb, nl), math_t)
            ks = cuda.shared.array((wpb, nl), math_t)
            red_e = cuda.shared.array((wpb, WARP), np.float64)
            red_c = cuda.shared.array((wpb, WARP), np.float64)
            flag = cuda.shared.array(wpb, np.int32)
            brow = buf[wi]
            prow = P[i if valid else 0]
            lu = np.uint64(lane)
            if valid:
                copy_in(prow, brow, lu)
            cuda.syncthreads()
            ok = body(brow, i, valid, wi, lane, P, pre, w, r, x_ff, w_ff, u_bal, target,
                      scale, textbook, apply, bad, nbad, xs, ks, red_e, red_c, flag)  # fmt: skip
            cuda.syncthreads()
            if ok:
                c1 = lu
                while c1 < L_u:
                    prow[c1] = brow[c1]
                    c1 += UW

    else:

        @cuda.jit
        def kernel(P, pre, w, r, x_ff, w_ff, u_bal, target, scale, textbook, apply, bad, nbad):
            wi = cuda.threadIdx.x // WARP
            lane = cuda.threadIdx.x % WARP
            i = cuda.blockIdx.x * wpb + wi
            valid = i < u_bal.shape[0]
            xs = cuda.shared.array((wpb, nl), math_t)
            ks = cuda.shared.array((wpb, nl), math_t)
            red_e = cuda.shared.array((wpb, WARP), np.float64)
            red_c = cuda.shared.array((wpb, WARP), np.float64)
            flag = cuda.shared.array(wpb, np.int32)
            body(P[i if valid else 0], i, valid, wi, lane, P, pre, w, r, x_ff, w_ff, u_bal,
                 target, scale, textbook, apply, bad, nbad, xs, ks, red_e, red_c,
                 flag)  # fmt: skip

    kernel.tsn_key = ("warp" if staged else "streamed", n_ff, m, p_dtype, 0)  # see from_key
    return kernel, wpb


@cuda.jit(device=True)
def _group(pre, w, i, j):
    if pre[i, j] < 0:
        return 0
    if w[i, j] > 0:
        return 1
    if w[i, j] < 0:
        return 2
    return 0


@cuda.jit
def fill_p0(P, pre, w, n_ff, m, lam, mu, penlam_ff, scale, lim):
    """Initial P0 (spec §4.2) of neuron i into row i of P (n_owned, n(n+1)/2), one warp each.

    Same closed form as ``learn.initial_p._fill_p0`` (Sherman-Morrison per sign group),
    computed in float64, times ``scale`` and rounded once to P's dtype (integer P: rounded half
    up and clamped to +-lim; lim = 0 for float P).  pre, w: (n_owned, >= m).  Groups:
    0 = feed-forward, padding or zero weight, 1 = positive, 2 = negative weight.
    """
    i = cuda.grid(1) // WARP
    lane = cuda.threadIdx.x % WARP
    if i >= P.shape[0]:
        return
    n = n_ff + m
    prow = P[i]
    g_pos = 0
    g_neg = 0
    for j in range(m):
        g = _group(pre, w, i, j)
        if g == 1:
            g_pos += 1
        elif g == 2:
            g_neg += 1
    same1 = -mu / (lam * (lam + g_pos * mu))
    same2 = -mu / (lam * (lam + g_neg * mu))
    base = 0
    for b in range(n):
        gb = 0
        valid_b = True
        if b >= n_ff:
            valid_b = pre[i, b - n_ff] >= 0
            gb = _group(pre, w, i, b - n_ff)
        for a in range(lane, b + 1, WARP):
            val = 0.0
            if a == b:
                if a < n_ff:
                    val = 1.0 / penlam_ff
                elif valid_b:
                    val = 1.0 / lam
                    if gb == 1:
                        val += same1
                    elif gb == 2:
                        val += same2
            elif a >= n_ff:
                ga = _group(pre, w, i, a - n_ff)
                if ga == gb and ga == 1:
                    val = same1
                elif ga == gb and ga == 2:
                    val = same2
            _store(prow, base + a, val * scale, lim)
        base += b + 1
