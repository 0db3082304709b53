"""Host-side maps shared by both backends: outgoing plastic/static maps, drive, trace constants."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from tsn_mpi.simulate.maps import balanced_drive, outgoing_maps, slot_dtype, trace_constants


def _net(n_cells=12, owned=range(4, 9), m=3, seed=0):
    g = np.random.default_rng(seed)
    n = len(owned)
    pl_pre = np.sort(g.integers(0, n_cells, (n, m)), axis=1).astype(np.int32)
    pl_pre[1, 2] = -1  # padding
    # incoming static CSR with one code per synapse
    deg = g.integers(0, 4, n)
    indptr = np.r_[0, np.cumsum(deg)].astype(np.int64)
    pre = g.integers(0, n_cells, indptr[-1]).astype(np.int32)
    code = g.integers(0, 4, indptr[-1]).astype(np.uint8)
    return SimpleNamespace(owned=owned, n_owned=n, pl_pre=pl_pre, st_indptr=indptr, st_pre=pre,
                           st_code=code)  # fmt: skip


def test_outgoing_maps_invert_both_lists():
    net, N = _net(), 12
    maps = outgoing_maps(net, N)
    got = set()
    for j in range(N):
        for e in range(maps.pl_indptr[j], maps.pl_indptr[j + 1]):
            p, s = int(maps.pl_post[e]), int(maps.pl_slot[e])
            assert net.pl_pre[p, s] == j
            got.add((p, s))
    want = {(p, s) for p in range(net.n_owned) for s in range(3) if net.pl_pre[p, s] >= 0}
    assert got == want
    assert maps.pl_slot.dtype == np.uint8
    assert np.array_equal(maps.needed, np.unique(net.pl_pre[net.pl_pre >= 0]))
    edges = set()
    for j in range(N):
        for e in range(maps.st_indptr[j], maps.st_indptr[j + 1]):
            edges.add((j, int(maps.st_post[e]), int(maps.st_code[e])))
    want = {(int(net.st_pre[e]), p, int(net.st_code[e])) for p in range(net.n_owned)
            for e in range(net.st_indptr[p], net.st_indptr[p + 1])}  # fmt: skip
    assert edges == want
    assert np.array_equal(outgoing_maps(net, N, all_traces=True).needed, np.arange(N))


def test_slot_type_drive_and_trace_constants():
    assert slot_dtype(256) == np.uint8 and slot_dtype(257) == np.uint16
    assert slot_dtype(70000) == np.int32
    d = SimpleNamespace(n_exc=6, x_bal_e=1.5, x_bal_i=1.0)
    assert np.array_equal(balanced_drive(range(4, 9), d), np.float32([1.5, 1.5, 1, 1, 1]))
    a, inc, post = trace_constants(20.0, 0.1, range(4, 9))
    assert a.tolist() == [1 - 0.1 / 20] and inc.tolist() == [1 / 20] and post.tolist() == [1 / 20]
    tau = np.arange(1.0, 13.0)
    a, inc, post = trace_constants(tau, 0.1, range(4, 9))
    assert a.shape == (12,) and np.array_equal(post, 1.0 / tau[4:9])
