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


def invert_incoming(in_indptr, in_pre, n_cells):
    """Outgoing map from incoming CSR: for each global pre, the (local post, position) pairs.

    Returns (out_indptr (n_cells+1,), out_post int32, out_pos int64 index into in_pre), ordered
    by pre, then by local post.
    """
    positions = np.arange(in_pre.size, dtype=np.int64)
    return invert_incoming_codes(in_indptr, in_pre, positions, n_cells)


@njit(cache=True)
def invert_incoming_codes(in_indptr, in_pre, in_code, n_cells):  # pragma: no cover - jitted
    """Outgoing map from incoming CSR with each synapse's weight code carried along.

    Returns (out_indptr (n_cells+1,) int64, out_post int32 local post ids, out_code) ordered by
    pre, then by local post; ``in_code`` may be empty (weights by population, no codes).
    """
    nnz = in_pre.size
    out_indptr = np.zeros(n_cells + 1, dtype=np.int64)
    for e in range(nnz):
        out_indptr[in_pre[e] + 1] += 1
    for j in range(n_cells):
        out_indptr[j + 1] += out_indptr[j]
    fill = out_indptr[:-1].copy()
    out_post = np.empty(nnz, dtype=np.int32)
    with_codes = in_code.size > 0
    out_code = np.empty(nnz if with_codes else 0, dtype=in_code.dtype)
    for post in range(in_indptr.size - 1):
        for e in range(in_indptr[post], in_indptr[post + 1]):
            j = in_pre[e]
            out_post[fill[j]] = post
            if with_codes:
                out_code[fill[j]] = in_code[e]
            fill[j] += 1
    return out_indptr, out_post, out_code


@njit(cache=True)
def population_rule(pre, post, w, n_exc):  # pragma: no cover - jitted
    """Does ``w`` depend only on the populations of (pre, post)?  Returns (ok, table (4,)
    float32, seen (4,) bool) with table[2*(pre is I) + (post is I)] the weight of each pair."""
    table = np.zeros(4, dtype=np.float32)
    seen = np.zeros(4, dtype=np.bool_)
    for e in range(w.size):
        c = 2 * (1 if pre[e] >= n_exc else 0) + (1 if post[e] >= n_exc else 0)
        if not seen[c]:
            seen[c] = True
            table[c] = w[e]
        elif table[c] != w[e]:
            return False, table, seen
    return True, table, seen


@njit(cache=True)
def codes_by_population(out_indptr, out_post, gid0, n_exc):  # pragma: no cover - jitted
    """Per-synapse codes 2*(pre is I) + (post is I) of an outgoing map (for backends that
    index a weight table per synapse)."""
    codes = np.empty(out_post.size, dtype=np.uint8)
    for j in range(out_indptr.size - 1):
        base = 2 if j >= n_exc else 0
        for e in range(out_indptr[j], out_indptr[j + 1]):
            codes[e] = base + (1 if gid0 + out_post[e] >= n_exc else 0)
    return codes


@njit(cache=True)
def incoming_from_chunks(chunks, post0, n_owned, n_exc, rule_bits):  # pragma: no cover - jitted
    """Incoming CSR of the owned posts from received (pre, post[, weight bits]) chunks that are
    in increasing pre order; a stable counting sort, so each post's list is sorted by pre.

    ``rule_bits`` (4,) int32 (float32 bits) gives the weights of 2-column chunks (by
    population); weight bits (int32) are returned only when some chunk has 3 columns (else an
    empty array).  ``chunks`` is a numba typed List of (k, 2 or 3) int32 arrays."""
    counts = np.zeros(n_owned + 1, dtype=np.int64)
    with_w = False
    for c in chunks:
        if c.shape[1] == 3:
            with_w = True
        for e in range(c.shape[0]):
            counts[c[e, 1] - post0 + 1] += 1
    for i in range(n_owned):
        counts[i + 1] += counts[i]
    nnz = counts[n_owned]
    pre = np.empty(nnz, dtype=np.int32)
    w = np.empty(nnz if with_w else 0, dtype=np.int32)
    fill = counts[:-1].copy()
    for c in chunks:
        three = c.shape[1] == 3
        for e in range(c.shape[0]):
            p = c[e, 1] - post0
            q = fill[p]
            pre[q] = c[e, 0]
            if with_w:
                if three:
                    w[q] = c[e, 2]
                else:
                    pop = 2 * (1 if c[e, 0] >= n_exc else 0) + (1 if c[e, 1] >= n_exc else 0)
                    w[q] = rule_bits[pop]
            fill[p] += 1
    return counts, pre, w
