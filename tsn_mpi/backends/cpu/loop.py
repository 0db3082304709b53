"""The compiled time loop: advance the owned neurons by a range of steps (spec §3.3).

One call runs steps ``t_first..t_last`` (1-based, inclusive) entirely in compiled code,
including the per-step spike exchange (a jitted allgather: a copy in one process, numba-mpi
under MPI).  Learning happens between calls, at learn-step boundaries, so the driver regains
control every ``learn_step`` steps to run RLS, check signals and report progress.

Spike delivery follows the reference order: spikes found at step t are exchanged at the end
of step t, added to the input accumulators in increasing presynaptic global id (the same order
for any number of ranks, so sums are bitwise reproducible), and consumed by the filters at step
t+1.  Presynaptic traces r are advanced lazily: a spike of neuron j at step t is applied at the
start of step t+1 (after learning) as ``r_val[j] = r_val[j] * a_j**(t+1 - r_step[j]) + 1/tau_j``,
``r_step[j] = t+1``; the value at step T is ``r_val[j] * a_j**(T - r_step[j])``.  Work per step
is proportional to the owned neurons plus the spikes, never to N.

Each step is a few tight loops over the owned neurons (filters, drive, membrane) that LLVM
vectorises, instead of one loop with branches; the LIF membrane update is inlined, other
built-in models are dispatched by id.  Arithmetic mirrors the reference's mixed precision:
state is float32, the filter and membrane increments are computed in float64 (dt is float64).

The phases take a range of owned neurons (``lo..hi``): the neuron update of those neurons, and
the delivery of a list of spikes *to* those targets (a slice of each sorted outgoing row), so
:mod:`~tsn_mpi.backends.cpu.loop_threads` splits a step over threads without changing any
sum.  The O(N) trace update (:func:`_apply_pending`) and the feed-forward draws (:func:`_ff_draw`)
are global and run once per step.  One-thread entry points: :func:`run_steps_serial` (one
process, built-in models; cached on disk) and :func:`make_run_steps` (any exchange/cell
functions, e.g. numba-mpi; compiled at start-up because numba cannot cache kernels that call
MPI).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tsn_mpi.models.builtin import LIF, builtin_step
from tsn_mpi.rng import normal, uniform
from tsn_mpi.simulate.step_constants import (
    MODE_INIT,
    MODE_TRAIN,
    MODE_TRAIN_TEST,
    NOISE_CURRENT,
    NOISE_NONE,
    NOISE_VOLTAGE,
)

# quantities the rolling averages can record (columns of the 'roll' accumulator)
ROLL_UTOTAL, ROLL_UBAL_E, ROLL_UBAL_I, ROLL_UPLASTIC = 0, 1, 2, 3


@njit(cache=True)
def trace_values(r_val, r_step, a_pre, t, gids, out):  # pragma: no cover - jitted
    """Presynaptic traces at step ``t`` for ``gids`` (written into ``out[gids]``)."""
    scalar = a_pre.size == 1
    for k in range(gids.size):
        j = gids[k]
        a = a_pre[0] if scalar else a_pre[j]
        out[j] = r_val[j] * math.pow(a, t - r_step[j])


@njit(cache=True)
def ou_stimulus(seeds, n_rows, mu, b, sig, dt):  # pragma: no cover - jitted
    """The OU stimulus of each stream as float32 (n_rows, n), identical to the online path."""
    n = seeds.size
    out = np.empty((n_rows, n), np.float32)
    st = seeds.copy()
    s = np.zeros(n)
    sqdt = math.sqrt(dt)
    for row in range(n_rows):
        for i in range(n):
            if row > 0:
                s[i] = s[i] + b * (mu - s[i]) * dt + sig * sqdt * normal(st, i)
            out[row, i] = np.float32(s[i])
    return out


@njit(cache=True)
def draw_normals(states):  # pragma: no cover - jitted
    """One standard normal from each stream."""
    out = np.empty(states.size, dtype=np.float64)
    for i in range(states.size):
        out[i] = normal(states, i)
    return out


@njit(cache=True)
def init_voltages(init_v, params, z, v):  # pragma: no cover - jitted
    """v[i] = init_v(params, i, z[i]) for every owned neuron (spec §3.2)."""
    for i in range(v.size):
        v[i] = init_v(params, i, z[i])


@njit(cache=True)
def _apply_pending(ti, mode, groups):  # pragma: no cover - jitted
    """Step (a) of step ``ti``: apply the spikes of step ti-1 to the presynaptic traces (spec
    §3.3 6g, train modes only).  Touches only the O(N) trace arrays: one thread does it."""
    if mode == MODE_TRAIN or mode == MODE_TRAIN_TEST:
        r_val, r_step, a_pre, inc_pre, pending, n_pending = groups[5]
        a_scalar = a_pre.size == 1
        for k in range(n_pending[0]):
            j = pending[k]
            if a_scalar:
                r_val[j] = r_val[j] * math.pow(a_pre[0], ti - r_step[j]) + inc_pre[0]
            else:
                r_val[j] = r_val[j] * math.pow(a_pre[j], ti - r_step[j]) + inc_pre[j]
            r_step[j] = ti
        n_pending[0] = 0


@njit(cache=True)
def _neuron_phase(ti, mode, task, groups, lo, hi, out, base):  # pragma: no cover - jitted
    """Steps (b)-(g) of step ``ti`` for the owned neurons ``lo..hi-1``: noise, filters,
    recording, drive, membrane, spike collection.  The local ids of the neurons that fired are
    written, increasing, to ``out[base:]``; returns their number.  ``lo`` and ``hi`` are
    multiples of 8 (or ``hi`` = n), so ranges of different threads share no flag word."""
    (consts, neuron, cell, static_out, plastic_out, traces, ff, stim, record, xchg, scratch) = (
        groups
    )
    c = consts  # simulate.step_constants.StepConstants
    dt, refrac, tau_bal_e, tau_bal_i = c.dt, c.refrac, c.tau_bal_e, c.tau_bal_i
    stim_on_step, stim_off_step, u0_skip_steps = c.stim_on_step, c.stim_off_step, c.u0_skip_steps
    max_times, gid0, u0_ncells, noise_kind = c.max_times, c.gid0, c.u0_ncells, c.noise
    (
        v,
        u_bale,
        u_bali,
        u_plas,
        u_bal,
        in_e,
        in_i,
        in_p,
        last_spike,
        ns,
        x_bal,
        sig,
        inv_tau_post,
        noise_rng,
    ) = neuron
    model_id, params, cstate, lif_th, lif_invtau, lif_vre = cell  # lif_invtau = dt/tau_mem
    st_post = static_out[1]
    stim_arr, stim_online, ou_s, ou_rng, ou_mu, ou_b, ou_sig = stim
    (sample_group, roll_idx, roll_sel, roll, spk_idx, spk_steps, uavg, u0_sum, u0_sumsq) = record
    z, u, drive, spk = scratch[0], scratch[1], scratch[2], scratch[3]

    spk_words = spk.view(np.uint64)
    # unsigned loop indices: numba then emits no negative-index wraparound for a[i], which
    # otherwise keeps LLVM from vectorising a loop whose start is not a constant (~3x slower)
    ulo, uhi = np.uint64(lo), np.uint64(hi)
    has_static = st_post.size > 0
    plastic_on = mode != MODE_INIT
    # the simulator sets NOISE_NONE exactly when no neuron's sigma is > 0
    has_noise = noise_kind != NOISE_NONE
    sig_scalar = sig.size == 1
    tau_scalar = inv_tau_post.size == 1
    n_vars = roll_sel.size
    sqdt = math.sqrt(dt)
    inv_te = 1.0 / tau_bal_e
    inv_ti = 1.0 / tau_bal_i
    itp0 = inv_tau_post[0]
    voltage_noise = has_noise and noise_kind == NOISE_VOLTAGE
    current_noise = has_noise and noise_kind == NOISE_CURRENT

    if True:
        t = dt * ti
        # (b) noise: one normal per neuron from its own stream (spec §3.3 step 4)
        if has_noise:
            for i in range(ulo, uhi):
                z[i] = normal(noise_rng, i)
        # (c) synaptic filters (spec §3.3 6a-6d); accumulators are consumed and zeroed
        if has_static:
            for i in range(ulo, uhi):
                ue = np.float64(u_bale[i])
                ui = np.float64(u_bali[i])
                u_bale[i] = ue + (-dt * ue + in_e[i]) * inv_te
                u_bali[i] = ui + (-dt * ui + in_i[i]) * inv_ti
                in_e[i] = 0.0
                in_i[i] = 0.0
        if plastic_on:
            if tau_scalar:
                for i in range(ulo, uhi):
                    up = np.float64(u_plas[i])
                    u_plas[i] = up + (-dt * up + in_p[i]) * itp0
                    in_p[i] = 0.0
            else:
                for i in range(ulo, uhi):
                    up = np.float64(u_plas[i])
                    u_plas[i] = up + (-dt * up + in_p[i]) * inv_tau_post[i]
                    in_p[i] = 0.0
        for i in range(ulo, uhi):
            ub = u_bale[i] + u_bali[i]
            if current_noise:
                s_i = sig[0] if sig_scalar else sig[i]
                ub = np.float32(ub + s_i * z[i])
            u_bal[i] = ub
            u[i] = ub + u_plas[i] if plastic_on else ub
        # (d) recording (spec §3.3 6e-6f)
        if mode == MODE_INIT and ti > u0_skip_steps:
            for i in range(ulo, uhi):
                uu = np.float64(u[i])
                uavg[i] += uu
                if gid0 + np.int64(i) < u0_ncells:
                    u0_sum[i] += uu
                    u0_sumsq[i] += uu * uu
        if ti > stim_off_step and n_vars > 0:
            g = sample_group[ti - stim_off_step]
            if g >= 0:
                for i in range(ulo, uhi):
                    col = roll_idx[i]
                    if col >= 0:
                        for q in range(n_vars):
                            sel = roll_sel[q]
                            if sel == ROLL_UTOTAL:
                                val = np.float64(u[i])
                            elif sel == ROLL_UBAL_E:
                                val = np.float64(u_bale[i])
                            elif sel == ROLL_UBAL_I:
                                val = np.float64(u_bali[i])
                            else:
                                val = np.float64(u_plas[i])
                            roll[g, q, col] += val
        # (e) external drive X + u (spec §3.3 6h); the stimulus window is open on both ends
        if plastic_on and stim_on_step < ti and ti < stim_off_step:
            row = ti - stim_on_step - 1
            if stim_online:
                for i in range(ulo, uhi):
                    if row == 0:
                        ou_s[i] = 0.0
                    else:
                        ou_s[i] = (
                            ou_s[i]
                            + ou_b * (ou_mu - ou_s[i]) * dt
                            + ou_sig * sqdt * (normal(ou_rng, i))
                        )
                    drive[i] = np.float32(x_bal[i] + np.float32(ou_s[i])) + u[i]
            else:
                for i in range(ulo, uhi):
                    drive[i] = np.float32(x_bal[i] + stim_arr[task, row, i]) + u[i]
        else:
            for i in range(ulo, uhi):
                drive[i] = x_bal[i] + u[i]
        # (f) membrane (spec §3.3 6i-6j); voltage noise also reaches refractory neurons
        if model_id == LIF:
            for i in range(ulo, uhi):
                vi = v[i]
                if voltage_noise:
                    s_i = sig[0] if sig_scalar else sig[i]
                    vi = np.float32(vi + s_i * z[i])
                awake = t > last_spike[i] + refrac
                # Julia order: (dt * invtau) in float64, times (X + u - v) in float32
                vn = np.float32(np.float64(vi) + lif_invtau[i] * np.float64(drive[i] - vi))
                fire = awake & (vn > lif_th[i])
                v[i] = lif_vre[i] if fire else (vn if awake else vi)
                last_spike[i] = t if fire else last_spike[i]
                spk[i] = 1 if fire else 0
        else:
            for i in range(ulo, uhi):
                vi = v[i]
                if voltage_noise:
                    s_i = sig[0] if sig_scalar else sig[i]
                    vi = np.float32(vi + s_i * z[i])
                fire = False
                if t > last_spike[i] + refrac:
                    vn, fire = builtin_step(
                        model_id,
                        params,
                        cstate,
                        np.int64(i),
                        np.float64(vi),
                        np.float64(drive[i]),
                        dt,
                    )
                    vi = np.float32(vn)
                    if fire:
                        last_spike[i] = t
                v[i] = vi
                spk[i] = 1 if fire else 0
        # (g) collect this step's spikes (word-wise scan of the flags)
        nsp = 0
        for wd in range(lo // 8, (hi + 7) // 8):
            if spk_words[wd] != 0:
                for b in range(8):
                    i = wd * 8 + b
                    if spk[i]:
                        ns[i] += 1
                        out[base + nsp] = i
                        nsp += 1
                        if spk_idx.size > 0:
                            rec = spk_idx[i]
                            if rec >= 0 and ns[i] <= max_times:
                                spk_steps[rec, ns[i] - 1] = ti
        return nsp


@njit(cache=True, inline="always")
def _lower_bound(a, first, last, x):  # pragma: no cover - jitted
    """The first index in ``first..last-1`` whose ``a`` is >= x (``a`` increasing there)."""
    while first < last:
        mid = (first + last) >> 1
        if a[mid] < x:
            first = mid + 1
        else:
            last = mid
    return first


@njit(cache=True)
def _deliver_spikes(mode, groups, ids, start, count, gid_add, lo, hi, npend):  # noqa: E501  # pragma: no cover - jitted
    """Step (i) for the spikes ``ids[start:start+count] + gid_add`` (increasing gids) into the
    targets ``lo..hi-1``; inputs act at step ti+1.  Each outgoing row is sorted by local post,
    so a target range is a contiguous slice of it: a thread owning the range adds to each of
    its targets in the same order as one thread does (bitwise the same for any split).
    ``npend`` >= 0: also append the gids to the pending trace list from there (train modes);
    returns the new length (or -1 when not asked)."""
    st_indptr, st_post, st_code, st_table, st_pop = groups[3]
    pl_indptr, pl_post, pl_slot, w_in = groups[4]
    in_e, in_i, in_p = groups[1][5], groups[1][6], groups[1][7]
    pending = groups[5][4]
    n = in_e.size
    has_static = st_post.size > 0
    by_pop = st_pop[0] != 0
    n_exc, n_exc_local = st_pop[1], st_pop[2]
    plastic_on = mode != MODE_INIT
    training = (mode == MODE_TRAIN or mode == MODE_TRAIN_TEST) and npend >= 0
    whole = lo == 0 and hi >= n
    for k in range(start, start + count):
        j = ids[k] + gid_add
        if has_static:
            e0, e1 = st_indptr[j], st_indptr[j + 1]
            if not whole:
                e0 = _lower_bound(st_post, e0, e1, lo)
                e1 = _lower_bound(st_post, e0, e1, hi)
            if by_pop:
                # weights by population: posts are sorted, excitatory (local id <
                # n_exc_local) first, so the weight changes once along the list
                pop = 2 if j >= n_exc else 0
                for e in range(e0, e1):
                    post = st_post[e]
                    w = st_table[pop + (0 if post < n_exc_local else 1)]
                    if w > 0:
                        in_e[post] += w
                    elif w < 0:
                        in_i[post] += w
            else:
                for e in range(e0, e1):
                    w = st_table[st_code[e]]
                    if w > 0:
                        in_e[st_post[e]] += w
                    elif w < 0:
                        in_i[st_post[e]] += w
        if plastic_on:
            e0, e1 = pl_indptr[j], pl_indptr[j + 1]
            if not whole:
                e0 = _lower_bound(pl_post, e0, e1, lo)
                e1 = _lower_bound(pl_post, e0, e1, hi)
            for e in range(e0, e1):
                post = pl_post[e]
                in_p[post] += w_in[post, pl_slot[e]]
        if training:
            pending[npend] = j
            npend += 1
    return npend if training else -1


@njit(cache=True)
def _ff_draw(ti, mode, groups, fired):  # pragma: no cover - jitted
    """Step (j), drawing part: advance the feed-forward traces, draw this step's Poisson
    inputs (active after stim_off, spec §3.3 step 8); their ids go to ``fired[1:]``, their
    number to ``fired[0]``.  The inputs' state is global: one thread does it."""
    c = groups[0]
    r_ff, spk_ff, rate_ff, w_ff, ff_rng, inv_tau_ff = groups[6]
    n_ff = r_ff.size
    training = mode == MODE_TRAIN or mode == MODE_TRAIN_TEST
    nf = 0
    if n_ff > 0 and ti > c.stim_off_step:
        row = ti - c.stim_off_step - 1
        for q in range(n_ff):
            if training:
                r_ff[q] = r_ff[q] + (-c.dt * r_ff[q] + spk_ff[q]) * inv_tau_ff
            spk_ff[q] = 0.0
            if uniform(ff_rng, q) < rate_ff[row, q]:
                spk_ff[q] = 1.0
                fired[1 + nf] = q
                nf += 1
    fired[0] = nf
    return nf


