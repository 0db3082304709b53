"""numba.cuda kernels of the GPU backend: time step, spike delivery, traces, RLS (spec §3.3, §4.3).

Every kernel is written for ``numba.cuda.jit`` and runs unchanged under the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), which is how CI tests them on machines without a GPU.  Arrays are
numba device arrays; per-neuron state is packed into a few 2-D arrays (one row per quantity,
neurons along the last axis, so a warp reads contiguous memory) to keep launches cheap:

- ``fs`` float32 rows ``F_*`` (voltage, filtered currents, input accumulators, LIF params);
- ``ds`` float64 rows ``D_*`` (last spike time, dt/tau_mem, noise sigma, 1/tau_plas, OU state,
  init-trial sums); ``is_`` int64 rows ``I_*`` (spike count, recording columns);
  ``us`` uint64 rows ``U_*`` (random stream states);
- ``tr`` float64 rows ``T_*`` over all N global ids (lazy presynaptic traces) and ``r_step``;
- ``ci`` int64 / ``cf`` float64 constants (indices ``C_*`` / ``K_*``).

Arithmetic mirrors the CPU loop (``backends/cpu/loop.py``) operation by operation: float32 state,
float64 increments, the same SplitMix64 streams and Box-Muller normals, the same integer power for
the trace decay.  Differences from the CPU: spike inputs are summed with float atomics in
arbitrary order (sums agree to rounding, not bitwise; exactly when the weights are dyadic), NVVM
may contract ``a*b + c`` into an FMA in float64 expressions (visible only when the float64 result
lies within one float64 ulp of a float32 rounding boundary), and libdevice's ``log``/``cos`` may
differ from the host libm in the last bit.

Spike lists: ``lists`` / ``glob`` are int32 (3, cap + 1), row ``ti % 3`` holds the spikes of step
ti as ``[count, gid...]`` (three rows so that one kernel can read the previous step's spikes,
append the current ones and clear the next row without a race).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from tsn_mpi.rng import _M1, _M2, _S11, _S27, _S30, _S31, _TWO53, GOLDEN

MODE_INIT, MODE_TRAIN, MODE_TRAIN_TEST, MODE_TEST = 0, 1, 2, 3
NOISE_NONE, NOISE_VOLTAGE, NOISE_CURRENT = 0, 1, 2

# float32 rows of fs
F_V, F_UBALE, F_UBALI, F_UPLAS, F_UBAL, F_INE, F_INI, F_INP, F_XBAL, F_TH, F_VRE = range(11)
N_F32 = 11
# float64 rows of ds
D_LAST, D_INVTAU, D_SIG, D_ITP, D_OUS, D_UAVG, D_U0S, D_U0Q = range(8)
N_F64 = 8
# int64 rows of is_
I_NS, I_ROLL, I_SPK = range(3)
N_I64 = 3
# uint64 rows of us
U_NOISE, U_OU = range(2)
N_U64 = 2
# float64 rows of tr (length N)
T_RVAL, T_A, T_INC = range(3)
N_TR = 3
# int64 constants ci
(C_STIM_ON, C_STIM_OFF, C_U0SKIP, C_MAXT, C_GID0, C_U0N, C_NOISE, C_ONLINE, C_NFF, C_NVARS,
 C_N) = range(11)  # fmt: skip
N_CI = 11
# float64 constants cf
K_DT, K_REFRAC, K_TBE, K_TBI, K_OUMU, K_OUB, K_OUSIG, K_ITFF = range(8)
N_CF = 8
# roll_sel codes (as the CPU loop)
ROLL_UTOTAL, ROLL_UBAL_E, ROLL_UBAL_I, ROLL_UPLASTIC = 0, 1, 2, 3

# ------------------------------------------------------------------ SplitMix64 (as tsn_mpi.rng)
# the constants are tsn_mpi.rng's, so CPU and GPU streams are the same by construction

_TWO_PI = 2.0 * np.pi


@cuda.jit(device=True)
def mix64(z):
    """SplitMix64 finaliser of a uint64 (tsn_mpi.rng.mix64)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit(device=True)
def bits_to_uniform(bits):
    """Uniform double in (0, 1) from 64 random bits (tsn_mpi.rng.uniform)."""
    return (np.float64(bits >> _S11) + 0.5) * _TWO53


