"""GLIF1-5 on the device: :mod:`tsn_mpi.models.glif` operation by operation (GPU backend)."""

from __future__ import annotations

from numba import cuda

from tsn_mpi.models import glif as G

# ------------------------------------------------------------------------------ GLIF1-5
# models.glif's kernels operation by operation, on transposed arrays: cp (n_params, n) and
# cs (n_state, n) float64 (column layouts G.LAYOUTS / G.STATE_LAYOUTS; the after-spike currents
# span the last columns).  The state persists across trials (the reference behaviour).


@cuda.jit(device=True)
def _glif_decay_currents(cp, cs, i, p0, s0, dt):
    """Ij -= dt*invtau_Ij*Ij for every current; returns sum(Ij) after the decay."""
    total = 0.0
    for j in range(cp.shape[0] - p0):
        ij = cs[s0 + j, i]
        ij = ij - dt * cp[p0 + j, i] * ij
        cs[s0 + j, i] = ij
        total += ij
    return total


@cuda.jit(device=True)
def _glif_bump_currents(cp, cs, i, p0, s0, f_j, delta_ij):
    """Ij = f_j*Ij + delta_Ij for every current (after a spike)."""
    for j in range(cp.shape[0] - p0):
        cs[s0 + j, i] = f_j * cs[s0 + j, i] + delta_ij


@cuda.jit(device=True)
def _glif_integrate(cp, i, v, current, dt):
    return v + dt * cp[G.INVC, i] * (current - cp[G.INVR, i] * (v - cp[G.E_L, i]))


@cuda.jit(device=True)
def _glif_decay_thresh_s(cp, cs, i, dt):
    ts = cs[G.S_THRESH_S, i]
    ts = ts - dt * cp[G.B_S, i] * ts
    cs[G.S_THRESH_S, i] = ts
    return ts


@cuda.jit(device=True)
def _glif_adapt_reset(cp, cs, i, v):
    cs[G.S_THRESH_S, i] = cs[G.S_THRESH_S, i] + cp[G.DELTA_THRESH_S, i]
    return cp[G.E_L, i] + cp[G.F_V, i] * v - cp[G.DELTA_V, i]


@cuda.jit(device=True)
def glif_step(model, cp, cs, i, v, drive, dt):
    """GLIF``model`` (1-5) step of a non-refractory neuron i: (new v or reset value, spiked)."""
    if model == 1:
        v = _glif_integrate(cp, i, v, drive, dt)
        if v > cp[G.THRESH, i]:
            return cp[G.VRE, i], True
        return v, False
    if model == 2:
        v = _glif_integrate(cp, i, v, drive, dt)
        ts = _glif_decay_thresh_s(cp, cs, i, dt)
        if v > cp[G.THRESH, i] + ts:
            return _glif_adapt_reset(cp, cs, i, v), True
        return v, False
    if model == 3:
        s = _glif_decay_currents(cp, cs, i, G.G3_INVTAU, G.G3_IJ, dt)
        v = _glif_integrate(cp, i, v, drive + s, dt)
        if v > cp[G.THRESH, i]:
            _glif_bump_currents(cp, cs, i, G.G3_INVTAU, G.G3_IJ, cp[G.G3_F_J, i],
                                cp[G.G3_DELTA_IJ, i])  # fmt: skip
            return cp[G.VRE, i], True
        return v, False
    if model == 4:
        s = _glif_decay_currents(cp, cs, i, G.G4_INVTAU, G.G4_IJ, dt)
        v = _glif_integrate(cp, i, v, drive + s, dt)
        ts = _glif_decay_thresh_s(cp, cs, i, dt)
        if v > cp[G.THRESH, i] + ts:
            _glif_bump_currents(cp, cs, i, G.G4_INVTAU, G.G4_IJ, cp[G.G4_F_J, i],
                                cp[G.G4_DELTA_IJ, i])  # fmt: skip
            return _glif_adapt_reset(cp, cs, i, v), True
        return v, False
    s = _glif_decay_currents(cp, cs, i, G.G5_INVTAU, G.G5_IJ, dt)
    v = _glif_integrate(cp, i, v, drive + s, dt)
    ts = _glif_decay_thresh_s(cp, cs, i, dt)
    tv = cs[G.S_THRESH_V, i]
    tv = tv + (cp[G.A_V, i] * v - dt * cp[G.B_V, i] * tv)
    cs[G.S_THRESH_V, i] = tv
    if v > cp[G.THRESH, i] + ts + tv:
        _glif_bump_currents(cp, cs, i, G.G5_INVTAU, G.G5_IJ, cp[G.G5_F_J, i],
                            cp[G.G5_DELTA_IJ, i])  # fmt: skip
        return _glif_adapt_reset(cp, cs, i, v), True
    return v, False
