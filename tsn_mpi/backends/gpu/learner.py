"""GpuLearner: per-neuron P on the device and the fast-mode RLS update (spec §4.3), packed only.

P lives on the device as ``(n_owned, n_packed)`` in the storage precision (float64, float32,
float16, or int16/int32 with a scale), row i = neuron i's packed upper triangle: the layout of
the checkpoint files, and the one the warp-per-neuron kernel of :mod:`~.rls` reads coalesced.
Weights are the device copies shared with the GpuSimulator (:func:`~.device.shared_weights`);
:meth:`GpuLearner.sync_to_host` copies them back into ``net.w_in`` / ``net.w_ff`` (and the GLIF
state into ``cell.state``) before checkpoints.

Integer storage (spec §4.3 PScale): the device holds ``round(p_scale * P)``.  Float rows given
to the constructor (the initial P of ``tsn-mpi init``) are scaled on upload; integer rows (GPU
checkpoints) already are, and :meth:`p_rows` returns them as stored.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from tsn_mpi.backends.gpu import cudasim_fixes
from tsn_mpi.backends.gpu import rls as R
from tsn_mpi.backends.gpu.device import shared_weights, sync_to_host, to_device
from tsn_mpi.errors import ConfigError

STORAGE_DTYPES = {
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "int16": np.int16,
    "int32": np.int32,
}
AUTO_SCALE = {"int16": 2.0**14, "int32": 2.0**30}
CHUNK_BYTES = 256 << 20  # host staging for P uploads / downloads


def p_scale_of(lr) -> float:
    """The scale of P storage for config section ``learning``: ``p_scale`` for integer
    precisions ('auto': 2^14 for int16, 2^30 for int32), 1 for float precisions."""
    if lr.p_precision not in AUTO_SCALE:
        return 1.0
    s = getattr(lr, "p_scale", "auto")
    return AUTO_SCALE[lr.p_precision] if s == "auto" else float(s)


def rows_to_storage(rows: np.ndarray, dtype: np.dtype, scale: float) -> np.ndarray:
    """P rows as stored: integer storage rounds ``scale * rows`` half up and clamps it (float
    rows) or takes integer rows as already scaled; float storage casts."""
    dtype = np.dtype(dtype)
    if dtype.kind != "i":
        return np.ascontiguousarray(rows, dtype=dtype)
    if rows.dtype.kind in "iu":
        if rows.dtype != dtype:
            raise ConfigError(
                f"the checkpoint holds P as {rows.dtype}, learning.p_precision = "
                f"{dtype.name!r}: integer P cannot change type"
            )
        return np.ascontiguousarray(rows)
    lim = R.INT_LIMITS[dtype.name]
    v = np.floor(np.asarray(rows, np.float64) * scale + 0.5)
    return np.clip(v, -lim, lim).astype(dtype)


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
    """RLS state of the owned neurons on the GPU; the interface of
    :class:`~tsn_mpi.backends.cpu.learner.CpuLearner`.

    ``kernel``: 'block' (one thread block per neuron, P row in shared memory), 'warp' (one warp
    per neuron, row in shared memory), 'streamed' (one warp per neuron, P read twice from
    device memory) or None (config key ``gpu.rls_kernel``: 'auto' = block when the row fits,
    else streamed); ``gpu.rls_unroll`` sets the block kernel's staging group (loads per thread).
    """

    def __init__(
        self, cfg, d, net, p_rows: np.ndarray | None = None, history=None, hist_count: int = 0,
        kernel: str | None = None,
    ) -> None:  # fmt: skip
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
        if lr.p_precision not in STORAGE_DTYPES:
            raise ConfigError(f"learning.p_precision = {lr.p_precision!r} is not supported")
        cudasim_fixes.apply()  # no-op on a GPU
        self.cfg, self.d, self.net = cfg, d, net
        self.mode, self.storage, self.precision = lr.mode, lr.p_storage, lr.p_precision
        self.textbook = lr.gain == "textbook"
        self.apply = not lr.benchmark
        self.hist, self.hist_count = None, 0
        n, m, lx = net.n_owned, net.pl_pre.shape[1], d.l_ff
        self.n_owned, self.m, self.l_ff = n, m, lx
        self.n_rls = lx + m
        self.n_packed = R.packed_len(self.n_rls)
        self.dtype = np.dtype(STORAGE_DTYPES[self.precision])
        self.scale = p_scale_of(lr)
        self.lim = R.INT_LIMITS.get(self.precision, 0)
        self.pre = to_device(np.asarray(net.pl_pre, dtype=np.int32))
        self.P = cuda.device_array((max(n, 1), max(self.n_packed, 1)), dtype=self.dtype)
        if p_rows is None:
            w, _ = shared_weights(net)
            R.fill_p0[max(1, -(-n // 4)), 4 * R.WARP](
                self.P, self.pre, w, lx, m, float(lr.penlambda), float(lr.penmu),
                float(lr.penlam_ff), self.scale, self.lim,
            )  # fmt: skip
        else:
            self._upload_rows(p_rows)
        self.bad_d = to_device(np.zeros(n, np.uint8))
        self.nbad_d = to_device(np.zeros(1, np.int32))
        self._zero = np.zeros(1, np.int32)
        self._nbad_h = np.zeros(1, np.int32)
        self.target_d = to_device(np.zeros(n, np.float32))
        self.x_ff_d = to_device(np.zeros(lx, np.float64))
        gpu = cfg.gpu
        kind = kernel or (None if gpu.rls_kernel == "auto" else gpu.rls_kernel)
        self.rls = R.rls_launch(lx, m, self.dtype.name, kind, int(gpu.rls_unroll))

    # ---------------------------------------------------------------------- P transfers
    def _chunk(self) -> int:
        return max(1, CHUNK_BYTES // max(1, self.n_packed * self.dtype.itemsize))

    def _upload_rows(self, rows) -> None:
        """Rows (n_owned, n_packed): a numpy array or any object with ``shape``, ``dtype`` and
        row slices (e.g. rows read lazily from a checkpoint)."""
        n, L = self.n_owned, self.n_packed
        if not hasattr(rows, "shape"):
            rows = np.asarray(rows)
        if tuple(rows.shape) != (n, L):
            raise ValueError(f"P rows have shape {rows.shape}, expected ({n}, {L}) packed")
        step = self._chunk()
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            block = np.asarray(rows[lo:hi])
            self.P[lo:hi].copy_to_device(rows_to_storage(block, self.dtype, self.scale))
        cuda.synchronize()

    def p_rows(self) -> np.ndarray:
        """P of the owned neurons, one row per neuron (n_owned, n_packed), as stored (integer
        storage: scaled by :attr:`scale`)."""
        n, L = self.n_owned, self.n_packed
        out = np.empty((n, L), dtype=self.dtype)
        step = self._chunk()
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            self.P[lo:hi].copy_to_host(out[lo:hi])
        return out

    def p_rows_lazy(self) -> np.ndarray:
        """Same as :meth:`p_rows` (the host copy is made once, in blocks)."""
        return self.p_rows()

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
        x = _device(x_ff, np.float64) if self.l_ff else self.x_ff_d
        ub = _device(u_bal, np.float32)
        if is_device_array(target_row):
            tgt = _device(target_row, np.float32)
        else:
            self.target_d.copy_to_device(np.ascontiguousarray(target_row, dtype=np.float32))
            tgt = self.target_d
        w, w_ff = shared_weights(self.net)
        self.nbad_d.copy_to_device(self._zero)
        self.rls(
            self.n_owned, self.P, self.pre, w, r, x, w_ff, ub, tgt, self.scale,
            int(self.textbook), int(self.apply), self.bad_d, self.nbad_d,
        )  # fmt: skip
        self.nbad_d.copy_to_host(self._nbad_h)
        return int(self._nbad_h[0])

    def bad_lids(self) -> np.ndarray:
        return np.nonzero(self.bad_d.copy_to_host()[: self.n_owned])[0]

    def sync_to_host(self) -> None:
        """Copy the device weights (and GLIF state) to the host arrays (before checkpoints)."""
        sync_to_host(self.net)

    def nbytes(self) -> int:
        return int(self.n_packed * self.n_owned * self.dtype.itemsize)