@cuda.jit(device=True)
def next_uniform(state, row, i):
    """Advance stream ``state[row, i]`` and return a uniform double."""
    s = state[row, i] + GOLDEN
    state[row, i] = s
    return bits_to_uniform(mix64(s))


@cuda.jit(device=True)
def next_normal(state, row, i):
    """Standard normal from stream ``state[row, i]`` (Box-Muller, cosine branch)."""
    u1 = next_uniform(state, row, i)
    u2 = next_uniform(state, row, i)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


@cuda.jit(device=True)
def nth_uniform(base, k):
    """The k-th uniform (k >= 1) of the stream that starts at state ``base``, without state."""
    return bits_to_uniform(mix64(base + np.uint64(k) * GOLDEN))


@cuda.jit(device=True)
def ipow(a, b):
    """``a ** b`` for float64 a and int64 b, bit for bit as numba's CPU ``math.pow(float, int)``
    (exponentiation by squaring up to 2**16, then the libm pow)."""
    r = 1.0
    invert = b < 0
    e = -b if invert else b
    if e > 0x10000:
        return math.pow(a, np.float64(b))
    while e != 0:
        if e & 1:
            r *= a
        e >>= 1
        a *= a
    if invert:
        return 1.0 / r
    return r


# -------------------------------------------------------------------------------- time step
# The phases of a step are device functions shared by the per-step kernels (neuron_step,
# deliver: two launches per step, used with MPI) and the fused kernel run_steps (one launch per
# chunk of steps, phases separated by grid-wide barriers; one process).


@cuda.jit(device=True)
def apply_pending(k, stride, ti, slot, glob, tr, r_step):
    """(a) Lazy traces: the spikes of step ti-1 (``glob[(ti-1) % 3]``) enter r at step ti;
    this thread takes entries k, k + stride, ..."""
    prev = (slot + 2) % 3
    npend = glob[prev, 0]
    while k < npend:
        j = glob[prev, 1 + k]
        tr[T_RVAL, j] = tr[T_RVAL, j] * ipow(tr[T_A, j], ti - r_step[j]) + tr[T_INC, j]
        r_step[j] = ti
        k += stride


