"""The compiled time loop: advance the owned neurons by a range of steps (spec §3.3).

One call runs steps ``t_first..t_last`` (1-based, inclusive) entirely in compiled code,
including the per-step spike exchange (a jitted allgather passed in as ``exchange``: a copy in
one process, numba-mpi under MPI).  Learning happens between calls (at learn-step boundaries),
so the driver regains control every ``learn_step`` steps to run RLS, check signals and record
progress.

Spike delivery follows the reference order exactly: spikes found at step t are exchanged at the
end of step t, added to the input accumulators in increasing presynaptic global id (the same
order for any number of ranks, so sums are bitwise reproducible), and consumed by the filters
at step t+1.  Presynaptic traces r are advanced lazily: a spike of neuron j at step t sets
``r_val[j] = r_val[j] * a_j**(t+1 - r_step[j]) + 1/tau_j`` and ``r_step[j] = t+1`` (applied at the
start of step t+1, after learning); the value at step T is ``r_val[j] * a_j**(T - r_step[j])``.
Work per step is proportional to the owned neurons plus the spikes, never to N.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tsn_mpi.rng import normal, uniform

MODE_INIT, MODE_TRAIN, MODE_TRAIN_TEST, MODE_TEST = 0, 1, 2, 3
NOISE_VOLTAGE, NOISE_CURRENT = 0, 1
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
def run_steps(  # noqa: C901 - one fused loop on purpose (spec §3.3 order in one place)
    t_first, t_last, mode, task, consts, neuron, cell, cell_step, static_out, plastic_out,
    traces, ff, stim, record, xchg, exchange,
):  # pragma: no cover - jitted
    (dt, refrac, tau_bal_e, tau_bal_i, stim_on_step, stim_off_step, u0_skip_steps,
     max_times, gid0, u0_ncells, noise_kind, n_steps) = consts
    (v, u_bale, u_bali, u_plas, u_bal, in_e, in_i, in_p, last_spike, ns, x_bal, sig,
     inv_tau_post, noise_rng) = neuron
    params, cstate = cell
    st_indptr, st_post, st_code, st_table = static_out
    pl_indptr, pl_post, pl_slot, w_in = plastic_out
    r_val, r_step, a_pre, inc_pre, pending, n_pending = traces
    r_ff, spk_ff, rate_ff, w_ff, ff_rng, inv_tau_ff = ff
    stim_arr, stim_online, ou_s, ou_rng, ou_mu, ou_b, ou_sig = stim
    (sample_group, roll_idx, roll_sel, roll, spk_idx, spk_steps, uavg, u0_sum,
     u0_sumsq) = record
    send, recv, local_spk, cap_arr, n_ranks, overflow = xchg

    n = v.size
    n_ff = r_ff.size
    has_static = st_indptr.size > 1 and st_post.size > 0
    plastic_on = mode != MODE_INIT
    training = mode == MODE_TRAIN or mode == MODE_TRAIN_TEST
    has_noise = False
    for i in range(sig.size):
        if sig[i] > 0:
            has_noise = True
            break
    sig_scalar = sig.size == 1
    tau_scalar = inv_tau_post.size == 1
    a_scalar = a_pre.size == 1
    n_vars = roll_sel.size
    cap = cap_arr[0]
    sqdt = math.sqrt(dt)

    for ti in range(t_first, t_last + 1):
        t = dt * ti
        # (a) traces: apply the spikes of step ti-1 (spec §3.3 6g and 8, train modes only)
        if training:
            for k in range(n_pending[0]):
                j = pending[k]
                a = a_pre[0] if a_scalar else a_pre[j]
                inc = inc_pre[0] if a_scalar else inc_pre[j]
                r_val[j] = r_val[j] * math.pow(a, ti - r_step[j]) + inc
                r_step[j] = ti
            n_pending[0] = 0
        sample = -1
        if ti > stim_off_step and mode != MODE_INIT and mode != MODE_TRAIN:
            sample = sample_group[ti - stim_off_step]
        in_stim = plastic_on and stim_on_step < ti and ti < stim_off_step
        stim_row = ti - stim_on_step - 1
        # (b) neurons (spec §3.3 step 6), each touching only its own state
        nsp = 0
        for i in range(n):
            z = 0.0
            if has_noise:
                z = normal(noise_rng, i)
            ue = np.float64(u_bale[i])
            ui = np.float64(u_bali[i])
            if has_static:
                ue = ue + (-dt * ue + in_e[i]) / tau_bal_e
                ui = ui + (-dt * ui + in_i[i]) / tau_bal_i
                u_bale[i] = ue
                u_bali[i] = ui
                in_e[i] = 0.0  # consumed: refilled by this step's delivery
                in_i[i] = 0.0
            s_i = sig[0] if sig_scalar else sig[i]
            ub = np.float32(u_bale[i]) + np.float32(u_bali[i])
            if noise_kind == NOISE_CURRENT and has_noise:
                ub = np.float32(ub + s_i * z)
            u_bal[i] = ub
            u = np.float64(ub)
            up = 0.0
            if plastic_on:
                itp = inv_tau_post[0] if tau_scalar else inv_tau_post[i]
                up = np.float64(u_plas[i])
                up = up + (-dt * up + in_p[i]) * itp
                in_p[i] = 0.0
                u_plas[i] = up
                up = np.float64(u_plas[i])
                u = np.float64(np.float32(ub + u_plas[i]))
            if mode == MODE_INIT and ti > u0_skip_steps:
                uavg[i] += u
                if gid0 + i < u0_ncells:
                    u0_sum[i] += u
                    u0_sumsq[i] += u * u
            if sample >= 0:
                col = roll_idx[i]
                if col >= 0:
                    for q in range(n_vars):
                        sel = roll_sel[q]
                        if sel == ROLL_UTOTAL:
                            val = u
                        elif sel == ROLL_UBAL_E:
                            val = np.float64(u_bale[i])
                        elif sel == ROLL_UBAL_I:
                            val = np.float64(u_bali[i])
                        else:
                            val = up
                        roll[sample, q, col] += val
            x = x_bal[i]
            if in_stim:
                if stim_online:
                    if stim_row == 0:
                        ou_s[i] = 0.0
                    else:
                        ou_s[i] = ou_s[i] + ou_b * (ou_mu - ou_s[i]) * dt + ou_sig * sqdt * normal(
                            ou_rng, i)
                    x = np.float32(x + ou_s[i])
                else:
                    x = np.float32(x + stim_arr[task, stim_row, i])
            vi = np.float64(v[i])
            if noise_kind == NOISE_VOLTAGE and has_noise:
                vi = np.float64(np.float32(vi + s_i * z))
            if t > last_spike[i] + refrac:
                drive = np.float64(np.float32(x + np.float32(u)))
                vi, spiked = cell_step(params, cstate, i, vi, drive, dt)
                if spiked:
                    last_spike[i] = t
                    ns[i] += 1
                    local_spk[nsp] = i
                    nsp += 1
                    if spk_idx.size > 0:
                        rec = spk_idx[i]
                        if rec >= 0 and ns[i] <= max_times:
                            spk_steps[rec, ns[i] - 1] = ti
            v[i] = vi
        # (c) exchange spiking ids: one allgather of a fixed-size buffer per step
        over = nsp > cap
        send[0] = nsp
        for k in range(min(nsp, cap)):
            send[1 + k] = gid0 + local_spk[k]
        exchange(send, recv, cap + 1)
        max_count = 0
        for rr in range(n_ranks):
            c = recv[rr * (cap + 1)]
            if c > max_count:
                max_count = c
        if max_count > cap:
            # overflow fallback (NEST-style): a second allgather sized to the largest count
            overflow[0] += 1
            if max_count > overflow[1]:
                overflow[1] = max_count
            big = max_count + 1
            send2 = np.zeros(big, dtype=np.int32)
            recv2 = np.zeros(big * n_ranks, dtype=np.int32)
            send2[0] = nsp
            for k in range(nsp):
                send2[1 + k] = gid0 + local_spk[k]
            exchange(send2, recv2, big)
            src = recv2
            stride = big
        else:
            src = recv
            stride = cap + 1
        _ = over
        # (d) delivery in increasing presynaptic id; inputs act at step ti+1 (the accumulators
        # were zeroed as the neuron loop consumed them)
        npend = 0
        for rr in range(n_ranks):
            base = rr * stride
            c = src[base]
            for k in range(c):
                j = src[base + 1 + k]
                if has_static:
                    for e in range(st_indptr[j], st_indptr[j + 1]):
                        w = st_table[st_code[e]]
                        if w > 0:
                            in_e[st_post[e]] += w
                        elif w < 0:
                            in_i[st_post[e]] += w
                if plastic_on:
                    for e in range(pl_indptr[j], pl_indptr[j + 1]):
                        post = pl_post[e]
                        in_p[post] += w_in[post, pl_slot[e]]
                if training:
                    pending[npend] = j
                    npend += 1
        n_pending[0] = npend
        # (e) feed-forward Poisson inputs, active after stim_off (spec §3.3 step 8)
        if n_ff > 0 and ti > stim_off_step:
            row = ti - stim_off_step - 1
            for c in range(n_ff):
                if training:
                    r_ff[c] = r_ff[c] + (-dt * r_ff[c] + spk_ff[c]) * inv_tau_ff
                spk_ff[c] = 0.0
                if uniform(ff_rng, c) < rate_ff[row, c]:
                    spk_ff[c] = 1.0
                    if plastic_on:
                        for i in range(n):
                            in_p[i] += w_ff[i, c]
    return 0


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
