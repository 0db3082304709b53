"""CPU RLS kernels (spec §4.3-§4.5) against the numpy reference, and their invariants."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from tests.reference import (
    gather_x_reference,
    initial_p_reference,
    pinv_reference,
    rls_small_reference,
    rls_update_reference,
)
from tsn_mpi.backends.cpu.float16 import float_to_half, half_to_float
from tsn_mpi.backends.cpu.rls_fast import rls_fast, rls_fast_full
from tsn_mpi.backends.cpu.rls_small import (
    _small_gain_direct,
    _small_gain_woodbury,
    _small_gather,
    push_history,
    rls_small,
    use_woodbury,
)
from tsn_mpi.learn.initial_p import initial_p_rows
from tsn_mpi.learn.packed import TILE_W, rows_to_tiles, symmetrize_full_rows, tiles_to_rows
from tsn_mpi.learn.packed import unpack_rows as unpack

N_GLOBAL = 120


def make_problem(n_owned=45, m=9, n_ff=0, seed=0):
    """Small random problem: padding slots in some neurons, mixed-sign and zero weights."""
    rng = np.random.default_rng(seed)
    pre = np.stack([rng.choice(N_GLOBAL, m, replace=False) for _ in range(n_owned)]).astype(
        np.int32
    )
    pre[::4, -2:] = -1
    w = rng.normal(size=(n_owned, m)).astype(np.float32)
    w[::7, 0] = 0.0
    w[pre < 0] = 0.0
    return dict(
        pre=pre,
        w=w,
        w_ff=rng.normal(size=(n_owned, n_ff)).astype(np.float32),
        u_bal=rng.normal(size=n_owned).astype(np.float32),
        target=rng.normal(size=n_owned).astype(np.float32),
        rng=rng,
    )


def p0_tiles(prob, n_ff, dtype, storage):
    rows = initial_p_rows(prob["w"], prob["pre"] >= 0, n_ff, 0.8, 1.3, 0.01, storage=storage)
    return rows_to_tiles(rows, dtype=dtype)


def p_full(tiles, n_owned, n, storage):
    rows = tiles_to_rows(tiles, n_owned).astype(np.float64)
    return unpack(rows) if storage == "packed" else symmetrize_full_rows(rows, n)


def kernel(storage):
    return rls_fast if storage == "packed" else rls_fast_full


def traces(rng, n_ff):
    return rng.random(N_GLOBAL), rng.random(n_ff)


TOL = {np.float64: dict(rtol=1e-11, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}
WTOL = {np.float64: dict(rtol=3e-7, atol=3e-7), np.float32: TOL[np.float32]}  # float32 weights


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("storage", ["packed", "full"])
@pytest.mark.parametrize("n_ff", [0, 3])
@pytest.mark.parametrize("textbook", [False, True])
def test_fast_matches_reference(dtype, storage, n_ff, textbook):
    prob = make_problem(n_ff=n_ff, seed=n_ff)
    pre, rng = prob["pre"], prob["rng"]
    n_owned, n = pre.shape[0], pre.shape[1] + n_ff
    P = p0_tiles(prob, n_ff, dtype, storage)
    p_ref = initial_p_reference(prob["w"], pre >= 0, n_ff, 0.8, 1.3, 0.01)
    w, w_ff = prob["w"].copy(), prob["w_ff"].copy()
    w_ref, wff_ref = w.astype(np.float64), w_ff.astype(np.float64)
    bad = np.full(n_owned, 7, np.uint8)
    for _ in range(3):
        r, x_ff = traces(rng, n_ff)
        if dtype == np.float32:  # the float32 kernel rounds x first; give the reference the same
            r, x_ff = (v.astype(np.float32).astype(np.float64) for v in (r, x_ff))
        nb = kernel(storage)(
            P, pre, w, r, x_ff, w_ff, prob["u_bal"], prob["target"], textbook, True, bad
        )
        p_ref, w_ref, wff_ref, _ = rls_update_reference(
            p_ref, pre, w_ref, r, x_ff, wff_ref, prob["u_bal"], prob["target"], textbook, True
        )
        assert nb == 0 and not bad.any()
        np.testing.assert_allclose(p_full(P, n_owned, n, storage), p_ref, **TOL[dtype])
        np.testing.assert_allclose(w, w_ref, **WTOL[dtype])
        np.testing.assert_allclose(w_ff, wff_ref, **WTOL[dtype])
        w_ref, wff_ref = w.astype(np.float64), w_ff.astype(np.float64)  # follow float32 weights
    # padding lanes stay exactly zero; padding slots never move
    lanes = P.transpose(0, 2, 1).reshape(-1, P.shape[1])
    assert not lanes[n_owned:].any()
    np.testing.assert_array_equal(w[pre < 0], 0.0)


@pytest.mark.parametrize("storage", ["packed", "full"])
def test_benchmark_mode_keeps_weights(storage):
    n_ff = 2
    prob = make_problem(n_ff=n_ff)
    pre = prob["pre"]
    P = p0_tiles(prob, n_ff, np.float64, storage)
    P_before = P.copy()
    w, w_ff = prob["w"].copy(), prob["w_ff"].copy()
    r, x_ff = traces(prob["rng"], n_ff)
    bad = np.zeros(pre.shape[0], np.uint8)
    kernel(storage)(P, pre, w, r, x_ff, w_ff, prob["u_bal"], prob["target"], False, False, bad)
    np.testing.assert_array_equal(w, prob["w"])
    np.testing.assert_array_equal(w_ff, prob["w_ff"])
    assert not np.array_equal(P, P_before)
    p_ref = rls_update_reference(
        initial_p_reference(prob["w"], pre >= 0, n_ff, 0.8, 1.3, 0.01),
        pre, w, r, x_ff, w_ff, prob["u_bal"], prob["target"], False, False,
    )[0]  # fmt: skip
    np.testing.assert_allclose(p_full(P, pre.shape[0], pre.shape[1] + n_ff, storage), p_ref,
                               **TOL[np.float64])  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rls_identity(dtype):
    """After updates with x_1..x_k, P = inv(Pinv + sum_j x_j x_j^T) (recursive least squares)."""
    n_ff = 2
    prob = make_problem(n_owned=33, m=7, n_ff=n_ff, seed=5)
    pre, rng = prob["pre"], prob["rng"]
    P = p0_tiles(prob, n_ff, dtype, "packed")
    A = pinv_reference(prob["w"], pre >= 0, n_ff, 0.8, 1.3, 0.01)
    bad = np.zeros(pre.shape[0], np.uint8)
    for _ in range(6):
        r, x_ff = traces(rng, n_ff)
        r, x_ff = r.astype(dtype).astype(np.float64), x_ff.astype(dtype).astype(np.float64)
        rls_fast(P, pre, prob["w"], r, x_ff, prob["w_ff"], prob["u_bal"], prob["target"],
                 False, False, bad)  # fmt: skip
        X = gather_x_reference(pre, r, x_ff)
        A += X[:, :, None] * X[:, None, :]
    got = p_full(P, pre.shape[0], pre.shape[1] + n_ff, "packed")
    for i in range(pre.shape[0]):
        keep = np.concatenate([np.ones(n_ff, bool), pre[i] >= 0])
        want = np.linalg.inv(A[i][np.ix_(keep, keep)])
        tol = 1e-10 if dtype == np.float64 else 2e-4
        np.testing.assert_allclose(got[i][np.ix_(keep, keep)], want, rtol=tol, atol=tol)


@pytest.mark.parametrize("storage", ["packed", "full"])
def test_bad_neurons_are_flagged_and_left_alone(storage):
    n_ff = 1
    prob = make_problem(n_ff=n_ff, seed=8)
    pre = prob["pre"]
    P = p0_tiles(prob, n_ff, np.float32, storage)
    P0, w0 = P.copy(), prob["w"].copy()
    w, w_ff = prob["w"].copy(), prob["w_ff"].copy()
    r, x_ff = traces(prob["rng"], n_ff)
    gid = pre[7, 0]
    r[gid] = np.nan
    readers = (pre == gid).any(axis=1)
    assert 1 <= readers.sum() < pre.shape[0]
    bad = np.zeros(pre.shape[0], np.uint8)
    nb = kernel(storage)(P, pre, w, r, x_ff, w_ff, prob["u_bal"], prob["target"], False, True,
                         bad)  # fmt: skip
    assert nb == readers.sum()
    np.testing.assert_array_equal(bad, readers.astype(np.uint8))
    rows, rows0 = tiles_to_rows(P, pre.shape[0]), tiles_to_rows(P0, pre.shape[0])
    np.testing.assert_array_equal(rows[readers], rows0[readers])
    np.testing.assert_array_equal(w[readers], w0[readers])
    assert np.isfinite(rows).all() and np.isfinite(w).all()
    assert not np.array_equal(w[~readers], w0[~readers])


def _run_shifted(shift, n_threads, dtype):
    """Neurons of make_problem() placed after `shift` extra neurons; returns their P and w."""
    n_ff = 2
    prob = make_problem(n_ff=n_ff, seed=11)
    extra = make_problem(n_owned=shift, n_ff=n_ff, seed=12) if shift else None

    def cat(key):
        return np.concatenate([extra[key], prob[key]]) if shift else prob[key].copy()

    pre, w, w_ff, u_bal, target = (cat(k) for k in ("pre", "w", "w_ff", "u_bal", "target"))
    rows = initial_p_rows(w, pre >= 0, n_ff, 0.8, 1.3, 0.01)
    P = rows_to_tiles(rows, dtype=dtype)
    rng = np.random.default_rng(13)
    bad = np.zeros(pre.shape[0], np.uint8)
    old = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        for _ in range(3):
            r, x_ff = traces(rng, n_ff)
            rls_fast(P, pre, w, r, x_ff, w_ff, u_bal, target, False, True, bad)
    finally:
        numba.set_num_threads(old)
    return tiles_to_rows(P, pre.shape[0])[shift:], w[shift:], w_ff[shift:]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint16])
def test_bitwise_independent_of_lane_and_threads(dtype):
    base = _run_shifted(0, 1, dtype)
    for shift, threads in [(5, 1), (0, numba.config.NUMBA_NUM_THREADS), (37, 2)]:
        threads = min(threads, numba.config.NUMBA_NUM_THREADS)
        for a, b in zip(base, _run_shifted(shift, threads, dtype), strict=True):
            np.testing.assert_array_equal(a, b)


def test_half_conversions_match_numpy():
    halves = np.arange(1 << 16, dtype=np.uint16)
    as_f32 = halves.view(np.float16).astype(np.float32)
    got = np.array([half_to_float(h) for h in halves[::7]], np.float32)
    want = as_f32[::7]
    nan = np.isnan(want)  # (Python floats quiet signalling NaNs: compare NaNs as NaN)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
    assert np.isnan(got[nan]).all()
    rng = np.random.default_rng(0)
    with np.errstate(invalid="ignore", over="ignore"):
        ties = (as_f32[:-1] + as_f32[1:])[np.isfinite(as_f32[1:])] / 2
    xs = np.concatenate([
        as_f32[np.isfinite(as_f32)],  # exact values
        ties[np.isfinite(ties)],  # exactly halfway between neighbours: round to even
        rng.normal(size=3000).astype(np.float32) * 10.0 ** rng.integers(-9, 6, 3000),
        np.array([np.inf, -np.inf, 7e4, -7e4, 65519.0, 65520.0, 1e-9, 2.0**-25, 0.0, -0.0]),
    ]).astype(np.float32)  # fmt: skip
    xs = xs[:: max(1, xs.size // 6000)]
    got = np.array([float_to_half(x) for x in xs], np.uint16)
    with np.errstate(over="ignore"):
        want = xs.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(np.uint16(float_to_half(np.float32(np.nan))).view(np.float16))


def test_float16_storage_accuracy():
    n_ff = 2
    prob = make_problem(n_ff=n_ff, seed=21)
    pre, rng = prob["pre"], prob["rng"]
    P32 = p0_tiles(prob, n_ff, np.float32, "packed")
    P16 = P32.astype(np.float16).view(np.uint16)
    w32, wff32 = prob["w"].copy(), prob["w_ff"].copy()
    w16, wff16 = prob["w"].copy(), prob["w_ff"].copy()
    bad = np.zeros(pre.shape[0], np.uint8)
    for _ in range(4):
        r, x_ff = traces(rng, n_ff)
        rls_fast(P32, pre, w32, r, x_ff, wff32, prob["u_bal"], prob["target"], False, True,
                 bad)  # fmt: skip
        assert rls_fast(P16, pre, w16, r, x_ff, wff16, prob["u_bal"], prob["target"], False,
                        True, bad) == 0  # fmt: skip
    p16 = P16.view(np.float16).astype(np.float32)
    scale = np.abs(P32).max()
    assert np.abs(p16 - P32).max() / scale < 3e-3
    assert np.abs(w16 - w32).max() / np.abs(w32 - prob["w"]).max() < 1e-2
    lanes = P16.transpose(0, 2, 1).reshape(-1, P16.shape[1])
    assert not lanes[pre.shape[0] :].any()


def test_fast_rejects_wrong_shapes():
    prob = make_problem()
    pre = prob["pre"]
    bad = np.zeros(pre.shape[0], np.uint8)
    args = (pre, prob["w"], np.zeros(N_GLOBAL), np.zeros(0), prob["w_ff"], prob["u_bal"],
            prob["target"], False, True, bad)  # fmt: skip
    P = p0_tiles(prob, 0, np.float64, "packed")
    with pytest.raises(ValueError):
        rls_fast_full(P, *args)
    with pytest.raises(ValueError):
        rls_fast(np.ascontiguousarray(P[:1]), *args)
    assert TILE_W == P.shape[2]


@pytest.mark.parametrize("n_ff", [0, 3])
@pytest.mark.parametrize("textbook", [False, True])
@pytest.mark.parametrize("H", [4, 12])
def test_small_matches_reference(n_ff, textbook, H):
    """H = 4 < n solves by Woodbury, H = 12 >= n by a dense Cholesky (once the history is full)."""
    prob = make_problem(n_owned=37, m=8, n_ff=n_ff, seed=30 + n_ff)
    pre, rng = prob["pre"], prob["rng"]
    assert use_woodbury(H, n_ff + 8) == (H == 4)
    hist = np.zeros((H, n_ff + N_GLOBAL))
    count = 0
    w, w_ff = prob["w"].copy(), prob["w_ff"].copy()
    bad = np.full(pre.shape[0], 3, np.uint8)
    for step in range(H + 2):  # history fills up and wraps around
        r, x_ff = traces(rng, n_ff)
        w_ref, wff_ref, _ = rls_small_reference(
            pre, w, r, x_ff, w_ff, prob["u_bal"], prob["target"], hist, min(count, H),
            0.8, 1.3, 0.01, textbook, True,
        )  # fmt: skip
        nb = rls_small(pre, w, r, x_ff, w_ff, prob["u_bal"], prob["target"], hist,
                       min(count, H), 0.8, 1.3, 0.01, textbook, True, bad)  # fmt: skip
        assert nb == 0 and not bad.any()
        np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(w_ff, wff_ref, rtol=1e-5, atol=1e-5)
        count = push_history(hist, x_ff, r, count)
        assert count == step + 1
        np.testing.assert_array_equal(hist[step % H], np.concatenate([x_ff, r]))
    np.testing.assert_array_equal(w[pre < 0], 0.0)


@pytest.mark.parametrize("n_ff", [0, 2])
@pytest.mark.parametrize("hist_len", [0, 1, 5])
def test_small_woodbury_equals_direct(n_ff, hist_len):
    """Both small-mode solvers give the same gain k = A^-1 x, to float64 rounding: padding,
    zero weights, one-sign neurons and a neuron with no same-sign pair included."""
    m = 9
    prob = make_problem(n_owned=20, m=m, n_ff=n_ff, seed=60 + n_ff)
    pre, w, rng = prob["pre"], prob["w"], prob["rng"]
    w[1] = np.abs(w[1]) + 0.1
    w[2] = -np.abs(w[2]) - 0.1
    w[3] = 0.0
    w[3, 0], w[3, 1] = 1.0, -1.0
    w[pre < 0] = 0.0
    hist = rng.random((6, n_ff + N_GLOBAL))
    r, x_ff = traces(rng, n_ff)
    n, q = n_ff + m, hist_len + 1
    x, grp = np.empty(n), np.empty(m, np.int8)
    k_w, k_d = np.empty(n), np.empty(n)
    G, M, S = np.empty((q, n)), np.empty((q, q)), np.empty((3, q))
    A, g = np.empty((n, n)), np.empty(n)
    _, _, k_ref = rls_small_reference(pre, w, r, x_ff, prob["w_ff"], prob["u_bal"],
                                      prob["target"], hist, hist_len, 0.8, 1.3, 0.05, False,
                                      False)  # fmt: skip
    rows, scales = np.arange(hist_len, dtype=np.int64), np.ones(hist_len)
    for lid in range(pre.shape[0]):
        _small_gather(lid, pre, w, r, x_ff, x, grp)
        args = (lid, pre, hist, rows, scales, 0.8, 1.3, 0.05, x, grp)
        assert _small_gain_woodbury(*args, k_w, G, M, S)
        assert _small_gain_direct(*args, k_d, A, g)
        np.testing.assert_allclose(k_w, k_d, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(k_w, k_ref[lid], rtol=1e-12, atol=1e-14)
        assert not k_w[n_ff:][pre[lid] < 0].any()


@pytest.mark.parametrize("n_ff", [0, 3])
@pytest.mark.parametrize("H", [4, 12])
def test_small_mean_row_matches_reference(n_ff, H):
    """With the running-mean row, A gains T gbar gbar^T: the same as the reference fed the
    window plus sqrt(T) * mean as one more history row; both solvers (H = 12 >= n is dense)."""
    prob = make_problem(n_owned=37, m=8, n_ff=n_ff, seed=70 + n_ff)
    pre, rng = prob["pre"], prob["rng"]
    hist = np.zeros((H + 1, n_ff + N_GLOBAL))
    pushed = []
    count = 0
    w, w_ff = prob["w"].copy(), prob["w_ff"].copy()
    bad = np.zeros(pre.shape[0], np.uint8)
    for step in range(H + 3):
        r, x_ff = traces(rng, n_ff)
        hl = min(count, H)
        ext = np.vstack([hist[:hl], np.sqrt(count) * hist[H : H + 1]])
        w_ref, wff_ref, _ = rls_small_reference(
            pre, w, r, x_ff, w_ff, prob["u_bal"], prob["target"], ext, hl + (count > 0),
            0.8, 1.3, 0.01, False, True,
        )  # fmt: skip
        nb = rls_small(pre, w, r, x_ff, w_ff, prob["u_bal"], prob["target"], hist, hl,
                       0.8, 1.3, 0.01, False, True, bad, mean_row=H,
                       mean_weight=count)  # fmt: skip
        assert nb == 0
        np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(w_ff, wff_ref, rtol=1e-5, atol=1e-5)
        count = push_history(hist, x_ff, r, count, mean=True)
        pushed.append(np.concatenate([x_ff, r]))
        np.testing.assert_allclose(hist[H], np.mean(pushed, axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(hist[step % H], pushed[-1])
    with pytest.raises(ValueError):
        rls_small(pre, w, r, x_ff, w_ff, prob["u_bal"], prob["target"], hist, H, 0.8, 1.3,
                  0.01, False, True, bad, mean_row=H - 1, mean_weight=1.0)  # fmt: skip


def test_small_benchmark_mode_and_bad():
    prob = make_problem(n_owned=10, m=5, seed=40)
    pre = prob["pre"]
    hist = np.zeros((3, N_GLOBAL))
    r = prob["rng"].random(N_GLOBAL)
    w, w_ff = prob["w"].copy(), prob["w_ff"].copy()
    bad = np.zeros(pre.shape[0], np.uint8)
    assert rls_small(pre, w, r, np.zeros(0), w_ff, prob["u_bal"], prob["target"], hist, 0,
                     0.8, 1.0, 0.01, False, False, bad) == 0  # fmt: skip
    np.testing.assert_array_equal(w, prob["w"])
    r[pre[3, 0]] = np.inf
    readers = (pre == pre[3, 0]).any(axis=1)
    nb = rls_small(pre, w, r, np.zeros(0), w_ff, prob["u_bal"], prob["target"], hist, 0,
                   0.8, 1.0, 0.01, False, True, bad)  # fmt: skip
    assert nb == readers.sum()
    np.testing.assert_array_equal(bad, readers)
    np.testing.assert_array_equal(w[readers], prob["w"][readers])


def test_many_tiles_per_chunk_match_single_tiles():
    """Over 256 tiles, each work chunk reuses its scratch for several tiles: results must equal
    those of the same neurons run alone (bitwise), including the partial last tile."""
    n_ff, m = 1, 3
    n_owned = 300 * TILE_W + 5
    prob = make_problem(n_owned=n_owned, m=m, n_ff=n_ff, seed=50)
    rng = prob["rng"]
    r, x_ff = traces(rng, n_ff)
    keys = ("pre", "w", "w_ff", "u_bal", "target")

    def run(lo, hi):
        part = {k: prob[k][lo:hi].copy() for k in keys}
        rows = initial_p_rows(part["w"], part["pre"] >= 0, n_ff, 0.8, 1.3, 0.01)
        P = rows_to_tiles(rows, dtype=np.float32)
        bad = np.zeros(hi - lo, np.uint8)
        rls_fast(P, part["pre"], part["w"], r, x_ff, part["w_ff"], part["u_bal"],
                 part["target"], False, True, bad)  # fmt: skip
        return tiles_to_rows(P, hi - lo), part["w"], part["w_ff"]

    whole = run(0, n_owned)
    for lo, hi in [(0, 2 * TILE_W), (137 * TILE_W, 139 * TILE_W), (299 * TILE_W, n_owned)]:
        for a, b in zip(run(lo, hi), whole, strict=True):
            np.testing.assert_array_equal(a, b[lo:hi])