@cuda.jit(device=True)
def update_neuron(i, ti, mode, task, slot, ci, cf, fs, ds, is_, us, lists, stim, sample_group,
                  roll_sel, roll, spk_steps):  # fmt: skip
    """Steps (b)-(g) of step ti for owned neuron i (spec §3.3 steps 4-6): noise, filters,
    u_bal and u, recording, drive with the stimulus, LIF membrane; a spiker gets ``ns += 1``
    and appends ``gid0 + i`` to ``lists[ti % 3]``."""
    plastic_on = mode != MODE_INIT
    dt = cf[K_DT]
    t = dt * ti
    noise = ci[C_NOISE]
    # (b) noise
    z = 0.0
    if noise != NOISE_NONE:
        z = next_normal(us, U_NOISE, i)
    # (c) filters; the accumulators are consumed and zeroed
    ue = np.float64(fs[F_UBALE, i])
    ui = np.float64(fs[F_UBALI, i])
    fs[F_UBALE, i] = ue + (-dt * ue + fs[F_INE, i]) * (1.0 / cf[K_TBE])
    fs[F_UBALI, i] = ui + (-dt * ui + fs[F_INI, i]) * (1.0 / cf[K_TBI])
    fs[F_INE, i] = 0.0
    fs[F_INI, i] = 0.0
    if plastic_on:
        up = np.float64(fs[F_UPLAS, i])
        fs[F_UPLAS, i] = up + (-dt * up + fs[F_INP, i]) * ds[D_ITP, i]
        fs[F_INP, i] = 0.0
    ub = fs[F_UBALE, i] + fs[F_UBALI, i]
    if noise == NOISE_CURRENT:
        ub = np.float32(ub + ds[D_SIG, i] * z)
    fs[F_UBAL, i] = ub
    u = ub + fs[F_UPLAS, i] if plastic_on else ub
    # (d) recording
    if mode == MODE_INIT and ti > ci[C_U0SKIP]:
        uu = np.float64(u)
        ds[D_UAVG, i] += uu
        if ci[C_GID0] + i < ci[C_U0N]:
            ds[D_U0S, i] += uu
            ds[D_U0Q, i] += uu * uu
    stim_off = ci[C_STIM_OFF]
    n_vars = ci[C_NVARS]
    if ti > stim_off and n_vars > 0:
        g = sample_group[ti - stim_off]
        col = is_[I_ROLL, i]
        if g >= 0 and col >= 0:
            for q in range(n_vars):
                sel = roll_sel[q]
                if sel == ROLL_UTOTAL:
                    val = np.float64(u)
                elif sel == ROLL_UBAL_E:
                    val = np.float64(fs[F_UBALE, i])
                elif sel == ROLL_UBAL_I:
                    val = np.float64(fs[F_UBALI, i])
                else:
                    val = np.float64(fs[F_UPLAS, i])
                roll[g, q, col] += val
    # (e) drive X + u; the stimulus window is open on both ends
    stim_on = ci[C_STIM_ON]
    if plastic_on and stim_on < ti and ti < stim_off:
        row = ti - stim_on - 1
        if ci[C_ONLINE] != 0:
            s = 0.0
            if row > 0:
                s = ds[D_OUS, i]
                s = (
                    s
                    + cf[K_OUB] * (cf[K_OUMU] - s) * dt
                    + cf[K_OUSIG] * math.sqrt(dt) * next_normal(us, U_OU, i)
                )
            ds[D_OUS, i] = s
            drive = np.float32(fs[F_XBAL, i] + np.float32(s)) + u
        else:
            drive = np.float32(fs[F_XBAL, i] + stim[task, row, i]) + u
    else:
        drive = fs[F_XBAL, i] + u
    # (f) LIF membrane; voltage noise also reaches refractory neurons
    vi = fs[F_V, i]
    if noise == NOISE_VOLTAGE:
        vi = np.float32(vi + ds[D_SIG, i] * z)
    awake = t > ds[D_LAST, i] + cf[K_REFRAC]
    vn = np.float32(np.float64(vi) + ds[D_INVTAU, i] * np.float64(drive - vi))
    fire = awake and vn > fs[F_TH, i]
    if fire:
        fs[F_V, i] = fs[F_VRE, i]
        ds[D_LAST, i] = t
    elif awake:
        fs[F_V, i] = vn
    else:
        fs[F_V, i] = vi
    # (g) spike bookkeeping
    if fire:
        cnt = is_[I_NS, i] + 1
        is_[I_NS, i] = cnt
        pos = cuda.atomic.add(lists, (slot, 0), 1)
        lists[slot, 1 + pos] = ci[C_GID0] + i
        rec = is_[I_SPK, i]
        if rec >= 0 and cnt <= ci[C_MAXT]:
            spk_steps[rec, cnt - 1] = ti


@cuda.jit(device=True)
def deliver_spikes(k, kstride, tid, bs, mode, slot, glob, st_indptr, st_post, st_code,
                   st_table, pl_indptr, pl_post, pl_slot, w_in_t, fs):  # fmt: skip
    """(i) Spike delivery (spec §3.3 step 7): this block takes spikes k, k + kstride, ... of
    ``glob[ti % 3]``, its threads the outgoing static edges (weight > 0 into in_e, < 0 into
    in_i) and plastic edges (``w_in_t[slot, post]`` into in_p), with float atomics."""
    nsp = glob[slot, 0]
    while k < nsp:
        j = glob[slot, 1 + k]
        e = st_indptr[j] + tid
        end = st_indptr[j + 1]
        while e < end:
            w = st_table[st_code[e]]
            if w > 0:
                cuda.atomic.add(fs, (F_INE, st_post[e]), w)
            elif w < 0:
                cuda.atomic.add(fs, (F_INI, st_post[e]), w)
            e += bs
        if mode != MODE_INIT:
            e = pl_indptr[j] + tid
            end = pl_indptr[j + 1]
            while e < end:
                post = pl_post[e]
                cuda.atomic.add(fs, (F_INP, post), w_in_t[pl_slot[e], post])
                e += bs
        k += kstride


