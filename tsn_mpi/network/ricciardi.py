"""The Ricciardi (Siegert) transfer function of a LIF neuron and its inverse (spec §8).

``ricciardi`` is the firing rate of a leaky integrate-and-fire neuron with no refractory period
driven by white noise, ``tau dV/dt = mu - V + sigma*sqrt(tau)*eta(t)``:

    1/rate = tau * sqrt(pi) * ∫_{(Vr-mu)/sigma}^{(VT-mu)/sigma} exp(u²) (1 + erf u) du,

evaluated with the reference's rational approximations ``f`` and ``g`` (error < 1e-5) and its
three branches.  ``rates_to_currents`` inverts it elementwise: the target current of a neuron is
the mean input ``mu`` that makes it fire at the recorded rate.  The reference solves this with
NLsolve per neuron; the system is diagonal and the transfer function monotone, so a vectorised
bracketing root finder gives the same answer for millions of samples in seconds.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tsn_mpi.errors import DataFileError

# f(x) = log(2x+1) + sum_k F[k-1] z^k, z = x/(1+x)
_F = (
    -2.2757881388024176e-1,
    7.7373949685442023e-1,
    -3.2056016125642045e-1,
    3.2171431660633076e-1,
    -6.2718906618071668e-1,
    9.3524391761244940e-1,
    -1.0616084849547165,
    6.4290613877355551e-1,
    -1.4805913578876898e-1,
)
# g(x) = (sum_k A[k-1] z^k) / (1 + sum_k B[k-1] z^k), z = x/(2+x)
_A = (
    3.5441754117462949,
    -7.0529131065835378,
    -5.6532378057580381e1,
    2.7956761105465944e2,
    -5.2037554849441472e2,
    4.5658245777026514e2,
    -1.5573340457809226e2,
)
_B = (
    -4.1357968834226053,
    -7.2984226138266743,
    9.8656602235468327e1,
    -3.3420436223415163e2,
    6.0108633903294185e2,
    -5.9958577549598340e2,
    2.7718420330693891e2,
    -1.6445022798669722e1,
)


def _horner_z(coef: tuple[float, ...], z: NDArray[np.float64]) -> NDArray[np.float64]:
    """sum_{k=1..len(coef)} coef[k-1] z^k."""
    acc = np.full_like(z, coef[-1])
    for c in coef[-2::-1]:
        acc = acc * z + c
    return acc * z


def _f(x: NDArray[np.float64]) -> NDArray[np.float64]:
    z = x / (1.0 + x)
    return np.log(2.0 * x + 1.0) + _horner_z(_F, z)


def _g(x: NDArray[np.float64]) -> NDArray[np.float64]:
    z = x / (2.0 + x)
    return _horner_z(_A, z) / (1.0 + _horner_z(_B, z))


def ricciardi(
    mu: ArrayLike, sigma: float, invtau: float, v_thresh: float, v_reset: float
) -> NDArray[np.float64] | float:
    """Firing rate (Hz) of a noisy LIF neuron with mean input ``mu`` (spec §8).

    mu: scalar or array of mean inputs (voltage units); the result has its shape (a float for a
    scalar). sigma: noise amplitude (>= 0; 0 gives the deterministic rate). invtau: 1/tau_mem
    in 1/s (1000/tau_mem for tau_mem in ms). v_thresh, v_reset: threshold and reset.
    """
    if v_thresh < v_reset:
        raise ValueError(f"ricciardi: threshold {v_thresh} is lower than reset {v_reset}")
    if sigma < 0:
        raise ValueError(f"ricciardi: noise sigma = {sigma} is negative")
    scalar = np.ndim(mu) == 0
    mu = np.asarray(mu, dtype=np.float64)
    out = np.empty(mu.shape, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        if sigma == 0:
            above = mu >= v_thresh
            out[~above] = 0.0
            m = mu[above]
            out[above] = invtau / np.log((m - v_reset) / (m - v_thresh))
        else:
            xp = (mu - v_reset) / sigma
            xm = (mu - v_thresh) / sigma
            b1 = xm > 0
            b2 = ~b1 & (xp > 0)
            b3 = ~b1 & ~b2
            p, m = xp[b1], xm[b1]
            out[b1] = invtau / (_f(p) - _f(m))
            p, m = xp[b2], xm[b2]
            out[b2] = invtau / (_f(p) + np.exp(m * m) * _g(-m))
            p, m = xp[b3], xm[b3]
            out[b3] = np.exp(-m * m - np.log(_g(-m) - np.exp(p * p - m * m) * _g(-p))) * invtau
    return float(out) if scalar else out


_CHUNK = 1 << 20
_GRID = 1 << 16
_MAXITER = 100


def rates_to_currents(
    rates: ArrayLike,
    sigma: float,
    tau_mem: float,
    v_thresh: float,
    v_reset: float,
    tol: float = 1e-10,
    source: str = "rates",
) -> NDArray[np.float64]:
    """Mean input currents at which the Ricciardi rate equals ``rates`` (spec §8), elementwise.

    rates: array of any shape, Hz, finite and > 0 (map exact zeros to 0.1 Hz beforehand, as the
    reference does). tau_mem in ms. Returns float64 currents of the same shape, each within
    ``tol*(1+|mu|)`` of the root. ``source`` names the data in error messages. Raises
    DataFileError if rates are not positive and finite or if some elements do not converge.
    """
    r = np.asarray(rates, dtype=np.float64)
    bad = ~(np.isfinite(r) & (r > 0))
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), r.shape)
        raise DataFileError(
            f"{source}: {int(bad.sum())} rates are not positive and finite (first at index "
            f"{tuple(int(i) for i in first)}: {r[first]}); cannot convert them to currents"
        )
    if v_thresh < v_reset:
        raise ValueError(f"rates_to_currents: threshold {v_thresh} is lower than reset {v_reset}")
    if sigma < 0:
        raise ValueError(f"rates_to_currents: noise sigma = {sigma} is negative")
    out = np.empty(r.shape, dtype=np.float64)
    if r.size == 0:
        return out
    invtau = 1000.0 / tau_mem

    def lograte(x: NDArray[np.float64]) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(ricciardi(x, sigma, invtau, v_thresh, v_reset))

    grid, lgrid = _table(lograte, float(r.min()), float(r.max()), sigma, v_thresh, v_reset)
    flat_in, flat_out = r.reshape(-1), out.reshape(-1)
    failed = 0
    for start in range(0, flat_in.size, _CHUNK):
        sl = slice(start, start + _CHUNK)
        mu, ok = _solve(np.log(flat_in[sl]), lograte, grid, lgrid, tol)
        flat_out[sl] = mu
        failed += int((~ok).sum())
    if failed:
        raise DataFileError(
            f"{source}: {failed} of {r.size} rates could not be converted to currents "
            f"(no convergence of the Ricciardi inversion with sigma = {sigma}, tau_mem = "
            f"{tau_mem}, v_thresh = {v_thresh}, v_reset = {v_reset})"
        )
    return out


def _table(lograte, rmin: float, rmax: float, sigma: float, vt: float, vr: float):
    """A grid of mu whose log-rates bracket [log rmin, log rmax] (the transfer is increasing)."""
    span = max(vt - vr, sigma, 1e-3)
    lo, hi = vt - span - 3.0 * sigma, vt + span + 3.0 * sigma
    step = span
    for _ in range(200):
        if lograte(np.array([lo]))[0] < np.log(rmin):
            break
        lo -= step
        step *= 2.0
    step = span
    for _ in range(200):
        if lograte(np.array([hi]))[0] > np.log(rmax):
            break
        hi += step
        step *= 2.0
    grid = np.linspace(lo, hi, _GRID)
    return grid, lograte(grid)


def _solve(target, lograte, grid, lgrid, tol):
    """Illinois (modified regula falsi) on h(mu) = log rate(mu) - target, all elements at once.

    Brackets come from the table, so the first regula-falsi point is the table interpolation
    and usually already within ``tol``: an element is done when its residual divided by the
    local slope (the estimated distance to the root) is below tolerance, when two successive
    points agree, or when the bracket has shrunk below tolerance.  An element whose table
    bracket is not valid (the approximate transfer function is not exactly monotone at branch
    joins) starts from the whole table range.  Returns (mu, converged).
    """
    n = target.size
    j = np.clip(np.searchsorted(lgrid, target) - 1, 0, grid.size - 2)
    a, b = grid[j], grid[j + 1]
    ha, hb = lgrid[j] - target, lgrid[j + 1] - target
    good = (ha <= 0) & (hb >= 0)
    if not good.all():
        bad = ~good
        a[bad], b[bad] = grid[0], grid[-1]
        ha[bad], hb[bad] = lgrid[0] - target[bad], lgrid[-1] - target[bad]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (hb - ha) / (b - a)  # local d(log rate)/d(mu)
    slope[~(good & np.isfinite(slope))] = 0.0
    x = np.empty(n)
    ok = np.zeros(n, dtype=bool)
    for end, h in ((a, ha), (b, hb)):
        hit = (h == 0) & ~ok
        x[hit], ok[hit] = end[hit], True
    side = np.zeros(n, dtype=np.int8)  # which end was kept last time: -1 a, +1 b
    prev = np.full(n, np.nan)
    act = np.flatnonzero(~ok)
    if act.size < n:
        a, b, ha, hb, slope, side, prev, target = (
            v[act] for v in (a, b, ha, hb, slope, side, prev, target)
        )
    for _ in range(_MAXITER):
        if act.size == 0:
            break
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            c = b - hb * (b - a) / (hb - ha)
        inside = np.isfinite(c) & (c > a) & (c < b)
        if not inside.all():
            c = np.where(inside, c, 0.5 * (a + b))
        fc = lograte(c) - target
        x[act] = c
        scale = tol * (1.0 + np.abs(c))
        done = (
            (fc == 0)
            | (np.abs(fc) <= 0.5 * slope * scale)
            | (np.abs(c - prev) <= scale)
            | (b - a <= scale)
        )
        prev = c
        neg = fc < 0  # root in (c, b): c replaces a, b is kept
        # Illinois: halve the function value of an end kept twice in a row
        hb = np.where(neg & (side == 1), 0.5 * hb, hb)
        ha = np.where(~neg & (side == -1), 0.5 * ha, ha)
        a = np.where(neg, c, a)
        ha = np.where(neg, fc, ha)
        b = np.where(neg, b, c)
        hb = np.where(neg, hb, fc)
        side = np.where(neg, 1, -1).astype(np.int8)
        ok[act[done]] = True
        keep = ~done
        if not keep.any():
            break
        act = act[keep]
        a, b, ha, hb, slope, side, prev, target = (
            v[keep] for v in (a, b, ha, hb, slope, side, prev, target)
        )
    return x, ok
