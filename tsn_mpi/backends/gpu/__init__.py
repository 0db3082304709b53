"""GPU backend: numba.cuda kernels on numba device arrays, one GPU per rank.

- :mod:`~tsn_mpi.backends.gpu.device`: ``select_device(comm)``, ``require_gpu()``,
  ``gpu_available()``, the device weights shared by simulator and learner;
- :mod:`~tsn_mpi.backends.gpu.kernels`: the kernels (time step, delivery, traces, RLS);
- :mod:`~tsn_mpi.backends.gpu.simulator`: ``GpuSimulator`` (the API of ``Simulator``);
- :mod:`~tsn_mpi.backends.gpu.learner`: ``GpuLearner`` (the API of ``Learner``).

Importing this package needs numba only (no GPU, no CUDA toolkit); kernels compile on first
launch.  Under ``NUMBA_ENABLE_CUDASIM=1`` everything runs in numba's CUDA simulator (tests).
"""

from __future__ import annotations

import numpy as _np

if not hasattr(_np, "row_stack"):  # numba-cuda still calls np.row_stack, removed in numpy 2.5
    _np.row_stack = _np.vstack

from tsn_mpi.backends.gpu.device import gpu_available, require_gpu, select_device
from tsn_mpi.backends.gpu.learner import GpuLearner
from tsn_mpi.backends.gpu.simulator import GpuSimulator, restore_trial_state, trial_state

__all__ = [
    "GpuLearner",
    "GpuSimulator",
    "gpu_available",
    "require_gpu",
    "restore_trial_state",
    "select_device",
    "trial_state",
]
