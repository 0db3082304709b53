"""GPU selection (one GPU per rank), the availability check, and the device copy of the weights.

The GPU backend uses numba.cuda only (kernels and device arrays); nothing here runs at import.
``select_device(comm)`` is called once when a run starts: rank r uses GPU
``node_local_rank % n_devices``.  Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, used by
the tests) every check passes and there is one simulated device.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from numba import config as numba_config
from numba import cuda

from tsn_mpi.backends.gpu import cudasim_fixes
from tsn_mpi.errors import LaunchError

LOCAL_RANK_VARS = (
    "OMPI_COMM_WORLD_LOCAL_RANK",  # Open MPI
    "MPI_LOCALRANKID",  # MPICH / Intel MPI (hydra)
    "SLURM_LOCALID",  # srun
    "MV2_COMM_WORLD_LOCAL_RANK",  # MVAPICH2
    "PALS_LOCAL_RANKID",  # Cray PALS
)
HINT = "install 'tsn-mpi[gpu]' (numba-cuda) on a machine with an NVIDIA GPU and driver"
SELECTED: int | None = None  # the device select_device bound this process to (monitor.py)


def simulated() -> bool:
    """True when numba runs CUDA kernels in its CPU simulator."""
    return bool(numba_config.ENABLE_CUDASIM)


def node_local_rank(comm) -> int:
    """This process's rank among the ranks of its node (launcher env vars, else comm.rank)."""
    for var in LOCAL_RANK_VARS:
        v = os.environ.get(var, "").strip()
        if v.isdigit():
            return int(v)
    return int(comm.rank)


def driver_problem() -> str | None:
    """Why the CUDA driver cannot be used, as one short phrase (None: devices are visible)."""
    if simulated():
        return None
    try:
        if not cuda.is_available() or len(cuda.gpus) == 0:
            return "no CUDA device visible (driver missing, or CUDA_VISIBLE_DEVICES empty)"
    except Exception as exc:  # noqa: BLE001 - any driver error means "not usable"
        return f"the CUDA driver cannot be used ({_first_line(exc)})"
    return None


def _kernel_problem() -> str | None:
    """Compile and launch a trivial kernel on the current device (creates its context)."""
    try:
        from tsn_mpi.backends.gpu.loop import smoke

        out = cuda.device_array(4, dtype=np.int64)
        smoke[1, 32](out)
        if list(out.copy_to_host()) != [1, 2, 3, 4]:
            return "a test kernel gave wrong results"
    except Exception as exc:  # noqa: BLE001 - NVVM missing, unsupported GPU, ...
        return f"numba cannot compile or launch a CUDA kernel ({_first_line(exc)})"
    return None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def _fail(why: str) -> LaunchError:
    return LaunchError(f"run.backend = 'gpu' (or --gpu) but {why}: {HINT}")


def gpu_available() -> bool:
    """True if the CUDA driver sees a device (False under the simulator).  Cheap: creates no
    context and compiles nothing, so :func:`select_device` can still pick any device."""
    return not simulated() and driver_problem() is None


def require_gpu() -> None:
    """Raise LaunchError (one line) unless a kernel compiles and runs on the current device
    (device 0 if none was selected); passes under the simulator."""
    why = driver_problem()
    if why is None and not simulated():
        why = _kernel_problem()
    if why is not None:
        raise _fail(why)


def select_device(comm) -> int:
    """Bind this rank to GPU ``node_local_rank % n_devices`` and check it runs kernels; call it
    before any other GPU work of the process.  Returns the device index."""
    why = driver_problem()
    if why is not None:
        raise _fail(why)
    if simulated():
        cudasim_fixes.apply()
        return 0
    # numba warns once per small grid ("under-utilization"): expected for small networks
    from numba.core.errors import NumbaPerformanceWarning

    warnings.filterwarnings("ignore", category=NumbaPerformanceWarning, message=".*[Gg]rid size")
    dev = node_local_rank(comm) % len(cuda.gpus)
    cuda.select_device(dev)
    why = _kernel_problem()
    if why is not None:
        raise _fail(why)
    global SELECTED
    SELECTED = dev
    return dev


# --------------------------------------------------------------------- weights on the device


def _padded(a: np.ndarray) -> np.ndarray:
    """``a`` as C-contiguous, with every zero-length axis grown to 1 (zeros): kernels never see
    empty arrays (sizes travel separately)."""
    a = np.ascontiguousarray(a)
    if a.size:
        return a
    return np.zeros(tuple(max(1, s) for s in a.shape) or (1,), dtype=a.dtype)


def to_device(a: np.ndarray, dtype=None):
    """Upload ``a`` (cast to dtype, C order, empty axes padded to 1)."""
    return cuda.to_device(_padded(np.asarray(a, dtype=dtype)))


def shared_weights(net):
    """Device copies ``(w_in (n_owned, m), w_ff (n_owned, l_ff))`` float32, the host layout.

    The simulator and the learner of one rank must use the same device weights (the learner
    updates them, the delivery kernel reads them), so they are cached in ``net.extra`` and
    re-uploaded only if ``net.w_in`` / ``net.w_ff`` were replaced by other host arrays.
    Empty axes are padded to 1.  :func:`sync_to_host` copies them back.
    """
    cache = net.extra.get("_gpu_weights")
    if cache is None or cache[0] is not net.w_in or cache[1] is not net.w_ff:
        w = to_device(np.asarray(net.w_in, dtype=np.float32))
        wff = to_device(np.asarray(net.w_ff, dtype=np.float32))
        cache = (net.w_in, net.w_ff, w, wff)
        net.extra["_gpu_weights"] = cache
    return cache[2], cache[3]


def weights_to_host(net) -> None:
    """Copy the device weights back into ``net.w_in`` and ``net.w_ff`` (in place)."""
    cache = net.extra.get("_gpu_weights")
    if cache is None:
        return
    _, _, w, wff = cache
    if net.w_in.size:
        net.w_in[...] = w.copy_to_host()[: net.w_in.shape[0], : net.w_in.shape[1]]
    if net.w_ff.size:
        net.w_ff[...] = wff.copy_to_host()[: net.w_ff.shape[0], : net.w_ff.shape[1]]


def on_sync(net, key: str, fn) -> None:
    """Register ``fn()`` to run in :func:`sync_to_host` (e.g. the simulator's GLIF state)."""
    net.extra.setdefault("_gpu_sync", {})[key] = fn


def sync_to_host(net) -> None:
    """Weights and every registered device state back to the host (before checkpoints)."""
    weights_to_host(net)
    for fn in net.extra.get("_gpu_sync", {}).values():
        fn()
