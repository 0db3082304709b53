"""Default plastic connectivity plugin: Erdős–Rényi partners from the active neurons (spec §9.2).

Each postsynaptic neuron draws ``l_exc`` distinct excitatory and ``l_inh`` distinct inhibitory
presynaptic partners (autapses allowed, as in the reference) from the top ``frac`` of each
population ranked by their spike count in the init trial.  Deviation from the reference: the
inhibitory pool has round(frac*Ni) neurons (the reference used Ne, spec pitfall 25).  Partners are
stored sorted by global id within each population, E first.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tsn_mpi import rng
from tsn_mpi.network.sampling import floyd_sample, scratch_table


@njit(cache=True)
def _pick(seed, gid_lo, n_owned, pool_e, pool_i, l_exc, l_inh, table):  # pragma: no cover
    m = l_exc + l_inh
    pre = np.empty((n_owned, m), dtype=np.int32)
    buf = np.empty(max(l_exc, l_inh, 1), dtype=np.int64)
    st = np.empty(1, dtype=np.uint64)
    for p in range(n_owned):
        st[0] = rng.stream_state(seed, rng.PLASTIC, gid_lo + p, 0)
        floyd_sample(st, 0, pool_e.size, l_exc, table, buf)
        sel = np.sort(pool_e[buf[:l_exc]])
        for q in range(l_exc):
            pre[p, q] = sel[q]
        floyd_sample(st, 0, pool_i.size, l_inh, table, buf)
        sel = np.sort(pool_i[buf[:l_inh]])
        for q in range(l_inh):
            pre[p, l_exc + q] = sel[q]
    return pre


def eligible(ns: np.ndarray, lo: int, hi: int, frac: float) -> np.ndarray:
    """Ids in [lo, hi) of the round(frac*(hi-lo)) highest spike counts (stable), sorted."""
    count = int(round(frac * (hi - lo)))
    order = np.argsort(-ns[lo:hi], kind="stable")[:count]
    return np.sort(order + lo).astype(np.int64)


def erdos_renyi(ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plastic partners and initial weights of the owned neurons.

    Returns ``pre`` (n_owned, m) int32 global ids (-1 marks padding in custom plugins),
    ``w`` (n_owned, m) float32 (per pre/post type: ``plastic.wpee`` ... ``wpii``), ``w_ff``
    (n_owned, l_ff) float32.
    """
    d, cfg = ctx.derived, ctx.cfg
    ns = ctx.init["ns"]
    pool_e = eligible(ns, 0, d.n_exc, cfg.plastic.frac)
    pool_i = eligible(ns, d.n_exc, d.n_cells, cfg.plastic.frac)
    n_owned = len(ctx.owned)
    pre = _pick(
        ctx.seed, ctx.owned.start, n_owned, pool_e, pool_i, d.l_exc, d.l_inh,
        scratch_table(max(d.l_exc, d.l_inh)),
    )
    w = np.empty((n_owned, d.n_plastic), dtype=np.float32)
    post_inh = np.arange(ctx.owned.start, ctx.owned.stop) >= d.n_exc
    for is_inh in (False, True):  # the reference's wpee, wpei (post E) and wpie, wpii (post I)
        rows = post_inh == is_inh
        w[rows, : d.l_exc] = d.wp[is_inh][0]
        w[rows, d.l_exc :] = d.wp[is_inh][1]
    w_ff = np.zeros((n_owned, d.l_ff), dtype=np.float32)
    if d.l_ff > 0 and cfg.plastic.w_ff != 0:
        for p, gid in enumerate(ctx.owned):
            g = ctx.generator(rng.PLASTIC, gid, 1)
            w_ff[p] = g.standard_normal(d.l_ff) * cfg.plastic.w_ff
    return pre, w, w_ff
