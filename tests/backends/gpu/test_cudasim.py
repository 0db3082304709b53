"""The CUDA simulator as our GPU tests use it: its thread-safety fixes, its serial schedule, and
shared-memory race checks of the RLS kernels (tsn_mpi/backends/gpu/cudasim_fixes.py,
tests/backends/gpu/sim_racecheck.py).  Each test runs a script under ``NUMBA_ENABLE_CUDASIM=1``."""

from __future__ import annotations

from tests.backends.gpu.test_kernels_sim import run_script

RACY_KERNELS = """
    from numba import cuda
    from tests.backends.gpu import sim_racecheck

    hazards = sim_racecheck.install()
    N = 64

    @cuda.jit
    def no_barrier(out):  # reads a neighbour's write with no syncthreads in between
        sh = cuda.shared.array(N, np.float64)
        t = cuda.threadIdx.x
        sh[t] = t
        out[t] = sh[(t + 1) % N]

    @cuda.jit
    def overwrite_while_read(out):  # the last thread overwrites what the others read
        sh = cuda.shared.array(N, np.float64)
        t = cuda.threadIdx.x
        sh[t] = t
        cuda.syncthreads()
        out[t] = sh[0]
        if t == N - 1:
            sh[0] = -1.0

    @cuda.jit
    def uninitialised(out):  # block 1 reads what only block 0 wrote (the simulator reuses it)
        sh = cuda.shared.array(N, np.float64)
        t = cuda.threadIdx.x
        if cuda.blockIdx.x == 0:
            sh[t] = t
        cuda.syncthreads()
        out[t] = sh[t]

    @cuda.jit
    def correct(out):  # the same exchange with a barrier, and a same-value store by all
        sh = cuda.shared.array(N, np.float64)
        flag = cuda.shared.array(1, np.int32)
        t = cuda.threadIdx.x
        sh[t] = t
        if t == 0:
            flag[0] = 0
        cuda.syncthreads()
        out[t] = sh[(t + 1) % N]
        if out[t] >= 0:
            flag[0] = 1
        cuda.syncthreads()
        out[t] += flag[0]

    found = {}
    for k in (no_barrier, overwrite_while_read, uninitialised, correct):
        hazards.clear()
        k[2 if k is uninitialised else 1, N](np.zeros(N))
        found[k.__name__] = list(hazards)
    print({k: v[:3] for k, v in found.items()})
    assert any(h.startswith("RAW") for h in found["no_barrier"]), found["no_barrier"]
    assert any(h.startswith("WAR") for h in found["overwrite_while_read"])
    assert any(h.startswith("uninitialised") for h in found["uninitialised"])
    assert found["correct"] == [], found["correct"]
    out = np.zeros(N)
    correct[1, N](out)
    assert np.array_equal(out, (np.arange(N) + 1) % N + 1)
    print("ok")
"""


def test_racecheck_finds_races_and_passes_correct_code():
    """The checker can fail: a missing barrier (RAW), an overwrite of data being read (WAR) and
    a read of another block's shared memory are reported; a correct kernel is not."""
    assert "ok" in run_script(RACY_KERNELS)