@cuda.jit(device=True)
def ff_inputs(g, stride, ti, mode, ci, cf, fs, r_ff, spk_ff, ff_base, rate_ff, w_ff_t):
    """(j) Feed-forward inputs after stim_off (spec §3.3 step 8): unit c spikes at step ti iff
    its (ti - stim_off)-th uniform is below ``rate_ff[row, c]``; every thread redraws that number
    from ``ff_base`` (stateless), adds ``w_ff_t[c, i]`` for its neurons i = g, g + stride, ...,
    and thread g = 0 advances ``r_ff`` / ``spk_ff``."""
    n_ff = ci[C_NFF]
    stim_off = ci[C_STIM_OFF]
    if n_ff == 0 or ti <= stim_off:
        return
    row = ti - stim_off - 1
    draw = ti - stim_off
    if g == 0:
        training = mode == MODE_TRAIN or mode == MODE_TRAIN_TEST
        for c in range(n_ff):
            if training:
                r_ff[c] = r_ff[c] + (-cf[K_DT] * r_ff[c] + spk_ff[c]) * cf[K_ITFF]
            spk_ff[c] = 0.0
            if nth_uniform(ff_base[c], draw) < rate_ff[row, c]:
                spk_ff[c] = 1.0
    if mode != MODE_INIT:
        n = ci[C_N]
        while g < n:
            for c in range(n_ff):
                if nth_uniform(ff_base[c], draw) < rate_ff[row, c]:
                    cuda.atomic.add(fs, (F_INP, g), w_ff_t[c, g])
            g += stride


@cuda.jit
def neuron_step(ti, mode, task, slot, ci, cf, fs, ds, is_, us, tr, r_step, lists, glob, stim,
                sample_group, roll_sel, roll, spk_steps):  # fmt: skip
    """Steps (a)-(g) of step ti, one owned neuron per thread (grid >= n_owned threads).

    Thread 0 clears ``lists[(ti+1) % 3]``; in training modes all threads share the trace
    updates of the previous step's spikes (``glob``, global ids).  ``lists`` receives this
    step's spikers (``glob`` itself with one rank, a local list exchanged through the host
    otherwise)."""
    g = cuda.grid(1)
    if g == 0:
        lists[(slot + 1) % 3, 0] = 0
    if mode == MODE_TRAIN or mode == MODE_TRAIN_TEST:
        apply_pending(g, cuda.gridsize(1), ti, slot, glob, tr, r_step)
    if g < ci[C_N]:
        update_neuron(g, ti, mode, task, slot, ci, cf, fs, ds, is_, us, lists, stim,
                      sample_group, roll_sel, roll, spk_steps)  # fmt: skip


@cuda.jit
def deliver(ti, mode, slot, ci, cf, glob, st_indptr, st_post, st_code, st_table, pl_indptr,
            pl_post, pl_slot, w_in_t, fs, r_ff, spk_ff, ff_base, rate_ff, w_ff_t):  # fmt: skip
    """Steps (i)-(j) of step ti: one block per spike of ``glob[ti % 3]`` (block-stride), then
    the feed-forward inputs (grid-stride over the owned neurons)."""
    deliver_spikes(cuda.blockIdx.x, cuda.gridDim.x, cuda.threadIdx.x, cuda.blockDim.x, mode,
                   slot, glob, st_indptr, st_post, st_code, st_table, pl_indptr, pl_post,
                   pl_slot, w_in_t, fs)  # fmt: skip
    ff_inputs(cuda.grid(1), cuda.gridsize(1), ti, mode, ci, cf, fs, r_ff, spk_ff, ff_base,
              rate_ff, w_ff_t)  # fmt: skip


@cuda.jit
def run_steps(t_first, t_last, mode, task, ci, cf, fs, ds, is_, us, tr, r_step, glob, stim,
              sample_group, roll_sel, roll, spk_steps, st_indptr, st_post, st_code, st_table,
              pl_indptr, pl_post, pl_slot, w_in_t, r_ff, spk_ff, ff_base, rate_ff,
              w_ff_t):  # fmt: skip
    """Steps t_first..t_last in one cooperative launch (one process: spikes stay on the GPU).

    Each step is the two phases of neuron_step and deliver, every thread grid-striding over
    neurons and spikes, with a grid-wide barrier after each phase.  Needs a cooperative launch
    (grid no larger than the co-resident blocks); the simulator runs it with one block.
    """
    grid = cuda.cg.this_grid()
    g = cuda.grid(1)
    stride = cuda.gridsize(1)
    n = ci[C_N]
    training = mode == MODE_TRAIN or mode == MODE_TRAIN_TEST
    for ti in range(t_first, t_last + 1):
        slot = ti % 3
        if g == 0:
            glob[(slot + 1) % 3, 0] = 0
        if training:
            apply_pending(g, stride, ti, slot, glob, tr, r_step)
        i = g
        while i < n:
            update_neuron(i, ti, mode, task, slot, ci, cf, fs, ds, is_, us, glob, stim,
                          sample_group, roll_sel, roll, spk_steps)  # fmt: skip
            i += stride
        grid.sync()
        deliver_spikes(cuda.blockIdx.x, cuda.gridDim.x, cuda.threadIdx.x, cuda.blockDim.x, mode,
                       slot, glob, st_indptr, st_post, st_code, st_table, pl_indptr, pl_post,
                       pl_slot, w_in_t, fs)  # fmt: skip
        ff_inputs(g, stride, ti, mode, ci, cf, fs, r_ff, spk_ff, ff_base, rate_ff, w_ff_t)
        grid.sync()