@njit(cache=True)
def _ff_deliver(mode, groups, fired, lo, hi):  # pragma: no cover - jitted
    """Step (j), delivery part: the drawn inputs ``fired`` (increasing ids) into the owned
    neurons ``lo..hi-1``, after the recurrent spikes of the same step."""
    if mode != MODE_INIT:
        w_ff = groups[6][3]
        in_p = groups[1][7]
        for k in range(fired[0]):
            q = fired[1 + k]
            for i in range(np.uint64(lo), np.uint64(hi)):
                in_p[i] += w_ff[i, q]


@njit(cache=True)
def _delivery_phase(ti, mode, task, groups, src, stride):  # pragma: no cover - jitted
    """Steps (i)-(j) of step ``ti`` on one thread: deliver the exchanged spikes (rank-major =
    gid order) to every owned neuron, then the feed-forward inputs."""
    n_ranks = groups[9][4]
    n = groups[1][5].size
    n_pending = groups[5][5]
    npend = 0
    for rr in range(n_ranks):
        base = rr * stride
        npend = _deliver_spikes(mode, groups, src, base + 1, src[base], 0, 0, n, npend)
    n_pending[0] = max(npend, 0)
    fired = groups[10][5][0]
    _ff_draw(ti, mode, groups, fired)
    _ff_deliver(mode, groups, fired, 0, n)


