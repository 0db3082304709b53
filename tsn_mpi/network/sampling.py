"""Jitted sampling without replacement (Floyd's algorithm) on per-neuron streams."""

from __future__ import annotations

import numpy as np
from numba import njit

from tsn_mpi.rng import below


@njit(cache=True)
def floyd_sample(state, i, n, k, table, out):  # pragma: no cover - jitted
    """Draw ``k`` distinct integers from [0, n) into ``out[:k]`` (unsorted), stream state[i].

    ``table`` is scratch of a power-of-two size >= 2k filled with -1 (restored on return).
    """
    mask = table.size - 1
    cnt = 0
    for j in range(n - k, n):
        t = below(state, i, j + 1)
        # membership test for t
        h = (t * 0x9E3779B1) & mask
        found = False
        while table[h] != -1:
            if table[h] == t:
                found = True
                break
            h = (h + 1) & mask
        val = j if found else t
        h = (val * 0x9E3779B1) & mask
        while table[h] != -1:
            h = (h + 1) & mask
        table[h] = val
        out[cnt] = val
        cnt += 1
    for q in range(k):  # clear only the touched slots
        val = out[q]
        h = (val * 0x9E3779B1) & mask
        while table[h] != -1:
            table[h] = -1
            h = (h + 1) & mask
    return cnt


def scratch_table(k: int) -> np.ndarray:
    size = 1
    while size < 2 * max(k, 1):
        size *= 2
    return np.full(size, -1, dtype=np.int64)
