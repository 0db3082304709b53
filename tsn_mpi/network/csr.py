"""Jitted helpers for building sparse structures in O(nnz): counting sorts and weight codes."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def counting_order(keys, n_keys):  # pragma: no cover - jitted
    """Stable permutation sorting ``keys`` (ints in [0, n_keys)), and the CSR indptr."""
    indptr = np.zeros(n_keys + 1, dtype=np.int64)
    for k in keys:
        indptr[k + 1] += 1
    for k in range(n_keys):
        indptr[k + 1] += indptr[k]
    fill = indptr[:-1].copy()
    order = np.empty(keys.size, dtype=np.int64)
    for i in range(keys.size):
        k = keys[i]
        order[fill[k]] = i
        fill[k] += 1
    return order, indptr


@njit(cache=True)
def small_codebook(w, max_values):  # pragma: no cover - jitted
    """Codes of ``w`` into a table of at most ``max_values`` distinct values.

    Returns (codes uint16, table float32, ok); ok is False when there are more distinct values.
    """
    table = np.empty(max_values, dtype=np.float32)
    n_tab = 0
    codes = np.empty(w.size, dtype=np.uint16)
    last = 0
    for i in range(w.size):
        x = w[i]
        if n_tab > 0 and table[last] == x:
            codes[i] = last
            continue
        found = -1
        for q in range(n_tab):
            if table[q] == x:
                found = q
                break
        if found < 0:
            if n_tab == max_values:
                return codes, table[:n_tab], False
            table[n_tab] = x
            found = n_tab
            n_tab += 1
        codes[i] = found
        last = found
    return codes, table[:n_tab], True


@njit(cache=True)
def remap_codes(codes, mapping):  # pragma: no cover - jitted
    """uint8 codes through ``mapping`` (at most 256 table entries)."""
    out = np.empty(codes.size, dtype=np.uint8)
    for i in range(codes.size):
        out[i] = mapping[codes[i]]
    return out


@njit(cache=True)
def invert_incoming(in_indptr, in_pre, n_cells):  # pragma: no cover - jitted
    """Outgoing map from incoming CSR: for each global pre, the (local post, position) pairs.

    Returns (out_indptr (n_cells+1,), out_post int32, out_pos int64 index into in_pre), ordered
    by pre, then by local post.
    """
    nnz = in_pre.size
    out_indptr = np.zeros(n_cells + 1, dtype=np.int64)
    for e in range(nnz):
        out_indptr[in_pre[e] + 1] += 1
    for j in range(n_cells):
        out_indptr[j + 1] += out_indptr[j]
    fill = out_indptr[:-1].copy()
    out_post = np.empty(nnz, dtype=np.int32)
    out_pos = np.empty(nnz, dtype=np.int64)
    for post in range(in_indptr.size - 1):
        for e in range(in_indptr[post], in_indptr[post + 1]):
            j = in_pre[e]
            out_post[fill[j]] = post
            out_pos[fill[j]] = e
            fill[j] += 1
    return out_indptr, out_post, out_pos
