"""Dispatch to the built-in cell models by id inside the compiled loop.

Built-in models are selected by an integer id so the time loop can be compiled once and cached
on disk (numba cannot cache a kernel that receives a jitted function as an argument).  A user
model (``neuron.model = "my_models.py:my_model"``) returns a CellModel with ``model_id = -1``;
the loop then calls its own ``step``/``init_v`` functions (compiled at start-up, not cached).

Ids: LIF = 0 (also the fallback for any unknown id), GLIF1..GLIF5 = 1..5.
"""

from __future__ import annotations

from numba import njit

from tsn_mpi.models.glif import (
    glif1_init_v,
    glif1_step,
    glif2_init_v,
    glif2_step,
    glif3_step,
    glif4_step,
    glif5_step,
)
from tsn_mpi.models.lif import lif_init_v, lif_step

LIF = 0
GLIF1, GLIF2, GLIF3, GLIF4, GLIF5 = 1, 2, 3, 4, 5


@njit(cache=True, inline="always")
def builtin_step(model_id, params, state, lid, v, drive, dt):  # pragma: no cover - jitted
    """Advance a non-refractory neuron of built-in model ``model_id``: (v_new, spiked)."""
    if model_id == LIF:
        return lif_step(params, state, lid, v, drive, dt)
    elif model_id == GLIF1:
        return glif1_step(params, state, lid, v, drive, dt)
    elif model_id == GLIF2:
        return glif2_step(params, state, lid, v, drive, dt)
    elif model_id == GLIF3:
        return glif3_step(params, state, lid, v, drive, dt)
    elif model_id == GLIF4:
        return glif4_step(params, state, lid, v, drive, dt)
    elif model_id == GLIF5:
        return glif5_step(params, state, lid, v, drive, dt)
    return lif_step(params, state, lid, v, drive, dt)


@njit(cache=True, inline="always")
def builtin_init_v(model_id, params, lid, z):  # pragma: no cover - jitted
    """Initial voltage of built-in model ``model_id`` given a standard normal ``z``."""
    if model_id == LIF:
        return lif_init_v(params, lid, z)
    elif model_id == GLIF1 or model_id == GLIF3:
        return glif1_init_v(params, lid, z)  # N(vre, (thresh - vre)^2)
    elif model_id == GLIF2 or model_id == GLIF4 or model_id == GLIF5:
        return glif2_init_v(params, lid, z)  # N(E_l, (thresh - E_l)^2)
    return lif_init_v(params, lid, z)


@njit(cache=True)
def builtin_initial_voltages(model_id, params, z, v):  # pragma: no cover - jitted
    """``v[i]`` = initial voltage of neuron i of built-in model ``model_id`` from normal
    ``z[i]`` (v float32: the CPU and GPU time loops start from the same bits)."""
    for i in range(v.size):
        v[i] = builtin_init_v(model_id, params, i, z[i])
