"""Default static and plastic connectivity plugins (spec §9.1-9.2) and the builder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsn_mpi.comm import SerialComm
from tsn_mpi.config import derive, from_dict
from tsn_mpi.network import plastic, static
from tsn_mpi.network.build import build_static
from tsn_mpi.network.context import PluginContext
from tsn_mpi.partition import partition


def _ctx(n=600, owned=None, **net):
    cfg = from_dict({"network": {"n_cells": n, "p_ee": 0.2, **net}})
    d = derive(cfg)
    return PluginContext(cfg, d, owned or range(0, n), Path("."))


def test_fixed_out_degree_no_autapses_weights_by_population():
    ctx = _ctx()
    d = ctx.derived
    indptr, post, w = static.erdos_renyi(ctx, range(0, 600))
    assert np.all(np.diff(indptr) == 2 * d.k)
    for i in range(600):
        p = post[indptr[i] : indptr[i + 1]]
        assert i not in p and np.all(np.diff(p) > 0)
    (w_ee, w_ie), (w_ei, w_ii) = d.w_static
    pre = np.repeat(np.arange(600), 2 * d.k)
    exc_pre, exc_post = pre < d.n_exc, post < d.n_exc
    assert np.allclose(w[exc_pre & exc_post], np.float32(w_ee))
    assert np.allclose(w[exc_pre & ~exc_post], np.float32(w_ie))
    assert np.allclose(w[~exc_pre & exc_post], np.float32(w_ei))
    assert np.allclose(w[~exc_pre & ~exc_post], np.float32(w_ii))
    indeg = np.bincount(post, minlength=600)
    assert abs(indeg.mean() - 2 * d.k) < 1e-9 and indeg.std() > 0


def test_static_lists_do_not_depend_on_the_range_asked():
    ctx = _ctx()
    ip, post, _ = static.erdos_renyi(ctx, range(0, 600))
    ip2, post2, _ = static.erdos_renyi(ctx, range(250, 300))
    assert np.array_equal(post2, post[ip[250] : ip[300]])


def _expected_incoming(ip, post, w, i):
    pre_of = np.repeat(np.arange(ip.size - 1), np.diff(ip))
    order = np.argsort(pre_of[post == i], kind="stable")
    return pre_of[post == i][order], w[post == i][order]


def test_builder_gives_incoming_csr_sorted_by_pre_with_weights_by_population():
    ctx = _ctx()
    ip, post, w = static.erdos_renyi(ctx, range(0, 600))
    indptr, pre, code, table, by_pop = build_static(ctx, SerialComm(), partition(600, 1))
    assert by_pop and code.size == 0 and table.size == 4 and indptr[-1] == post.size
    n_exc = ctx.derived.n_exc
    for i in (0, 17, 599):
        exp_pre, exp_w = _expected_incoming(ip, post, w, i)
        got_pre = pre[indptr[i] : indptr[i + 1]]
        assert np.array_equal(got_pre, exp_pre)
        got_w = table[2 * (got_pre >= n_exc) + (i >= n_exc)]
        assert np.array_equal(got_w, exp_w)


def _jittered(ctx, pres, first_bad):
    """The default lists with per-synapse weights from presynaptic id first_bad on."""
    ip, post, w = static.erdos_renyi(ctx, pres)
    pre_of = np.repeat(np.arange(pres.start, pres.stop), np.diff(ip))
    w = w.copy()
    bad = pre_of >= first_bad
    w[bad] *= np.float32(1.0) + (post[bad] % 7).astype(np.float32) / 64
    return ip, post, w


def test_builder_falls_back_to_codes_when_a_later_block_breaks_the_rule(monkeypatch, tmp_path):
    """Blocks that followed the population rule were sent without weights; when a later block
    breaks it, their weights are rebuilt from the rule (here 2 of 3 blocks, on 2 tables)."""
    import tsn_mpi.network.build as build

    monkeypatch.setattr(build, "STATIC_BLOCK", 256)
    plug = tmp_path / "jitter.py"
    plug.write_text(
        "from tests.network.test_static import _jittered\n"
        "def weights(ctx, pres):\n    return _jittered(ctx, pres, 520)\n")
    ctx = _ctx(static_plugin=f"{plug}:weights")
    ip, post, w = _jittered(ctx, range(0, 600), 520)
    indptr, pre, code, table, by_pop = build_static(ctx, SerialComm(), partition(600, 1))
    assert not by_pop and code.dtype == np.uint8 and code.size == post.size
    for i in (0, 17, 333, 599):
        exp_pre, exp_w = _expected_incoming(ip, post, w, i)
        assert np.array_equal(pre[indptr[i] : indptr[i + 1]], exp_pre)
        assert np.array_equal(table[code[indptr[i] : indptr[i + 1]]], exp_w)


def test_plastic_partners_per_population_sorted_and_split_independent():
    ctx = _ctx()
    d = ctx.derived
    ns = np.arange(600)[::-1].copy()
    full = PluginContext(ctx.cfg, d, range(0, 600), Path("."), {"ns": ns})
    part = PluginContext(ctx.cfg, d, range(100, 200), Path("."), {"ns": ns})
    pre, w, w_ff = plastic.erdos_renyi(full)
    pre2, _, _ = plastic.erdos_renyi(part)
    assert np.array_equal(pre[100:200], pre2)
    assert pre.shape == (600, d.n_plastic) and w_ff.shape == (600, 0)
    e, i = pre[:, : d.l_exc], pre[:, d.l_exc :]
    assert np.all(e < d.n_exc) and np.all(i >= d.n_exc)
    assert np.all(np.diff(e, axis=1) > 0) and np.all(np.diff(i, axis=1) > 0)
    assert np.all(w[:, : d.l_exc] > 0) and np.all(w[:, d.l_exc :] < 0)


def test_frac_selects_the_most_active_neurons():
    cfg = from_dict({"network": {"n_cells": 600, "p_ee": 0.2}, "plastic": {"frac": 0.5}})
    d = derive(cfg)
    ns = np.zeros(600)
    ns[:150] = 5  # first half of the excitatory cells fire
    ns[300:450] = 7
    ctx = PluginContext(cfg, d, range(0, 600), Path("."), {"ns": ns})
    pre, _, _ = plastic.erdos_renyi(ctx)
    assert pre[:, : d.l_exc].max() < 150
    assert pre[:, d.l_exc :].min() >= 300 and pre[:, d.l_exc :].max() < 450


def test_static_lists_do_not_depend_on_the_thread_count():
    """The generator runs in parallel over blocks of presynaptic neurons; every pre has its own
    stream and output slice, so one thread and two give the same lists."""
    from numba import get_num_threads, set_num_threads

    ctx = _ctx()
    saved = get_num_threads()
    try:
        set_num_threads(1)
        one = static.erdos_renyi(ctx, range(3, 600))
        set_num_threads(min(2, saved))
        two = static.erdos_renyi(ctx, range(3, 600))
    finally:
        set_num_threads(saved)
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a, b)
    ip, post, _ = one
    assert ip[-1] == post.size > 0 and np.all(np.diff(ip) == ip[1] - ip[0])