@njit(cache=True)
def _exchange_overflow(send, recv, local_spk, nsp, gid0, cap, n_ranks, overflow):  # noqa: E501
    """Largest count in ``recv``; on overflow, a buffer for the second allgather."""
    max_count = 0
    for rr in range(n_ranks):
        c = recv[rr * (cap + 1)]
        if c > max_count:
            max_count = c
    if max_count <= cap:
        return max_count, np.zeros(0, np.int32), np.zeros(0, np.int32)
    overflow[0] += 1
    if max_count > overflow[1]:
        overflow[1] = max_count
    big = max_count + 1
    send2 = np.zeros(big, dtype=np.int32)
    send2[0] = nsp
    for k in range(nsp):
        send2[1 + k] = gid0 + local_spk[k]
    return max_count, send2, np.zeros(big * n_ranks, dtype=np.int32)


@njit(cache=True)
def _fill_send(send, local_spk, nsp, gid0, cap):  # pragma: no cover - jitted
    send[0] = nsp
    for k in range(min(nsp, cap)):
        send[1 + k] = gid0 + local_spk[k]


@njit(cache=True)
def run_steps_serial(t_first, t_last, mode, task, groups):  # pragma: no cover - jitted
    """One process, built-in cell models: the cached entry point."""
    send, local_spk = groups[9][0], groups[9][2]
    gid0, n = groups[0].gid0, groups[0].n_owned
    for ti in range(t_first, t_last + 1):
        _apply_pending(ti, mode, groups)
        nsp = _neuron_phase(ti, mode, task, groups, 0, n, local_spk, 0)
        _fill_send(send, local_spk, nsp, gid0, nsp)
        _delivery_phase(ti, mode, task, groups, send, nsp + 1)
    return 0


