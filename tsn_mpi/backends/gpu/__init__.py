"""GPU backend: numba.cuda kernels on numba device arrays, one GPU per rank.

- :mod:`~tsn_mpi.backends.gpu.device`: ``select_device(comm)``, ``require_gpu()``,
  ``gpu_available()``, the device weights shared by simulator and learner;
- :mod:`~tsn_mpi.backends.gpu.loop`: the time-loop kernels (step, delivery, traces), with
  :mod:`~tsn_mpi.backends.gpu.rng` (device random streams) and :mod:`~tsn_mpi.backends.gpu.glif`;
- :mod:`~tsn_mpi.backends.gpu.rls`: the RLS kernels;
- :mod:`~tsn_mpi.backends.gpu.simulator`: ``GpuSimulator`` (the API of ``CpuSimulator``);
- :mod:`~tsn_mpi.backends.gpu.learner`: ``GpuLearner`` (the API of ``CpuLearner``).

Importing this package needs numba only (no GPU, no CUDA toolkit); kernels compile on first
launch.  Under ``NUMBA_ENABLE_CUDASIM=1`` everything runs in numba's CUDA simulator (tests).
"""

from __future__ import annotations

import numpy as _np

# numba-cuda registers an overload of np.row_stack (removed in numpy 2.5) when it is imported:
# give numpy the alias first, or importing numba.cuda fails (the one import-time side effect)
if not hasattr(_np, "row_stack"):
    _np.row_stack = _np.vstack

from tsn_mpi.backends import Backend  # noqa: E402
from tsn_mpi.backends.gpu.device import (  # noqa: E402
    gpu_available,
    require_gpu,
    select_device,
    simulated,
)
from tsn_mpi.backends.gpu.learner import GpuLearner  # noqa: E402
from tsn_mpi.backends.gpu.simulator import GpuSimulator  # noqa: E402


def describe() -> str:
    """The device this process uses, in words (after :func:`select_device`)."""
    if simulated():
        return "gpu (numba's CUDA simulator: kernels run on the CPU, slowly)"
    from numba import cuda

    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return f"gpu ({name}, device {dev.id})"


BACKEND = Backend("gpu", select_device, GpuSimulator, GpuLearner, describe)

__all__ = [
    "BACKEND",
    "GpuLearner",
    "GpuSimulator",
    "gpu_available",
    "require_gpu",
    "select_device",
]
