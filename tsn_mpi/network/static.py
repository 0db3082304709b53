"""Default static (balanced) connectivity plugin: fixed out-degree Erdős–Rényi (spec §9.1).

Every presynaptic neuron i draws 2K distinct postsynaptic partners among the N-1 other neurons
(no autapses) from its own stream (seed, STATIC, i); weights depend on the (pre, post)
populations.  Plugins return outgoing lists for the presynaptic ids they are given, so the
builder can generate each rank's share and redistribute connections to the ranks owning the
postsynaptic neurons.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from tsn_mpi import rng
from tsn_mpi.network.sampling import floyd_sample, scratch_table


@njit(cache=True)
def sorted_partners(seed, pre, n, k2, table, buf, st):  # pragma: no cover - jitted
    """``buf[:k2]`` = the 2K postsynaptic partners of ``pre`` (sorted, never ``pre`` itself),
    drawn from its stream (seed, STATIC, pre); ``table``/``st`` are scratch (see floyd_sample)."""
    st[0] = rng.stream_state(seed, rng.STATIC, pre, 0)
    floyd_sample(st, 0, n - 1, k2, table, buf)
    for q in range(k2):
        if buf[q] >= pre:
            buf[q] += 1
    buf.sort()


@njit(cache=True, parallel=True)
def _er_out(seed, pre_lo, pre_hi, n, k2, n_exc, w_ee, w_ie, w_ei, w_ii, tsize,
            n_blocks):  # pragma: no cover - jitted
    """Outgoing CSR of pres [pre_lo, pre_hi), 2K partners each, in parallel over ``n_blocks``
    blocks of pres (each pre has its own stream and its own slice of the output: the result
    does not depend on the thread count)."""
    npre = pre_hi - pre_lo
    indptr = np.arange(npre + 1, dtype=np.int64) * k2
    post = np.empty(npre * k2, dtype=np.int32)
    weight = np.empty(npre * k2, dtype=np.float32)
    n_blocks = max(1, min(npre, n_blocks))
    size = -(-npre // n_blocks)
    for b in prange(n_blocks):
        table = np.full(tsize, -1, dtype=np.int64)  # scratch of this block (see floyd_sample)
        buf = np.empty(k2, dtype=np.int64)
        st = np.empty(1, dtype=np.uint64)
        for p in range(b * size, min(npre, (b + 1) * size)):
            pre = pre_lo + p
            sorted_partners(seed, pre, n, k2, table, buf, st)
            pre_exc = pre < n_exc
            for q in range(k2):
                j = buf[q]
                post[p * k2 + q] = j
                post_exc = j < n_exc
                if pre_exc:
                    weight[p * k2 + q] = w_ee if post_exc else w_ie
                else:
                    weight[p * k2 + q] = w_ei if post_exc else w_ii
    return indptr, post, weight


def erdos_renyi(ctx, pre: range) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outgoing static lists of the presynaptic neurons in ``pre``.

    Returns CSR ``(indptr (len(pre)+1,), post gids (int32), weights (float32))``, posts sorted.
    """
    d = ctx.derived
    k2 = 2 * d.k
    if k2 == 0 or len(pre) == 0:
        return np.zeros(len(pre) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    (w_ee, w_ie), (w_ei, w_ii) = d.w_static
    return _er_out(
        ctx.seed, pre.start, pre.stop, d.n_cells, k2, d.n_exc, w_ee, w_ie, w_ei, w_ii,
        scratch_table(k2).size, 16 * get_num_threads(),
    )
