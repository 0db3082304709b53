"""GpuLearner: per-neuron P on the device and the fast-mode RLS update (spec §4.3), packed only.

P lives on the device as ``(n_packed, n_owned)`` in the storage precision (float64, float32 or
float16), column i = neuron i's packed upper triangle, so the one-thread-per-neuron kernel reads
coalesced words.  Weights are the device copies shared with the GpuSimulator
(:func:`~.device.shared_weights`); :meth:`GpuLearner.sync_to_host` copies them back into
``net.w_in`` / ``net.w_ff`` before checkpoints.  Files keep the CPU layout: :meth:`p_rows` and
the ``p_rows`` argument are (n_owned, n_packed) host arrays, transposed on the device in chunks.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from tsn_mpi.backends.gpu import kernels as K
from tsn_mpi.backends.gpu.device import shared_weights, to_device, weights_to_host
from tsn_mpi.backends.gpu.simulator import launch_shape
from tsn_mpi.errors import ConfigError

STORAGE_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
CHUNK_BYTES = 256 << 20  # staging buffer for P transposes


def is_device_array(x) -> bool:
    """True for numba device arrays (also simulated ones) and other CUDA-array-interface objects
    (e.g. CuPy arrays)."""
    if isinstance(x, np.ndarray):
        return False
    return bool(getattr(x, "__cuda_ndarray__", False)) or hasattr(x, "__cuda_array_interface__")


def _device(x, dtype):
    """A device array for x: device arrays pass through (dtype checked), host arrays are
    copied."""
    if not is_device_array(x):
        return to_device(np.asarray(x, dtype=dtype))
    arr = x if getattr(x, "__cuda_ndarray__", False) else cuda.as_cuda_array(x)
    if arr.dtype != np.dtype(dtype):
        raise ValueError(f"device array of dtype {arr.dtype}, expected {np.dtype(dtype)}")
    return arr


class GpuLearner:
    """RLS state of the owned neurons on the GPU; same interface as ``learn.learner.Learner``."""

    def __init__(
        self, cfg, d, net, p_rows: np.ndarray | None = None, history=None, hist_count: int = 0
    ) -> None:
        lr = cfg.learning
        if lr.mode != "fast":
            raise ConfigError(
                f"learning.mode = {lr.mode!r} is not supported with run.backend = 'gpu': use "
                "learning.mode = 'fast' (or run.backend = 'cpu')"
            )
        if lr.p_storage != "packed":
            raise ConfigError(
                f"learning.p_storage = {lr.p_storage!r} is not supported with run.backend = "
                "'gpu': use learning.p_storage = 'packed'"
            )
        self.cfg, self.d, self.net = cfg, d, net
        self.mode, self.storage, self.precision = lr.mode, lr.p_storage, lr.p_precision
        self.textbook = lr.gain == "textbook"
        self.apply = not lr.benchmark
        self.hist, self.hist_count = None, 0
        n, m, lx = net.n_owned, net.pl_pre.shape[1], d.l_ff
        self.n_owned, self.m, self.l_ff = n, m, lx
        self.n_rls = lx + m
        self.n_packed = self.n_rls * (self.n_rls + 1) // 2
        self.dtype = np.dtype(STORAGE_DTYPES[self.precision])
        self.pre_t = to_device(np.asarray(net.pl_pre, dtype=np.int32).T)
        self.P = cuda.device_array((max(self.n_packed, 1), max(n, 1)), dtype=self.dtype)
        self.blocks, self.threads = launch_shape(n)
        if p_rows is None:
            w_t, _ = shared_weights(net)
            K.fill_p0[self.blocks, self.threads](
                self.P,
                self.pre_t,
                w_t,
                lx,
                m,
                float(lr.penlambda),
                float(lr.penmu),
                float(lr.penlam_ff),
            )
        else:
            self._upload_rows(np.asarray(p_rows))
        self.bad_d = to_device(np.zeros(n, np.uint8))
        self.nbad_d = to_device(np.zeros(1, np.int32))
        self._zero = np.zeros(1, np.int32)
        self._nbad_h = np.zeros(1, np.int32)
        self.target_d = to_device(np.zeros(n, np.float32))
        self.x_ff_d = to_device(np.zeros(lx, np.float64))
        self.kernel = K.rls_fast_packed(lx, m, self.dtype.name)

    # ---------------------------------------------------------------------- P transfers
    def _chunk(self) -> int:
        return max(1, CHUNK_BYTES // max(1, self.n_packed * self.dtype.itemsize))

    def _transpose_grid(self, rows: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return (-(-rows // 16), min(-(-self.n_packed // 16), 4096)), (16, 16)

    def _upload_rows(self, rows: np.ndarray) -> None:
        n, L = self.n_owned, self.n_packed
        if rows.shape != (n, L):
            raise ValueError(f"P rows have shape {rows.shape}, expected ({n}, {L}) packed")
        step = self._chunk()
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            src = cuda.to_device(np.ascontiguousarray(rows[lo:hi], dtype=self.dtype))
            grid, block = self._transpose_grid(hi - lo)
            K.rows_to_cols[grid, block](src, self.P, lo)
        cuda.synchronize()

    def p_rows(self) -> np.ndarray:
        """P of the owned neurons, one row per neuron (n_owned, n_packed), storage precision."""
        n, L = self.n_owned, self.n_packed
        out = np.empty((n, L), dtype=self.dtype)
        step = self._chunk()
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            dst = cuda.device_array((hi - lo, L), dtype=self.dtype)
            grid, block = self._transpose_grid(hi - lo)
            K.cols_to_rows[grid, block](self.P, dst, lo)
            dst.copy_to_host(out[lo:hi])
        return out

    # ---------------------------------------------------------------------------- update
    def update(self, r_now, x_ff, u_bal, target_row) -> int:
        """One RLS step for every owned neuron; returns the number of non-finite neurons.

        r_now: (N,) float64 traces (device, from GpuSimulator.traces_at); x_ff: (>= l_ff,)
        float64 (device or host); u_bal: (n_owned,) float32 (device or host); target_row:
        (n_owned,) float32 (host numpy is copied, a device array is used as is).
        """
        if self.n_owned == 0:
            return 0
        r = _device(r_now, np.float64)
        if self.l_ff:
            x = _device(x_ff, np.float64)
        else:
            x = self.x_ff_d
        ub = _device(u_bal, np.float32)
        if is_device_array(target_row):
            tgt = _device(target_row, np.float32)
        else:
            self.target_d.copy_to_device(np.ascontiguousarray(target_row, dtype=np.float32))
            tgt = self.target_d
        w_t, w_ff_t = shared_weights(self.net)
        self.nbad_d.copy_to_device(self._zero)
        self.kernel[self.blocks, self.threads](
            self.P,
            self.pre_t,
            w_t,
            r,
            x,
            w_ff_t,
            ub,
            tgt,
            int(self.textbook),
            int(self.apply),
            self.bad_d,
            self.nbad_d,
        )
        self.nbad_d.copy_to_host(self._nbad_h)
        return int(self._nbad_h[0])

    def bad_lids(self) -> np.ndarray:
        return np.nonzero(self.bad_d.copy_to_host()[: self.n_owned])[0]

    def sync_to_host(self) -> None:
        """Copy the device weights into ``net.w_in`` / ``net.w_ff`` (before checkpoints)."""
        weights_to_host(self.net)

    def nbytes(self) -> int:
        return int(self.n_packed * self.n_owned * self.dtype.itemsize)