@cuda.jit
def traces_at(t, gids, n_gids, tr, r_step, out):
    """``out[j] = r_val[j] * a_j**(t - r_step[j])`` for the first n_gids entries of gids."""
    k = cuda.grid(1)
    if k < n_gids:
        j = gids[k]
        out[j] = tr[T_RVAL, j] * ipow(tr[T_A, j], t - r_step[j])


# ------------------------------------------------------------------------------------ RLS


@functools.cache
def rls_fast_packed(n_ff: int, m: int, p_dtype: str):
    """The fast-mode packed RLS kernel for n = n_ff + m and P of dtype p_dtype (spec §4.3).

    ``kernel(P, pre_t, w_t, r, x_ff, w_ff_t, u_bal, target, textbook, apply, bad, nbad)``, one
    thread per owned neuron i:

    - P (n*(n+1)/2, n_owned) in p_dtype, column i = neuron i's packed upper triangle (element
      (a, b), a <= b, at ``a + b*(b+1)/2``): neighbouring threads read neighbouring words.
    - pre_t (m, n_owned) int32 global ids (-1 = padding), w_t (m, n_owned) float32,
      w_ff_t (max(n_ff, 1), n_owned) float32, r (N,) float64 traces, x_ff (>= n_ff,) float64,
      u_bal, target (n_owned,) float32; textbook, apply: 0/1; bad (n_owned,) uint8 output,
      nbad (1,) int32 incremented per bad neuron (the caller zeroes it).

    Same semantics and precision as ``backends.cpu.rls.rls_fast``: x = [x_ff; r[pre]] rounded
    to the arithmetic type (float64 for float64 P, else float32), k = P x, c = x.k and den in
    float64, P -= (den k) k^T in the arithmetic type (float16 P: widened to float32, rounded
    back to nearest even), error with the old weights in float64, w -= e k (a-priori) or
    e den k (textbook).  Non-finite k, den, error or new weights flag the neuron and leave it
    untouched.  Compiled once per (n_ff, m, dtype): n is a compile-time constant, x and k are
    per-thread local arrays.
    """
    n = n_ff + m
    nl = max(n, 1)
    f64 = p_dtype == "float64"
    math_t = np.float64 if f64 else np.float32
    zero = math_t(0.0)

    @cuda.jit
    def kernel(P, pre_t, w_t, r, x_ff, w_ff_t, u_bal, target, textbook, apply, bad, nbad):
        i = cuda.grid(1)
        if i >= u_bal.shape[0]:
            return
        x = cuda.local.array(nl, math_t)
        k = cuda.local.array(nl, math_t)
        for a in range(n_ff):
            x[a] = math_t(x_ff[a])
        for j in range(m):
            g = pre_t[j, i]
            x[n_ff + j] = math_t(r[g]) if g >= 0 else zero
        for a in range(n):
            k[a] = zero
        # k = P x over packed columns b: (a, b) feeds k[a] += p x[b] and k[b] += p x[a]
        base = 0
        for b in range(n):
            xb = x[b]
            acc = math_t(P[base + b, i]) * xb
            for a in range(b):
                p = math_t(P[base + a, i])
                k[a] += p * xb
                acc += p * x[a]
            k[b] += acc
            base += b + 1
        c = 0.0
        for a in range(n):
            c += np.float64(x[a]) * np.float64(k[a])
        den = 1.0 / (1.0 + c)
        e = 0.0
        for j in range(m):
            g = pre_t[j, i]
            if g >= 0:
                e += np.float64(w_t[j, i]) * r[g]
        for a in range(n_ff):
            e += np.float64(w_ff_t[a, i]) * x_ff[a]
        e = (e + np.float64(u_bal[i])) - np.float64(target[i])
        coef = e * den if textbook != 0 else e
        ok = math.isfinite(den) and math.isfinite(coef)
        for a in range(n):
            ok = ok and math.isfinite(k[a])
        for j in range(m):
            if ok and pre_t[j, i] >= 0:
                ok = math.isfinite(np.float32(w_t[j, i] - coef * np.float64(k[n_ff + j])))
        for a in range(n_ff):
            if ok:
                ok = math.isfinite(np.float32(w_ff_t[a, i] - coef * np.float64(k[a])))
        if not ok:
            bad[i] = 1
            cuda.atomic.add(nbad, 0, 1)
            return
        bad[i] = 0
        # P -= (den k) k^T on the upper triangle: (a, b) minus kd_b k_a
        base = 0
        for b in range(n):
            kdb = math_t(den * np.float64(k[b]))
            for a in range(b + 1):
                P[base + a, i] = math_t(P[base + a, i]) - kdb * k[a]
            base += b + 1
        if apply != 0:
            for j in range(m):
                if pre_t[j, i] >= 0:
                    w_t[j, i] = np.float64(w_t[j, i]) - coef * np.float64(k[n_ff + j])
            for a in range(n_ff):
                w_ff_t[a, i] = np.float64(w_ff_t[a, i]) - coef * np.float64(k[a])

    return kernel


