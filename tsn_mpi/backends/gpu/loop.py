"""The GPU time loop: neuron update, spike delivery and traces as numba.cuda kernels (spec §3.3).

Every kernel is written for ``numba.cuda.jit`` and runs unchanged under the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), which is how CI tests them on machines without a GPU.  Arrays are
numba device arrays; per-neuron state is packed into a few 2-D arrays (one row per quantity,
neurons along the last axis, so a warp reads contiguous memory) to keep launches cheap:

- ``f32_rows`` float32 rows ``F_*`` (voltage, filtered currents, input accumulators, LIF params);
- ``f64_rows`` float64 rows ``D_*`` (last spike time, dt/tau_mem, noise sigma, 1/tau_plas, OU state,
  init-trial sums); ``i64_rows`` int64 rows ``I_*`` (spike count, recording columns);
  ``u64_rows`` uint64 rows ``U_*`` (random stream states);
- ``tr`` float64 rows ``T_*`` over all N global ids (lazy presynaptic traces) and ``r_step``;
- ``const_i`` int64 / ``const_f`` float64: the step constants
  (:class:`~tsn_mpi.simulate.step_constants.StepConstants`, packed by its ``pack``; indices
  ``C_*`` / ``K_*`` generated there from the field names).

Arithmetic mirrors the CPU loop (``backends/cpu/loop.py``) operation by operation: float32 state,
float64 increments, the same SplitMix64 streams and ziggurat normals, the same integer power for
the trace decay.  Differences from the CPU: spike inputs are summed with float atomics in
arbitrary order (sums agree to rounding, not bitwise; exactly when the weights are dyadic), NVVM
may contract ``a*b + c`` into an FMA in float64 expressions (visible only when the float64 result
lies within one float64 ulp of a float32 rounding boundary), and libdevice's ``log``/``exp``
(used by the ziggurat's rare rejection steps) may differ from the host libm in the last bit.

Spike lists: ``lists`` / ``glob`` are int32 (3, cap + 1), row ``ti % 3`` holds the spikes of step
ti as ``[count, gid...]`` (three rows so that one kernel can read the previous step's spikes,
append the current ones and clear the next row without a race).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from tsn_mpi.backends.gpu.glif import glif_step
from tsn_mpi.backends.gpu.rng import ipow, next_normal, nth_uniform
from tsn_mpi.simulate.step_constants import (  # noqa: F401  (re-exported for the simulator)
    C_GID0,
    C_MAXT,
    C_MODEL,
    C_N,
    C_NFF,
    C_NOISE,
    C_NVARS,
    C_ONLINE,
    C_STIM_OFF,
    C_STIM_ON,
    C_U0N,
    C_U0SKIP,
    K_DT,
    K_ITFF,
    K_OUB,
    K_OUMU,
    K_OUSIG,
    K_REFRAC,
    K_TBE,
    K_TBI,
    MODE_INIT,
    MODE_TEST,
    MODE_TRAIN,
    MODE_TRAIN_TEST,
    NOISE_CURRENT,
    NOISE_NONE,
    NOISE_VOLTAGE,
)

# float32 rows of f32_rows
F_V, F_UBALE, F_UBALI, F_UPLAS, F_UBAL, F_INE, F_INI, F_INP, F_XBAL, F_TH, F_VRE = range(11)
N_F32 = 11
# float64 rows of f64_rows
D_LAST, D_INVTAU, D_SIG, D_ITP, D_OUS, D_UAVG, D_U0S, D_U0Q = range(8)
N_F64 = 8
# int64 rows of i64_rows
I_NS, I_ROLL, I_SPK = range(3)
N_I64 = 3
# uint64 rows of u64_rows
U_NOISE, U_OU = range(2)
N_U64 = 2
# float64 rows of tr (length N)
T_RVAL, T_A, T_INC = range(3)
N_TR = 3
# roll_sel codes (as the CPU loop)
ROLL_UTOTAL, ROLL_UBAL_E, ROLL_UBAL_I, ROLL_UPLASTIC = 0, 1, 2, 3

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
def update_neuron(
    i,
    ti,
    mode,
    task,
    slot,
    const_i,
    const_f,
    f32_rows,
    f64_rows,
    i64_rows,
    u64_rows,
    lists,
    stim,
    sample_group,
    roll_sel,
    roll,
    spk_steps,
    cp,
    cs,
):
    """Steps (b)-(g) of step ti for owned neuron i (spec §3.3 steps 4-6): noise, filters,
    u_bal and u, recording, drive with the stimulus, membrane (LIF, or GLIF1-5 with parameters
    ``cp`` and state ``cs``); a spiker gets ``ns += 1`` and appends ``gid0 + i`` to
    ``lists[ti % 3]``."""
    plastic_on = mode != MODE_INIT
    dt = const_f[K_DT]
    t = dt * ti
    noise = const_i[C_NOISE]
    # (b) noise
    z = 0.0
    if noise != NOISE_NONE:
        z = next_normal(u64_rows, U_NOISE, i)
    # (c) filters; the accumulators are consumed and zeroed
    ue = np.float64(f32_rows[F_UBALE, i])
    ui = np.float64(f32_rows[F_UBALI, i])
    f32_rows[F_UBALE, i] = ue + (-dt * ue + f32_rows[F_INE, i]) * (1.0 / const_f[K_TBE])
    f32_rows[F_UBALI, i] = ui + (-dt * ui + f32_rows[F_INI, i]) * (1.0 / const_f[K_TBI])
    f32_rows[F_INE, i] = 0.0
    f32_rows[F_INI, i] = 0.0
    if plastic_on:
        up = np.float64(f32_rows[F_UPLAS, i])
        f32_rows[F_UPLAS, i] = up + (-dt * up + f32_rows[F_INP, i]) * f64_rows[D_ITP, i]
        f32_rows[F_INP, i] = 0.0
    ub = f32_rows[F_UBALE, i] + f32_rows[F_UBALI, i]
    if noise == NOISE_CURRENT:
        ub = np.float32(ub + f64_rows[D_SIG, i] * z)
    f32_rows[F_UBAL, i] = ub
    u = ub + f32_rows[F_UPLAS, i] if plastic_on else ub
    # (d) recording
    if mode == MODE_INIT and ti > const_i[C_U0SKIP]:
        uu = np.float64(u)
        f64_rows[D_UAVG, i] += uu
        if const_i[C_GID0] + i < const_i[C_U0N]:
            f64_rows[D_U0S, i] += uu
            f64_rows[D_U0Q, i] += uu * uu
    stim_off = const_i[C_STIM_OFF]
    n_vars = const_i[C_NVARS]
    if ti > stim_off and n_vars > 0:
        g = sample_group[ti - stim_off]
        col = i64_rows[I_ROLL, i]
        if g >= 0 and col >= 0:
            for q in range(n_vars):
                sel = roll_sel[q]
                if sel == ROLL_UTOTAL:
                    val = np.float64(u)
                elif sel == ROLL_UBAL_E:
                    val = np.float64(f32_rows[F_UBALE, i])
                elif sel == ROLL_UBAL_I:
                    val = np.float64(f32_rows[F_UBALI, i])
                else:
                    val = np.float64(f32_rows[F_UPLAS, i])
                roll[g, q, col] += val
    # (e) drive X + u; the stimulus window is open on both ends
    stim_on = const_i[C_STIM_ON]
    if plastic_on and stim_on < ti and ti < stim_off:
        row = ti - stim_on - 1
        if const_i[C_ONLINE] != 0:
            s = 0.0
            if row > 0:
                s = f64_rows[D_OUS, i]
                s = (
                    s
                    + const_f[K_OUB] * (const_f[K_OUMU] - s) * dt
                    + const_f[K_OUSIG] * math.sqrt(dt) * next_normal(u64_rows, U_OU, i)
                )
            f64_rows[D_OUS, i] = s
            drive = np.float32(f32_rows[F_XBAL, i] + np.float32(s)) + u
        else:
            drive = np.float32(f32_rows[F_XBAL, i] + stim[task, row, i]) + u
    else:
        drive = f32_rows[F_XBAL, i] + u
    # (f) membrane; voltage noise also reaches refractory neurons
    vi = f32_rows[F_V, i]
    if noise == NOISE_VOLTAGE:
        vi = np.float32(vi + f64_rows[D_SIG, i] * z)
    awake = t > f64_rows[D_LAST, i] + const_f[K_REFRAC]
    model = const_i[C_MODEL]
    if model == 0:  # LIF
        vn = np.float32(np.float64(vi) + f64_rows[D_INVTAU, i] * np.float64(drive - vi))
        fire = awake and vn > f32_rows[F_TH, i]
        if fire:
            f32_rows[F_V, i] = f32_rows[F_VRE, i]
            f64_rows[D_LAST, i] = t
        elif awake:
            f32_rows[F_V, i] = vn
        else:
            f32_rows[F_V, i] = vi
    else:  # GLIF1-5 (models.glif): float64 step, float32 voltage
        fire = False
        if awake:
            vg, fire = glif_step(model, cp, cs, i, np.float64(vi), np.float64(drive), dt)
            vi = np.float32(vg)
            if fire:
                f64_rows[D_LAST, i] = t
        f32_rows[F_V, i] = vi
    # (g) spike bookkeeping
    if fire:
        cnt = i64_rows[I_NS, i] + 1
        i64_rows[I_NS, i] = cnt
        pos = cuda.atomic.add(lists, (slot, 0), 1)
        lists[slot, 1 + pos] = const_i[C_GID0] + i
        rec = i64_rows[I_SPK, i]
        if rec >= 0 and cnt <= const_i[C_MAXT]:
            spk_steps[rec, cnt - 1] = ti


@cuda.jit(device=True)
def deliver_spikes(
    k,
    kstride,
    tid,
    bs,
    mode,
    slot,
    glob,
    st_indptr,
    st_post,
    st_code,
    st_table,
    pl_indptr,
    pl_post,
    pl_slot,
    w_in,
    f32_rows,
):
    """(i) Spike delivery (spec §3.3 step 7): this block takes spikes k, k + kstride, ... of
    ``glob[ti % 3]``, its threads the outgoing static edges (weight > 0 into in_e, < 0 into
    in_i) and plastic edges (``w_in[post, slot]`` into in_p), with float atomics."""
    nsp = glob[slot, 0]
    while k < nsp:
        j = glob[slot, 1 + k]
        e = st_indptr[j] + tid
        end = st_indptr[j + 1]
        while e < end:
            w = st_table[st_code[e]]
            if w > 0:
                cuda.atomic.add(f32_rows, (F_INE, st_post[e]), w)
            elif w < 0:
                cuda.atomic.add(f32_rows, (F_INI, st_post[e]), w)
            e += bs
        if mode != MODE_INIT:
            e = pl_indptr[j] + tid
            end = pl_indptr[j + 1]
            while e < end:
                post = pl_post[e]
                cuda.atomic.add(f32_rows, (F_INP, post), w_in[post, pl_slot[e]])
                e += bs
        k += kstride


@cuda.jit(device=True)
def ff_inputs(
    g, stride, ti, mode, const_i, const_f, f32_rows, r_ff, spk_ff, ff_base, rate_ff, w_ff
):
    """(j) Feed-forward inputs after stim_off (spec §3.3 step 8): unit c spikes at step ti iff
    its (ti - stim_off)-th uniform is below ``rate_ff[row, c]``; every thread redraws that number
    from ``ff_base`` (stateless), adds ``w_ff[i, c]`` for its neurons i = g, g + stride, ...,
    and thread g = 0 advances ``r_ff`` / ``spk_ff``."""
    n_ff = const_i[C_NFF]
    stim_off = const_i[C_STIM_OFF]
    if n_ff == 0 or ti <= stim_off:
        return
    row = ti - stim_off - 1
    draw = ti - stim_off
    if g == 0:
        training = mode == MODE_TRAIN or mode == MODE_TRAIN_TEST
        for c in range(n_ff):
            if training:
                r_ff[c] = r_ff[c] + (-const_f[K_DT] * r_ff[c] + spk_ff[c]) * const_f[K_ITFF]
            spk_ff[c] = 0.0
            if nth_uniform(ff_base[c], draw) < rate_ff[row, c]:
                spk_ff[c] = 1.0
    if mode != MODE_INIT:
        n = const_i[C_N]
        while g < n:
            for c in range(n_ff):
                if nth_uniform(ff_base[c], draw) < rate_ff[row, c]:
                    cuda.atomic.add(f32_rows, (F_INP, g), w_ff[g, c])
            g += stride


@cuda.jit
def neuron_step(
    ti,
    mode,
    task,
    slot,
    const_i,
    const_f,
    f32_rows,
    f64_rows,
    i64_rows,
    u64_rows,
    tr,
    r_step,
    lists,
    glob,
    stim,
    sample_group,
    roll_sel,
    roll,
    spk_steps,
    cp,
    cs,
):
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
    if g < const_i[C_N]:
        update_neuron(
            g,
            ti,
            mode,
            task,
            slot,
            const_i,
            const_f,
            f32_rows,
            f64_rows,
            i64_rows,
            u64_rows,
            lists,
            stim,
            sample_group,
            roll_sel,
            roll,
            spk_steps,
            cp,
            cs,
        )


@cuda.jit
def deliver(
    ti,
    mode,
    slot,
    const_i,
    const_f,
    glob,
    st_indptr,
    st_post,
    st_code,
    st_table,
    pl_indptr,
    pl_post,
    pl_slot,
    w_in,
    f32_rows,
    r_ff,
    spk_ff,
    ff_base,
    rate_ff,
    w_ff,
):
    """Steps (i)-(j) of step ti: one block per spike of ``glob[ti % 3]`` (block-stride), then
    the feed-forward inputs (grid-stride over the owned neurons)."""
    deliver_spikes(
        cuda.blockIdx.x,
        cuda.gridDim.x,
        cuda.threadIdx.x,
        cuda.blockDim.x,
        mode,
        slot,
        glob,
        st_indptr,
        st_post,
        st_code,
        st_table,
        pl_indptr,
        pl_post,
        pl_slot,
        w_in,
        f32_rows,
    )
    ff_inputs(
        cuda.grid(1),
        cuda.gridsize(1),
        ti,
        mode,
        const_i,
        const_f,
        f32_rows,
        r_ff,
        spk_ff,
        ff_base,
        rate_ff,
        w_ff,
    )


@cuda.jit
def run_steps(
    t_first,
    t_last,
    mode,
    task,
    const_i,
    const_f,
    f32_rows,
    f64_rows,
    i64_rows,
    u64_rows,
    tr,
    r_step,
    glob,
    stim,
    sample_group,
    roll_sel,
    roll,
    spk_steps,
    st_indptr,
    st_post,
    st_code,
    st_table,
    pl_indptr,
    pl_post,
    pl_slot,
    w_in,
    r_ff,
    spk_ff,
    ff_base,
    rate_ff,
    w_ff,
    cp,
    cs,
):
    """Steps t_first..t_last in one cooperative launch (one process: spikes stay on the GPU).

    Each step is the two phases of neuron_step and deliver, every thread grid-striding over
    neurons and spikes, with a grid-wide barrier after each phase.  Needs a cooperative launch
    (grid no larger than the co-resident blocks); the simulator runs it with one block.
    """
    grid = cuda.cg.this_grid()
    g = cuda.grid(1)
    stride = cuda.gridsize(1)
    n = const_i[C_N]
    training = mode == MODE_TRAIN or mode == MODE_TRAIN_TEST
    for ti in range(t_first, t_last + 1):
        slot = ti % 3
        if g == 0:
            glob[(slot + 1) % 3, 0] = 0
        if training:
            apply_pending(g, stride, ti, slot, glob, tr, r_step)
        i = g
        while i < n:
            update_neuron(
                i,
                ti,
                mode,
                task,
                slot,
                const_i,
                const_f,
                f32_rows,
                f64_rows,
                i64_rows,
                u64_rows,
                glob,
                stim,
                sample_group,
                roll_sel,
                roll,
                spk_steps,
                cp,
                cs,
            )
            i += stride
        grid.sync()
        deliver_spikes(
            cuda.blockIdx.x,
            cuda.gridDim.x,
            cuda.threadIdx.x,
            cuda.blockDim.x,
            mode,
            slot,
            glob,
            st_indptr,
            st_post,
            st_code,
            st_table,
            pl_indptr,
            pl_post,
            pl_slot,
            w_in,
            f32_rows,
        )
        ff_inputs(
            g, stride, ti, mode, const_i, const_f, f32_rows, r_ff, spk_ff, ff_base, rate_ff, w_ff
        )
        grid.sync()


@cuda.jit
def traces_at(t, gids, n_gids, tr, r_step, out):
    """``out[j] = r_val[j] * a_j**(t - r_step[j])`` for the first n_gids entries of gids."""
    k = cuda.grid(1)
    if k < n_gids:
        j = gids[k]
        out[j] = tr[T_RVAL, j] * ipow(tr[T_A, j], t - r_step[j])


@cuda.jit
def smoke(out):
    """A trivial kernel that proves compilation and launch work (device.require_gpu)."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = i + 1
