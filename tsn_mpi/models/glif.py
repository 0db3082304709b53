"""Generalized leaky integrate-and-fire models GLIF1-GLIF5 (spec §9.6; Teeter et al. 2018).

All five integrate ``v += dt*invC*(X + u [+ sum Ij] - invR*(v - E_l))`` for non-refractory
neurons; GLIF2 adds a spike-triggered threshold ``thresh_s``, GLIF3 after-spike currents ``Ij``,
GLIF4 both, GLIF5 also a voltage-dependent threshold ``thresh_v``.  The extra state lives in
``CellModel.state`` and is *not* reset between trials (the reference behaviour).  Parameters come
from ``neuron.glif_params`` (defaults: the reference test's values, spec §10 item 10); ``thresh``
comes from ``neuron.thresh_e/thresh_i`` and ``vre`` from ``neuron.v_reset``.  See docs/models.md.

Every step follows the reference's floating-point order exactly (so results match it bit for
bit in float64): currents decay first, then v, then thresh_s, then thresh_v (from the new v).

All kernels are ``inline="always"``: ``builtin_step`` then inlines them into the time loop at
numba-IR level.  Measured on the per-neuron loop this makes GLIF3-5 about 40% faster than
calling them (a call that LLVM does not inline costs a call plus reference-count updates of the
arrays at every neuron step).  Numba does not notice edits here in the loop's on-disk cache:
clear ``tsn_mpi/backends/cpu/__pycache__`` after changing a kernel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from tsn_mpi.errors import ConfigError
from tsn_mpi.models.base import CellModel
from tsn_mpi.models.lif import population_params

# ---- parameter layouts: names of the per-neuron columns of CellModel.params -------------------
# (``invtau_Ij`` always comes last and spans nIj columns; nIj = params.shape[1] - its index)
_BASE = ("thresh", "invR", "invC", "E_l")
_ADAPT = ("b_s", "delta_thresh_s", "f_v", "delta_v")
_CURRENTS = ("f_j", "delta_Ij")
LAYOUTS: dict[int, tuple[str, ...]] = {
    1: (*_BASE, "vre"),
    2: (*_BASE, *_ADAPT),
    3: (*_BASE, "vre", *_CURRENTS, "invtau_Ij"),
    4: (*_BASE, *_ADAPT, *_CURRENTS, "invtau_Ij"),
    5: (*_BASE, *_ADAPT, *_CURRENTS, "a_v", "b_v", "invtau_Ij"),
}
# columns of CellModel.state (``Ij`` last, nIj columns)
STATE_LAYOUTS: dict[int, tuple[str, ...]] = {
    1: (),
    2: ("thresh_s",),
    3: ("Ij",),
    4: ("thresh_s", "Ij"),
    5: ("thresh_s", "thresh_v", "Ij"),
}

THRESH, INVR, INVC, E_L = 0, 1, 2, 3
VRE = 4  # GLIF1, GLIF3
B_S, DELTA_THRESH_S, F_V, DELTA_V = 4, 5, 6, 7  # GLIF2, GLIF4, GLIF5
G3_F_J, G3_DELTA_IJ, G3_INVTAU = 5, 6, 7
G4_F_J, G4_DELTA_IJ, G4_INVTAU = 8, 9, 10
G5_F_J, G5_DELTA_IJ, A_V, B_V, G5_INVTAU = 8, 9, 10, 11, 12
S_THRESH_S, S_THRESH_V = 0, 1
G3_IJ, G4_IJ, G5_IJ = 0, 1, 2

# ---- user-settable names of neuron.glif_params, their defaults and which models use them ------
DEFAULTS: dict[str, Any] = {
    "invR": 1.0,  # number or [exc, inh]
    "invC": None,  # None = 1/tau_mem of the population
    "E_l": 0.0,
    "thresh_s": 0.0,  # initial value (state)
    "b_s": 0.1,
    "delta_thresh_s": 0.1,
    "f_v": 0.1,
    "delta_v": 0.1,
    "Ij": 0.0,  # initial value(s) (state): number or list of nIj
    "invtau_Ij": [0.1, 0.2, 0.3],
    "f_j": 0.9,
    "delta_Ij": 0.1,
    "thresh_v": 0.0,  # initial value (state)
    "a_v": 0.1,
    "b_v": 0.9,
}
_POP = ("invR", "invC", "E_l")
_USES_ADAPT = ("thresh_s", "b_s", "delta_thresh_s", "f_v", "delta_v")
_USES_CURRENTS = ("Ij", "invtau_Ij", "f_j", "delta_Ij")
USES: dict[int, tuple[str, ...]] = {
    1: _POP,
    2: (*_POP, *_USES_ADAPT),
    3: (*_POP, *_USES_CURRENTS),
    4: (*_POP, *_USES_ADAPT, *_USES_CURRENTS),
    5: (*_POP, *_USES_ADAPT, *_USES_CURRENTS, "thresh_v", "a_v", "b_v"),
}


# ---- shared pieces of the kernels ---------------------------------------------------------------


@njit(cache=True, inline="always")
def _decay_currents(params, state, lid, p0, s0, dt):  # pragma: no cover - jitted
    """Ij -= dt*invtau_Ij*Ij for every current; returns sum(Ij) after the decay."""
    total = 0.0
    for j in range(params.shape[1] - p0):
        ij = state[lid, s0 + j]
        ij = ij - dt * params[lid, p0 + j] * ij
        state[lid, s0 + j] = ij
        total += ij
    return total


@njit(cache=True, inline="always")
def _bump_currents(params, state, lid, p0, s0, f_j, delta_ij):  # pragma: no cover - jitted
    """Ij = f_j*Ij + delta_Ij for every current (reset after a spike)."""
    for j in range(params.shape[1] - p0):
        state[lid, s0 + j] = f_j * state[lid, s0 + j] + delta_ij


@njit(cache=True, inline="always")
def _integrate(params, lid, v, current, dt):  # pragma: no cover - jitted
    """v + dt*invC*(current - invR*(v - E_l))."""
    return v + dt * params[lid, INVC] * (current - params[lid, INVR] * (v - params[lid, E_L]))


@njit(cache=True, inline="always")
def _decay_thresh_s(params, state, lid, dt):  # pragma: no cover - jitted
    ts = state[lid, S_THRESH_S]
    ts = ts - dt * params[lid, B_S] * ts
    state[lid, S_THRESH_S] = ts
    return ts


@njit(cache=True, inline="always")
def _adapt_reset(params, state, lid, v):  # pragma: no cover - jitted
    """GLIF2/4/5 reset: thresh_s += delta_thresh_s; returns E_l + f_v*v - delta_v."""
    state[lid, S_THRESH_S] = state[lid, S_THRESH_S] + params[lid, DELTA_THRESH_S]
    return params[lid, E_L] + params[lid, F_V] * v - params[lid, DELTA_V]


# ---- the five models ----------------------------------------------------------------------------


@njit(cache=True, inline="always")
def glif1_init_v(params, lid, z):  # pragma: no cover - jitted
    """N(vre, (thresh - vre)^2) from a standard normal z (also GLIF3)."""
    return params[lid, VRE] + (params[lid, THRESH] - params[lid, VRE]) * z


@njit(cache=True, inline="always")
def glif2_init_v(params, lid, z):  # pragma: no cover - jitted
    """N(E_l, (thresh - E_l)^2) from a standard normal z (also GLIF4, GLIF5)."""
    return params[lid, E_L] + (params[lid, THRESH] - params[lid, E_L]) * z


glif3_init_v = glif1_init_v
glif4_init_v = glif2_init_v
glif5_init_v = glif2_init_v


@njit(cache=True, inline="always")
def glif1_step(params, state, lid, v, drive, dt):  # pragma: no cover - jitted
    """GLIF1: leaky integration; spike if v > thresh; reset to vre."""
    v = _integrate(params, lid, v, drive, dt)
    if v > params[lid, THRESH]:
        return params[lid, VRE], True
    return v, False


@njit(cache=True, inline="always")
def glif2_step(params, state, lid, v, drive, dt):  # pragma: no cover - jitted
    """GLIF2: GLIF1 + spike-triggered threshold thresh_s; voltage reset E_l + f_v*v - delta_v."""
    v = _integrate(params, lid, v, drive, dt)
    ts = _decay_thresh_s(params, state, lid, dt)
    if v > params[lid, THRESH] + ts:
        return _adapt_reset(params, state, lid, v), True
    return v, False


@njit(cache=True, inline="always")
def glif3_step(params, state, lid, v, drive, dt):  # pragma: no cover - jitted
    """GLIF3: GLIF1 + after-spike currents Ij (decayed first, then summed into the input)."""
    s = _decay_currents(params, state, lid, G3_INVTAU, G3_IJ, dt)
    v = _integrate(params, lid, v, drive + s, dt)
    if v > params[lid, THRESH]:
        _bump_currents(
            params, state, lid, G3_INVTAU, G3_IJ, params[lid, G3_F_J], params[lid, G3_DELTA_IJ]
        )
        return params[lid, VRE], True
    return v, False


@njit(cache=True, inline="always")
def glif4_step(params, state, lid, v, drive, dt):  # pragma: no cover - jitted
    """GLIF4: GLIF3 currents + GLIF2 threshold adaptation and voltage reset."""
    s = _decay_currents(params, state, lid, G4_INVTAU, G4_IJ, dt)
    v = _integrate(params, lid, v, drive + s, dt)
    ts = _decay_thresh_s(params, state, lid, dt)
    if v > params[lid, THRESH] + ts:
        _bump_currents(
            params, state, lid, G4_INVTAU, G4_IJ, params[lid, G4_F_J], params[lid, G4_DELTA_IJ]
        )
        return _adapt_reset(params, state, lid, v), True
    return v, False


@njit(cache=True, inline="always")
def glif5_step(params, state, lid, v, drive, dt):  # pragma: no cover - jitted
    """GLIF5: GLIF4 + voltage-dependent threshold thresh_v += a_v*v - dt*b_v*thresh_v (new v)."""
    s = _decay_currents(params, state, lid, G5_INVTAU, G5_IJ, dt)
    v = _integrate(params, lid, v, drive + s, dt)
    ts = _decay_thresh_s(params, state, lid, dt)
    tv = state[lid, S_THRESH_V]
    tv = tv + (params[lid, A_V] * v - dt * params[lid, B_V] * tv)
    state[lid, S_THRESH_V] = tv
    if v > params[lid, THRESH] + ts + tv:
        _bump_currents(
            params, state, lid, G5_INVTAU, G5_IJ, params[lid, G5_F_J], params[lid, G5_DELTA_IJ]
        )
        return _adapt_reset(params, state, lid, v), True
    return v, False


KERNELS = {
    1: (glif1_init_v, glif1_step),
    2: (glif2_init_v, glif2_step),
    3: (glif3_init_v, glif3_step),
    4: (glif4_init_v, glif4_step),
    5: (glif5_init_v, glif5_step),
}


# ---- neuron.glif_params -> params, state ---------------------------------------------------------


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _number(name: str, x: Any) -> float:
    if not _is_number(x):
        raise ConfigError(f"neuron.glif_params.{name} = {x!r}: expected a finite number")
    return float(x)


def _per_population(name: str, x: Any, exc: np.ndarray) -> np.ndarray:
    """A number, or an [exc, inh] pair, as one value per owned neuron."""
    if isinstance(x, (list, tuple)):
        if len(x) != 2 or not all(_is_number(e) for e in x):
            raise ConfigError(
                f"neuron.glif_params.{name} = {x!r}: expected a number or an [exc, inh] pair"
            )
        return np.where(exc, float(x[0]), float(x[1]))
    return np.full(exc.size, _number(name, x))


def _number_list(name: str, x: Any, n: int | None = None) -> list[float]:
    ok = isinstance(x, (list, tuple)) and len(x) > 0 and all(_is_number(e) for e in x)
    if not ok:
        raise ConfigError(
            f"neuron.glif_params.{name} = {x!r}: expected a non-empty list of numbers"
        )
    if n is not None and len(x) != n:
        raise ConfigError(
            f"neuron.glif_params.{name} has {len(x)} values, expected a number or {n} values "
            "(one per after-spike current, the length of invtau_Ij)"
        )
    return [float(e) for e in x]


def resolve_glif_params(kind: int, glif_params: dict[str, Any]) -> dict[str, Any]:
    """The parameters model GLIF``kind`` uses: defaults updated with ``glif_params``, checked.

    Raises ConfigError naming ``neuron.glif_params.<name>`` for an unknown name, a name the model
    does not use, or a value of the wrong type or length.
    """
    if not isinstance(glif_params, dict):
        raise ConfigError(f"neuron.glif_params = {glif_params!r}: expected a table")
    used = USES[kind]
    for name in glif_params:
        if name not in DEFAULTS:
            raise ConfigError(
                f"neuron.glif_params.{name}: unknown GLIF parameter (known: {', '.join(DEFAULTS)})"
            )
        if name not in used:
            raise ConfigError(
                f"neuron.glif_params.{name} is not used by glif{kind} (it uses: {', '.join(used)})"
            )
    out = {name: glif_params.get(name, DEFAULTS[name]) for name in used}
    for name, value in out.items():
        if name in _POP or name in ("invtau_Ij", "Ij"):
            continue
        out[name] = _number(name, value)
    if "invtau_Ij" in out:
        out["invtau_Ij"] = _number_list("invtau_Ij", out["invtau_Ij"])
        n_ij = len(out["invtau_Ij"])
        ij = out["Ij"]
        if isinstance(ij, (list, tuple)):
            out["Ij"] = _number_list("Ij", ij, n_ij)
        else:
            out["Ij"] = [_number("Ij", ij)] * n_ij
    return out


def build_glif(ctx, kind: int) -> CellModel:
    """GLIF``kind`` (1..5) for the owned neurons of ``ctx`` (a PluginContext)."""
    p = resolve_glif_params(kind, dict(ctx.cfg.neuron.glif_params))
    thresh, invtau = population_params(ctx)
    exc = ctx.owned_gids < ctx.derived.n_exc
    n = thresh.size
    columns: dict[str, Any] = {
        "thresh": thresh,
        "invR": _per_population("invR", p["invR"], exc),
        "invC": invtau if p["invC"] is None else _per_population("invC", p["invC"], exc),
        "E_l": _per_population("E_l", p["E_l"], exc),
        "vre": float(ctx.cfg.neuron.v_reset),
    }
    columns.update({k: v for k, v in p.items() if k not in columns})
    n_ij = len(p.get("invtau_Ij", ()))
    param_names, state_names = _expand(LAYOUTS[kind], n_ij), _expand(STATE_LAYOUTS[kind], n_ij)
    params = np.empty((n, len(param_names)), dtype=np.float64)
    _fill(params, LAYOUTS[kind], columns, p["invtau_Ij"] if n_ij else None)
    state = np.empty((n, len(state_names)), dtype=np.float64)
    _fill(state, STATE_LAYOUTS[kind], p, p["Ij"] if n_ij else None)
    init_v, step = KERNELS[kind]
    return CellModel(
        f"glif{kind}", params, state, init_v, step, param_names, state_names, model_id=kind
    )


def _fill(out: np.ndarray, layout: tuple[str, ...], values: dict[str, Any], tail: Any) -> None:
    """Write the named columns of ``layout``; its last name (if a vector) spans the tail."""
    for col, name in enumerate(layout):
        if name in ("invtau_Ij", "Ij"):
            out[:, col:] = np.asarray(tail, dtype=np.float64)[None, :]
        else:
            out[:, col] = values[name]


def _expand(layout: tuple[str, ...], n_ij: int) -> tuple[str, ...]:
    out: list[str] = []
    for name in layout:
        if name in ("invtau_Ij", "Ij"):
            out.extend(f"{name}[{j}]" for j in range(n_ij))
        else:
            out.append(name)
    return tuple(out)


def glif1(ctx) -> CellModel:
    """GLIF1: leaky integrate-and-fire with resistance, capacitance and resting potential."""
    return build_glif(ctx, 1)


def glif2(ctx) -> CellModel:
    """GLIF2: GLIF1 with spike-triggered threshold adaptation and voltage reset rule."""
    return build_glif(ctx, 2)


def glif3(ctx) -> CellModel:
    """GLIF3: GLIF1 with after-spike currents."""
    return build_glif(ctx, 3)


def glif4(ctx) -> CellModel:
    """GLIF4: GLIF2 and GLIF3 combined."""
    return build_glif(ctx, 4)


def glif5(ctx) -> CellModel:
    """GLIF5: GLIF4 with a voltage-dependent threshold component."""
    return build_glif(ctx, 5)