@cuda.jit
def fill_p0(P, pre_t, w_t, n_ff, m, lam, mu, penlam_ff):
    """Initial P0 of neuron i (one thread each) into column i of P (n_packed, n_owned), spec §4.2.

    Same closed form as ``learn.initial_p._fill_p0`` (Sherman-Morrison per sign group),
    computed in float64 and rounded once to P's dtype.  pre_t, w_t: (>= m, n_owned).  Groups:
    0 = feed-forward, padding or zero weight, 1 = positive, 2 = negative weight.
    """
    i = cuda.grid(1)
    if i >= P.shape[1]:
        return
    n = n_ff + m
    g_pos = 0
    g_neg = 0
    for j in range(m):
        if pre_t[j, i] >= 0:
            if w_t[j, i] > 0:
                g_pos += 1
            elif w_t[j, i] < 0:
                g_neg += 1
    same1 = -mu / (lam * (lam + g_pos * mu))
    same2 = -mu / (lam * (lam + g_neg * mu))
    idx = 0
    for b in range(n):
        gb = 0
        valid_b = True
        if b >= n_ff:
            jb = b - n_ff
            valid_b = pre_t[jb, i] >= 0
            if valid_b:
                if w_t[jb, i] > 0:
                    gb = 1
                elif w_t[jb, i] < 0:
                    gb = 2
        for a in range(b + 1):
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
                ja = a - n_ff
                ga = 0
                if pre_t[ja, i] >= 0:
                    if w_t[ja, i] > 0:
                        ga = 1
                    elif w_t[ja, i] < 0:
                        ga = 2
                if ga == gb and ga == 1:
                    val = same1
                elif ga == gb and ga == 2:
                    val = same2
            P[idx, i] = val
            idx += 1


@cuda.jit
def rows_to_cols(src, dst, lo):
    """dst[a, lo + r] = src[r, a] for src (rows, L): one neuron-major chunk into P's columns.

    2-D grid: x over rows, y (grid-stride) over a."""
    r, a = cuda.grid(2)
    if r < src.shape[0]:
        while a < src.shape[1]:
            dst[a, lo + r] = src[r, a]
            a += cuda.gridsize(2)[1]


@cuda.jit
def cols_to_rows(src, dst, lo):
    """dst[r, a] = src[a, lo + r]: P's columns lo.. into a neuron-major chunk (rows, L)."""
    r, a = cuda.grid(2)
    if r < dst.shape[0]:
        while a < dst.shape[1]:
            dst[r, a] = src[a, lo + r]
            a += cuda.gridsize(2)[1]


@cuda.jit
def smoke(out):
    """A trivial kernel that proves compilation and launch work (device.require_gpu)."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = i + 1