def test_rls_kernels_have_no_shared_memory_hazards():
    """Every RLS kernel variant (block with and without staging groups, warp-staged, streamed;
    float32 / float16 / int16; a neuron that goes bad; an odd n; several warps) runs under the
    race checker without a hazard, and still agrees with the CPU kernel."""
    run_script("""
        from numba import cuda
        from tests.backends.gpu import sim_racecheck
        from tsn_mpi.backends.cpu.rls_fast import rls_fast
        from tsn_mpi.backends.gpu import rls as R
        from tsn_mpi.learn.initial_p import initial_p_rows
        from tsn_mpi.learn.packed import rows_to_tiles, tiles_to_rows

        hazards = sim_racecheck.install()
        g = np.random.default_rng(11)
        N, d = 40, cuda.to_device
        cases = [("float32", 2, 36, 3, "block", 4), ("float32", 1, 36, 3, "block", 0),
                 ("float32", 2, 36, 3, "warp", 0), ("float32", 2, 36, 3, "streamed", 0),
                 ("float16", 2, 6, 5, "block", 3), ("int16", 2, 6, 5, "block", 0),
                 ("int16", 2, 6, 5, "warp", 0)]
        for dt, n_ff, m, n_owned, kind, unroll in cases:
            pre = g.integers(0, N, (n_owned, m)).astype(np.int32)
            pre[1, 2] = -1
            w0 = g.normal(size=(n_owned, m)).astype(np.float32)
            w0[pre < 0] = 0
            wff0 = g.normal(size=(n_owned, n_ff)).astype(np.float32)
            p0 = initial_p_rows(w0, pre >= 0, n_ff, 0.8, 1.0, 0.01)
            scale = 2.0**14 if dt == "int16" else 1.0
            rs = [g.random(N) for _ in range(2)]
            rs[1][pre[2, 0]] = np.nan  # neuron 2 goes bad at the second update
            xs = [g.random(n_ff) for _ in range(2)]
            ub = g.normal(size=n_owned).astype(np.float32)
            tg = g.normal(size=n_owned).astype(np.float32)
            Pc = rows_to_tiles(p0, dtype=np.dtype("float64"))
            wc, wffc, badc = w0.copy(), wff0.copy(), np.zeros(n_owned, np.uint8)
            Pd = d(np.ascontiguousarray(np.round(p0 * scale) if dt == "int16" else p0)
                   .astype(dt))
            wd, wffd = d(w0.copy()), d(wff0.copy())
            badd, nbad = d(np.zeros(n_owned, np.uint8)), d(np.zeros(1, np.int32))
            launch = R.rls_launch(n_ff, m, dt, kind, unroll)
            for q in range(2):
                rls_fast(Pc, pre, wc, rs[q], xs[q], wffc, ub, tg, 0, 1, badc)
                nbad.copy_to_device(np.zeros(1, np.int32))
                launch(n_owned, Pd, d(pre), wd, d(rs[q]), d(xs[q]), wffd, d(ub), d(tg), scale,
                       0, 1, badd, nbad)
            assert not hazards, (dt, kind, unroll, hazards[:5])
            assert np.array_equal(badd.copy_to_host(), badc) and badc[2] == 1, (dt, kind)
            pc = tiles_to_rows(Pc, n_owned)
            pg = Pd.copy_to_host().astype(np.float64) / scale
            tol = {"float32": 3e-5, "float16": 3e-3, "int16": 3e-3}[dt]
            assert np.allclose(pg, pc, rtol=tol, atol=tol), (dt, kind, np.abs(pg - pc).max())
        print("ok")
    """)


def test_simulator_is_deterministic_and_shared_arrays_do_not_alias():
    """Two launches of a kernel whose result depends on the order of its atomics give the same
    bits (the serial schedule), and two shared arrays of one kernel are distinct."""
    run_script("""
        from numba import cuda
        from tsn_mpi.backends.gpu import cudasim_fixes

        assert cudasim_fixes.apply() and cudasim_fixes.shared_array_is_fixed()
        assert cudasim_fixes.serial_schedule()  # greenlet is a test dependency

        @cuda.jit
        def order_dependent(vals, acc, count, order):
            a = cuda.shared.array(64, np.float64)
            b = cuda.shared.array(64, np.float64)
            t = cuda.threadIdx.x
            a[t] = 1.0
            b[t] = 2.0
            cuda.syncthreads()
            cuda.atomic.add(acc, 0, vals[t] * (a[t] + b[t]))  # float sum: order matters
            order[cuda.atomic.add(count, 0, 1)] = t

        vals = np.random.default_rng(1).normal(size=64) * 10.0 ** np.arange(-32, 32, dtype=float)
        runs = []
        for _ in range(3):
            acc, order = np.zeros(1), np.zeros(64, np.int64)
            order_dependent[1, 64](vals, acc, np.zeros(1, np.int64), order)
            runs.append((acc.copy(), order.copy()))
        assert all(np.array_equal(r[0], runs[0][0]) for r in runs), runs
        assert np.array_equal(runs[0][1], np.arange(64))  # thread-index order
        seq = 0.0
        for v in vals:  # the sum in thread order
            seq += v * 3.0
        assert runs[0][0][0] == seq
        print("ok")
    """)
