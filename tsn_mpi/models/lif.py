"""Leaky integrate-and-fire neuron, the reference default (spec §9.6, first row).

``v += dt * invtau_mem * (X + u - v)`` for non-refractory neurons; spike if ``v > thresh``;
reset to ``vre``; initial voltage ``vre + (thresh - vre) * N(0, 1)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tsn_mpi.models.base import CellModel

THRESH, INVTAU, VRE = 0, 1, 2


@njit(cache=True)
def lif_init_v(params, lid, z):  # pragma: no cover - jitted
    return params[lid, VRE] + (params[lid, THRESH] - params[lid, VRE]) * z


@njit(cache=True)
def lif_step(params, state, lid, v, drive, dt):  # pragma: no cover - jitted
    v = v + dt * params[lid, INVTAU] * (drive - v)
    if v > params[lid, THRESH]:
        return params[lid, VRE], True
    return v, False


def population_params(ctx) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron (thresh, 1/tau_mem) by population for the owned neurons."""
    neu, ne = ctx.cfg.neuron, ctx.derived.n_exc
    exc = ctx.owned_gids < ne
    thresh = np.where(exc, neu.thresh_e, neu.thresh_i).astype(np.float64)
    invtau = np.where(exc, 1.0 / neu.tau_mem_e, 1.0 / neu.tau_mem_i).astype(np.float64)
    return thresh, invtau


def lif(ctx) -> CellModel:
    """The LIF model for the owned neurons of ``ctx``."""
    thresh, invtau = population_params(ctx)
    n = thresh.size
    params = np.empty((n, 3), dtype=np.float64)
    params[:, THRESH] = thresh
    params[:, INVTAU] = invtau
    params[:, VRE] = ctx.cfg.neuron.v_reset
    return CellModel(
        "lif", params, np.zeros((n, 0)), lif_init_v, lif_step, ("thresh", "invtau_mem", "vre"),
        model_id=0,
    )
