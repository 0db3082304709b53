"""Argument checks shared by the Python entry points of the CPU RLS kernels
(:func:`~tsn_mpi.backends.cpu.rls_fast.rls_fast` and
:func:`~tsn_mpi.backends.cpu.rls_small.rls_small`)."""

from __future__ import annotations

import numpy as np


def check_common_arrays(pre, w, r, x_ff, w_ff, u_bal, target, bad):
    """Validate the arrays shared by all RLS kernels.

    Read-only inputs are converted to the kernel's dtype if needed (no copy when they already
    match); the arrays updated in place (w, w_ff, bad) must already have the right dtype.
    Returns (pre, r, x_ff, u_bal, target) ready for the kernel.  ``pre`` ids are not range
    checked (an id >= len(r) reads out of bounds).
    """
    pre, r, x_ff, u_bal, target = (
        np.ascontiguousarray(a, dtype=dt)
        for a, dt in ((pre, np.int32), (r, np.float64), (x_ff, np.float64),
                      (u_bal, np.float32), (target, np.float32))
    )  # fmt: skip
    for name, a, dtype in (
        ("w", w, np.float32),
        ("w_ff", w_ff, np.float32),
        ("bad", bad, np.uint8),
    ):
        if not isinstance(a, np.ndarray) or a.dtype != dtype or not a.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous {np.dtype(dtype)} array (in place)")
    if pre.ndim != 2 or r.ndim != 1 or x_ff.ndim != 1:
        raise ValueError(f"pre {pre.shape}, r {r.shape}, x_ff {x_ff.shape}: expected 2-D, 1-D, 1-D")
    n_owned, m = pre.shape
    expect = dict(
        w=(w, (n_owned, m)),
        w_ff=(w_ff, (n_owned, x_ff.shape[0])),
        u_bal=(u_bal, (n_owned,)),
        target=(target, (n_owned,)),
        bad=(bad, (n_owned,)),
    )
    for name, (a, shape) in expect.items():
        if a.shape != shape:
            raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    return pre, r, x_ff, u_bal, target

