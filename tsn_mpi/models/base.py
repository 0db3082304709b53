"""The cell-model plugin interface shared by LIF and the GLIF family (spec §9.6).

A cell model is a :class:`CellModel`: per-neuron parameters and persistent extra state (which,
as in the reference, is *not* reset between trials) plus two jitted functions the compiled time
loop calls for every owned neuron:

Built-in models also carry ``model_id`` so the cached loop dispatches to them by id
(``tsn_mpi.models.builtin``); user models keep ``model_id = -1`` and are called through their
``step``/``init_v`` (compiled at start-up, not cached).

``init_v(params, lid, z) -> float``
    initial voltage of neuron ``lid`` given a standard normal draw ``z``.
``step(params, state, lid, v, drive, dt) -> (v_new, spiked)``
    advance a *non-refractory* neuron by one step with total input ``drive = X + u`` and apply
    the reset when it spikes (updates ``state[lid]`` in place).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass
class CellModel:
    """Parameters (n_owned, n_params) float64, state (n_owned, n_state) float64, kernels."""

    name: str
    params: NDArray[np.float64]
    state: NDArray[np.float64]
    init_v: Any
    step: Any
    param_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    model_id: int = -1  # built-in models: their id in tsn_mpi.models.builtin; -1 = user model

    def check(self, n_owned: int) -> None:
        from tsn_mpi.errors import PluginError

        for what, arr in (("params", self.params), ("state", self.state)):
            if arr.ndim != 2 or arr.shape[0] != n_owned:
                raise PluginError(
                    f"neuron.model {self.name}: {what} has shape {arr.shape}, expected "
                    f"({n_owned}, k)"
                )