@njit(cache=True)
def _no_clock():  # pragma: no cover - jitted
    return 0.0


def make_run_steps(exchange, cell_step=None, clock=None):
    """An entry point for a given exchange (e.g. numba-mpi) and user cell step (None: built-in).

    ``clock``: a jitted wall clock (e.g. numba-mpi's wtime); when given, the seconds spent
    delivering spikes are added to ``timer[1]`` (the exchange adds its own to ``timer[0]``).
    Compiled on first call in each process (not cached: MPI handles are process-specific);
    the phases it calls are cached, so this costs about a second.
    """
    neuron_phase = _neuron_phase if cell_step is None else _rebind_cell_step(cell_step)
    now = _no_clock if clock is None else clock

    @njit
    def run_steps(t_first, t_last, mode, task, groups):  # pragma: no cover - jitted
        send, recv, local_spk, cap_arr, n_ranks, overflow = groups[9]
        overflow_t = groups[10][4]
        gid0, n = groups[0].gid0, groups[0].n_owned
        for ti in range(t_first, t_last + 1):
            _apply_pending(ti, mode, groups)
            nsp = neuron_phase(ti, mode, task, groups, 0, n, local_spk, 0)
            cap = cap_arr[0]
            _fill_send(send, local_spk, nsp, gid0, cap)
            exchange(send, recv, cap + 1, overflow_t)
            max_count, send2, recv2 = _exchange_overflow(
                send, recv, local_spk, nsp, gid0, cap, n_ranks, overflow
            )
            t0 = now()
            if max_count > cap:
                exchange(send2, recv2, max_count + 1, overflow_t)
                t0 = now()
                _delivery_phase(ti, mode, task, groups, recv2, max_count + 1)
            else:
                _delivery_phase(ti, mode, task, groups, recv, cap + 1)
            overflow_t[1] += now() - t0
        return 0

    return run_steps


def _rebind_cell_step(user_step):
    """A copy of the neuron phase whose cell step is the user's (compiled, not cached)."""
    import types

    @njit
    def step(model_id, params, state, lid, v, drive, dt):  # pragma: no cover - jitted
        return user_step(params, state, lid, v, drive, dt)

    py = _neuron_phase.py_func
    glb = dict(py.__globals__)
    glb["builtin_step"] = step
    return njit(types.FunctionType(py.__code__, glb, "_neuron_phase_user"))
