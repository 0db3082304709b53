"""GPU kernels without a GPU: numba's CUDA simulator against the CPU kernels, plus a type check.

Each test runs a small script in a subprocess with ``NUMBA_ENABLE_CUDASIM=1`` (numba picks the
simulator when ``numba.cuda`` is first imported, so it cannot be switched on inside pytest).
Networks use dyadic weights where bitwise agreement with the CPU is asserted: float32 sums of
such weights are exact in any order, so the GPU's atomics cannot change a bit.

``test_kernels_type_and_lower_for_sm90`` runs the real numba.cuda front end (no simulator, no
driver needed): every kernel launch recorded under the simulator is typed and lowered to NVVM IR
for compute capability 9.0, which catches typing errors the simulator would not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# Every script runs with the simulator fixes of tsn_mpi.backends.gpu.cudasim_fixes: shared
# arrays allocated under a lock, and (with greenlet, a test dependency) the threads of a block
# run one at a time in a fixed order, so a simulator run is repeatable.  (The 0.1 ms GIL switch
# interval these scripts used to set sped up the simulator's busy-polling manager, and made its
# races likely: issue #24.)
PRELUDE = """\
import warnings
warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
import numpy as np
from tsn_mpi.backends.gpu import cudasim_fixes as _cudasim_fixes
_cudasim_fixes.apply()
"""


def run_script(body: str, sim: bool = True, timeout: float = 900.0) -> str:
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if sim:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("NUMBA_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
    return proc.stdout


def test_streams_and_integer_power_match_cpu():
    out = run_script("""
        import math
        from numba import cuda, njit
        from tsn_mpi import rng
        from tsn_mpi.backends.gpu import rng as K

        @cuda.jit
        def draw(u64_rows, normals, uni, base, k, a, e, pw):
            i = cuda.grid(1)
            if i < u64_rows.shape[1]:
                normals[0, i] = K.next_normal(u64_rows, 0, i)
                normals[1, i] = K.next_normal(u64_rows, 0, i)
                uni[i] = K.nth_uniform(base[i], k[i])
                pw[i] = K.ipow(a[i], e[i])

        n = 50
        states = rng.stream_states(7, rng.NOISE, np.arange(n, dtype=np.int64), 3)
        u64_rows = cuda.to_device(states[None, :].copy())
        normals = cuda.to_device(np.zeros((2, n)))
        uni = cuda.to_device(np.zeros(n))
        k = np.arange(1, n + 1, dtype=np.int64) * 37
        a = np.linspace(0.9, 0.9999, n)
        e = np.arange(n, dtype=np.int64) * 1733
        e[-1] = 70000  # past the squaring cutoff: libm pow on both sides
        pw = cuda.to_device(np.zeros(n))
        draw[4, 16](u64_rows, normals, uni, cuda.to_device(states), cuda.to_device(k),
                    cuda.to_device(a), cuda.to_device(e), pw)

        @njit
        def cpu(states, k, a, e):
            st = states.copy()
            nm = np.empty((2, st.size))
            u = np.empty(st.size)
            p = np.empty(st.size)
            for i in range(st.size):
                nm[0, i] = rng.normal(st, i)
                nm[1, i] = rng.normal(st, i)
                s2 = states[i:i + 1].copy()
                for _ in range(k[i]):
                    x = rng.uniform(s2, 0)
                u[i] = x
                p[i] = math.pow(a[i], e[i])
            return nm, st, u, p

        nm, st, u, p = cpu(states, k, a, e)
        assert np.array_equal(normals.copy_to_host(), nm)
        assert np.array_equal(u64_rows.copy_to_host()[0], st)
        assert np.array_equal(uni.copy_to_host(), u)
        assert np.array_equal(pw.copy_to_host(), p)
        print("ok")
    """)
    assert "ok" in out


def test_deliver_and_traces_match_numpy():
    run_script("""
        from numba import cuda
        from tsn_mpi.backends.cpu.loop import trace_values
        from tsn_mpi.backends.gpu import loop as K
        from tsn_mpi.simulate.step_constants import FLOAT_FIELDS, INT_FIELDS

        g = np.random.default_rng(3)
        N, n, m = 40, 25, 4
        deg = g.integers(0, 9, N)
        st_indptr = np.concatenate(([0], np.cumsum(deg)))
        st_post = g.integers(0, n, st_indptr[-1]).astype(np.int32)
        table = np.array([0.3, -0.7, 0.0, 1.1, -0.05], np.float32)
        st_code = g.integers(0, table.size, st_post.size).astype(np.uint8)
        pdeg = g.integers(0, 5, N)
        pl_indptr = np.concatenate(([0], np.cumsum(pdeg)))
        pl_post = g.integers(0, n, pl_indptr[-1]).astype(np.int32)
        pl_slot = g.integers(0, m, pl_post.size).astype(np.int32)
        w_in = g.normal(size=(n, m)).astype(np.float32)
        spikes = g.choice(N, 17, replace=False).astype(np.int32)
        slot = 2
        glob = np.zeros((3, N + 1), np.int32)
        glob[slot, 0] = spikes.size
        glob[slot, 1:1 + spikes.size] = spikes
        const_i = np.zeros(len(INT_FIELDS), np.int64)
        const_i[K.C_N] = n
        const_i[K.C_STIM_OFF] = 10**6
        const_f = np.zeros(len(FLOAT_FIELDS))
        d = cuda.to_device
        for mode in (K.MODE_INIT, K.MODE_TRAIN):
            f32_rows = d(np.zeros((K.N_F32, n), np.float32))
            one = d(np.zeros(1))
            K.deliver[3, 4](5, mode, slot, d(const_i), d(const_f), d(glob), d(st_indptr),
                            d(st_post), d(st_code), d(table), d(pl_indptr), d(pl_post), d(pl_slot),
                            d(w_in), f32_rows, one, one, d(np.zeros(1, np.uint64)),
                            d(np.zeros((1, 1))), d(np.zeros((n, 1), np.float32)))
            ref = np.zeros((3, n))
            for j in spikes:
                for e in range(st_indptr[j], st_indptr[j + 1]):
                    w = table[st_code[e]]
                    if w != 0:
                        ref[0 if w > 0 else 1, st_post[e]] += w
                if mode != K.MODE_INIT:
                    for e in range(pl_indptr[j], pl_indptr[j + 1]):
                        ref[2, pl_post[e]] += w_in[pl_post[e], pl_slot[e]]
            got = f32_rows.copy_to_host()[[K.F_INE, K.F_INI, K.F_INP]]
            assert np.allclose(got, ref, rtol=1e-6, atol=1e-6), (mode, got - ref)
        assert np.abs(ref[2]).sum() > 0 and np.abs(ref[1]).sum() > 0

        # traces: r_val * a**(t - r_step) for the needed gids, bitwise as the CPU
        tr = np.zeros((K.N_TR, N))
        tr[K.T_RVAL] = g.random(N)
        tr[K.T_A] = g.uniform(0.99, 0.9999, N)
        r_step = g.integers(0, 900, N).astype(np.int64)
        r_step[0] = -80000
        gids = np.sort(g.choice(N, 30, replace=False)).astype(np.int64)
        gids[0] = 0
        out = d(np.zeros(N))
        K.traces_at[2, 16](1000, d(gids), gids.size, d(tr), d(r_step), out)
        ref = np.zeros(N)
        trace_values(tr[K.T_RVAL], r_step, tr[K.T_A], 1000, gids, ref)
        assert np.array_equal(out.copy_to_host(), ref)
        print("ok")
    """)


def test_rls_kernel_matches_cpu_rls_fast():
    """The block-per-neuron kernel and the warp-per-neuron kernels (staged and streamed)
    against the CPU kernel: every float precision, a-priori / textbook gain, benchmark mode, a
    bad neuron; n = 37, 38 and 70 (two and three warps per block) for float32, n = 7 and 8
    otherwise; the block kernel's staging with a tail group (unroll 4) and with its whole
    share."""
    run_script("""
        from numba import cuda
        from tsn_mpi.backends.cpu.rls_fast import rls_fast
        from tsn_mpi.backends.gpu import rls as R
        from tsn_mpi.learn.initial_p import initial_p_rows
        from tsn_mpi.learn.packed import rows_to_tiles, tiles_to_rows

        g = np.random.default_rng(5)
        N = 50
        tol = {"float64": (1e-11, 1e-12), "float32": (3e-5, 3e-6), "float16": (3e-3, 2e-4)}
        d = cuda.to_device
        # (P dtype, n_ff, m, neurons, kernel, unroll, (textbook, apply))
        cases = [("float32", 2, 36, 5, "block", 4, (0, 1)),
                 ("float32", 1, 36, 5, "block", 0, (1, 1)),  # odd n
                 ("float32", 2, 68, 5, "block", 0, (0, 1)),  # three warps per block
                 ("float32", 2, 36, 5, "warp", 0, (0, 1)),
                 ("float32", 2, 36, 5, "streamed", 0, (1, 1)),
                 ("float64", 2, 5, 9, "block", 0, (0, 1)),  # odd n
                 ("float64", 2, 6, 9, "warp", 0, (0, 1)),
                 ("float16", 2, 6, 9, "block", 3, (0, 1)),
                 ("float16", 2, 6, 9, "streamed", 0, (0, 1)),
                 ("float32", 0, 8, 9, "block", 0, (0, 0)),
                 ("float32", 0, 8, 9, "warp", 0, (0, 0))]
        for dt, n_ff, m, n_owned, kind, unroll, (textbook, apply) in cases:
            pre = g.integers(0, N, (n_owned, m)).astype(np.int32)
            pre[3, 2] = -1
            pre[4, :] = -1
            w0 = g.normal(size=(n_owned, m)).astype(np.float32)
            w0[pre < 0] = 0
            wff0 = g.normal(size=(n_owned, n_ff)).astype(np.float32)
            p0 = initial_p_rows(w0, pre >= 0, n_ff, 0.8, 1.0, 0.01)
            rs = [g.random(N) for _ in range(3)]
            xs = [g.random(n_ff) for _ in range(3)]
            rs[2][pre[1, 0]] = np.nan  # neuron 1 goes bad at the third update
            ub = g.normal(size=n_owned).astype(np.float32)
            tg = g.normal(size=n_owned).astype(np.float32)
            P = rows_to_tiles(p0, dtype=np.dtype(dt))
            Pc = P.view(np.uint16) if dt == "float16" else P
            wc, wffc, badc = w0.copy(), wff0.copy(), np.zeros(n_owned, np.uint8)
            Pd = d(np.ascontiguousarray(p0.astype(dt)))
            wd, wffd = d(w0.copy()), d(np.ascontiguousarray(np.zeros((n_owned, 1), np.float32)
                                                            if n_ff == 0 else wff0))
            badd, nbad = d(np.zeros(n_owned, np.uint8)), d(np.zeros(1, np.int32))
            launch = R.rls_launch(n_ff, m, dt, kind, unroll)
            for q in range(3):
                nc = rls_fast(Pc, pre, wc, rs[q], xs[q], wffc, ub, tg, textbook, apply, badc)
                nbad.copy_to_device(np.zeros(1, np.int32))
                launch(n_owned, Pd, d(pre), wd, d(rs[q]), d(xs[q]), wffd, d(ub), d(tg), 1.0,
                       textbook, apply, badd, nbad)
                assert nbad.copy_to_host()[0] == nc and (nc > 0) == (q == 2), (dt, kind, q, nc)
                assert np.array_equal(badd.copy_to_host(), badc)
            assert badc[1] == 1
            rtol, atol = tol[dt]
            pc = tiles_to_rows(P, n_owned).astype(np.float64)
            pg = Pd.copy_to_host().astype(np.float64)
            assert np.allclose(pg, pc, rtol=rtol, atol=atol), (dt, kind, np.abs(pg - pc).max())
            assert np.allclose(wd.copy_to_host(), wc, rtol=rtol, atol=atol), (dt, kind)
            if n_ff:
                assert np.allclose(wffd.copy_to_host(), wffc, rtol=rtol, atol=atol), dt
            assert not np.array_equal(pc, p0.astype(dt).astype(np.float64))
            assert (not np.array_equal(wc, w0)) == bool(apply), (dt, apply)
        print("ok")
    """)


def test_integer_p_follows_float64():
    """int16 / int32 P with a scale (GpuLearner: P0 filled on the device, float rows scaled on
    upload) track the CPU float64 learner over a training loop; rows round-trip as stored."""
    run_script("""
        from tests.backends.gpu import build, copy_net, run_chunks, start_loop
        from tsn_mpi.backends.gpu import GpuLearner
        from tsn_mpi.backends.gpu.learner import rows_to_storage
        from tsn_mpi.comm import SerialComm
        from tsn_mpi.backends.cpu.learner import CpuLearner
        from tsn_mpi.backends.cpu.simulator import CpuSimulator

        extra = {"network": {"x_bal_e": 12.0, "x_bal_i": 10.0}, "neuron": {"noise_sigma": 0.3},
                 "learning": {"p_precision": "float64"}}
        cfg, d, net, cell, tau, sig = build(extra)
        cn = copy_net(net)
        sim = CpuSimulator(cfg, d, cn, cell, SerialComm(), tau, sig)
        ref = CpuLearner(cfg, d, cn)
        p0 = ref.p_rows()
        gls = {}
        for prec, scale, tol_p in (("int16", 2.0**14, 4e-3), ("int32", 2.0**20, 1e-5)):
            c2 = cfg.replace(learning__p_precision=prec, learning__p_scale=scale)
            gn = copy_net(net)
            fill = GpuLearner(c2, d, gn)
            up = GpuLearner(c2, d, copy_net(net), p_rows=p0)
            stored = rows_to_storage(p0, np.dtype(prec), scale)
            assert fill.p_rows().dtype == np.dtype(prec)
            assert np.abs(fill.p_rows().astype(np.int64) - stored).max() <= 1
            assert np.array_equal(up.p_rows(), stored)
            back = GpuLearner(c2, d, copy_net(net), p_rows=up.p_rows())
            assert np.array_equal(back.p_rows(), stored)
            gls[prec] = (fill, gn, scale, tol_p)
        seen = []
        start_loop(sim, cn, d, 1)
        def learn(r, x, u, t):
            seen.append((r.copy(), x.copy(), u.copy(), t.copy()))
            return ref.update(r, x, u, t)
        class Rec:
            update = staticmethod(learn)
        run_chunks(sim, Rec, cn, d, 0, 1, d.n_steps, 0)
        assert len(seen) >= 5 and np.abs(cn.w_in - net.w_in).max() > 1e-2
        for prec, (gl, gn, scale, tol_p) in gls.items():
            for r, x, u, t in seen:
                assert gl.update(r, x, u, t) == 0
            gl.sync_to_host()
            p = gl.p_rows().astype(np.float64) / scale
            assert np.abs(p - ref.p_rows()).max() < tol_p, (prec, np.abs(p - ref.p_rows()).max())
            dw = np.abs(gn.w_in - cn.w_in).max() / np.abs(cn.w_in - net.w_in).max()
            assert dw < 20 * tol_p, (prec, dw)
        print("ok")
    """)


SIM_VS_CPU = """
    import sys
    from tests.backends.gpu import build, copy_net, host, start_loop, run_chunks, train_loop
    from tsn_mpi.backends.gpu import GpuLearner, GpuSimulator
    from tsn_mpi.comm import SerialComm
    from tsn_mpi.backends.cpu.learner import CpuLearner
    from tsn_mpi.backends.cpu.simulator import CpuSimulator
    from tsn_mpi.simulate.trial import ROLL_NAMES

    noise, path = sys.argv[1], sys.argv[2]
    extra = {"network": {"x_bal_e": 12.0, "x_bal_i": 10.0},
             "neuron": {"noise_sigma": 0.3, "noise_model": noise},
             "plastic": {"l_ff": 3, "w_ff": 0.5}, "feedforward": {"mu": 2000.0}}
    cfg, d, net, cell, tau, sig = build(extra, exact=True)
    cn, gn = copy_net(net), copy_net(net)
    cpu = CpuSimulator(cfg, d, cn, cell, SerialComm(), tau, sig)
    gpu = GpuSimulator(cfg, d, gn, cell, SerialComm(), tau, sig,
                       host_exchange=path == "host", fused=path == "fused")
    for mode in ("init", "test"):
        for s in (cpu, gpu):
            s.start_trial(mode, 5, 0, np.arange(10), ROLL_NAMES if mode == "test" else ())
            s.advance(1, 37)
            s.advance(38, d.n_steps)
        a, b = cpu.finish_trial(), gpu.finish_trial()
        assert a.ns.sum() > 20 and np.array_equal(a.ns, b.ns), mode
        for f in ("bins", "spike_steps", "uavg", "u0_std"):
            x, y = getattr(a, f), getattr(b, f)
            assert (x is None and y is None) or np.array_equal(x, y, equal_nan=True), (mode, f)
    assert (gpu._fused_kernel is not None) == (path == "fused")
    cl, gl = CpuLearner(cfg, d, cn), GpuLearner(cfg, d, gn)
    assert np.array_equal(cl.p_rows(), gl.p_rows())
    seen = {"cpu": [], "gpu": []}
    def watch(sim, key):
        def f(end):
            seen[key].append((host(sim.traces_at(end)).copy(), host(sim.r_ff)[:d.l_ff].copy(),
                              host(sim.u_bal).copy()))
        return f
    for loop in (1, 2):
        a, nb_c = train_loop(cpu, cl, cn, d, loop, measure=loop == 2, on_chunk=watch(cpu, "cpu"))
        b, nb_g = train_loop(gpu, gl, gn, d, loop, measure=loop == 2, on_chunk=watch(gpu, "gpu"))
        assert nb_c == nb_g == 0
        assert np.array_equal(a.ns, b.ns), loop
    for x, y in zip(seen["cpu"], seen["gpu"]):
        for q in range(3):
            assert np.allclose(x[q], y[q], rtol=1e-5, atol=1e-6)
    assert np.nanmax(np.abs(a.bins - b.bins)) < 1e-4
    gl.sync_to_host()
    assert np.abs(cn.w_in - net.w_in).max() > 0.05 and np.abs(cn.w_ff - net.w_ff).max() > 0.05
    assert np.allclose(gn.w_in, cn.w_in, rtol=1e-4, atol=1e-5)
    assert np.allclose(gn.w_ff, cn.w_ff, rtol=1e-4, atol=1e-5)
    assert np.allclose(gl.p_rows(), cl.p_rows(), rtol=1e-4, atol=1e-6)
    print("ok")
"""


@pytest.mark.parametrize(
    "noise,path", [("voltage", "fused"), ("current", "steps"), ("voltage", "host")]
)
def test_simulator_matches_cpu(noise, path, tmp_path):
    """init and test trials bitwise, two training loops to float32 tolerance (same spikes)."""
    script = tmp_path / "sim_vs_cpu.py"
    script.write_text(PRELUDE + textwrap.dedent(SIM_VS_CPU))
    run_script(
        f"import sys; sys.argv = ['x', {noise!r}, {path!r}]\nexec(open({str(script)!r}).read())"
    )


GLIF_VS_CPU = """
    import copy
    from tests.backends.gpu import build, copy_net, train_loop
    from tsn_mpi.backends.gpu import GpuLearner, GpuSimulator
    from tsn_mpi.comm import SerialComm
    from tsn_mpi.backends.cpu.learner import CpuLearner
    from tsn_mpi.backends.cpu.simulator import CpuSimulator

    for k, path in ((1, "fused"), (2, "steps"), (3, "fused"), (4, "steps"), (5, "fused")):
        extra = {"network": {"x_bal_e": 12.0, "x_bal_i": 10.0},
                 "neuron": {"noise_sigma": 0.3, "model": f"tsn_mpi.models.glif:glif{k}",
                            "glif_params": {"invtau_Ij": [0.5, 0.25]} if k >= 3 else {}}}
        cfg, d, net, cell, tau, sig = build(extra, exact=True)
        gcell = copy.deepcopy(cell)
        cn, gn = copy_net(net), copy_net(net)
        cpu = CpuSimulator(cfg, d, cn, cell, SerialComm(), tau, sig)
        gpu = GpuSimulator(cfg, d, gn, gcell, SerialComm(), tau, sig, fused=path == "fused")
        for s in (cpu, gpu):
            s.start_trial("test", 4, 0, np.arange(8), ("utotal",))
            s.advance(1, 41)
            s.advance(42, d.n_steps)
        a, b = cpu.finish_trial(), gpu.finish_trial()
        assert a.ns.sum() > (5 if k == 5 else 20), (k, a.ns.sum())
        assert np.array_equal(a.ns, b.ns), (k, a.ns.sum(), b.ns.sum())
        assert np.array_equal(a.spike_steps, b.spike_steps), k
        assert np.array_equal(cell.state, gcell.state), k
        if k == 5:  # a training loop: weights move, spikes and the persistent state agree
            cl, gl = CpuLearner(cfg, d, cn), GpuLearner(cfg, d, gn)
            a, _ = train_loop(cpu, cl, cn, d, 1)
            b, _ = train_loop(gpu, gl, gn, d, 1)
            assert np.array_equal(a.ns, b.ns)
            gl.sync_to_host()
            assert np.allclose(gn.w_in, cn.w_in, rtol=1e-4, atol=1e-5)
            assert np.array_equal(cell.state, gcell.state)
    print("ok")
"""


def test_glif_models_match_cpu(tmp_path):
    """GLIF1-5 on the GPU kernels: the same spikes and after-trial state as the CPU loop."""
    script = tmp_path / "glif_vs_cpu.py"
    script.write_text(PRELUDE + textwrap.dedent(GLIF_VS_CPU))
    run_script(f"exec(open({str(script)!r}).read())")


def test_interrupt_on_cpu_resume_on_gpu():
    """CPU trial_state taken mid-loop restores into a GpuSimulator (and its own round-trips)."""
    run_script("""
        from tests.backends.gpu import build, copy_net, run_chunks, start_loop
        from tsn_mpi.backends.gpu import GpuLearner, GpuSimulator
        from tsn_mpi.comm import SerialComm
        from tsn_mpi.backends.cpu.learner import CpuLearner
        from tsn_mpi.backends.cpu.simulator import CpuSimulator

        extra = {"network": {"x_bal_e": 12.0, "x_bal_i": 10.0}, "neuron": {"noise_sigma": 0.3},
                 "plastic": {"l_ff": 2, "w_ff": 0.5}, "feedforward": {"mu": 2000.0}}
        cfg, d, net, cell, tau, sig = build(extra, exact=True)
        stop = 69  # inside the learning period, at a chunk end
        # reference: the whole loop on the CPU
        cn = copy_net(net)
        cpu = CpuSimulator(cfg, d, cn, cell, SerialComm(), tau, sig)
        cl = CpuLearner(cfg, d, cn)
        start_loop(cpu, cn, d, 1, measure=True)
        run_chunks(cpu, cl, cn, d, 0, 1, d.n_steps, 0)
        ref = cpu.finish_trial()
        # CPU up to `stop`, then the GPU from its trial state
        cn2 = copy_net(net)
        cpu2 = CpuSimulator(cfg, d, cn2, cell, SerialComm(), tau, sig)
        cl2 = CpuLearner(cfg, d, cn2)
        start_loop(cpu2, cn2, d, 1, measure=True)
        seq, _ = run_chunks(cpu2, cl2, cn2, d, 0, 1, stop, 0)
        rows, globs = cpu2.trial_state()
        gn = copy_net(cn2)
        gpu = GpuSimulator(cfg, d, gn, cell, SerialComm(), tau, sig)
        gl = GpuLearner(cfg, d, gn, p_rows=cl2.p_rows())
        start_loop(gpu, gn, d, 1, measure=True)
        gpu.restore_trial_state(rows, globs)
        # the GPU's own state round-trips through trial_state once it has advanced
        seq, _ = run_chunks(gpu, gl, gn, d, 0, stop + 1, stop + 10, seq)
        rows_g, globs_g = gpu.trial_state()
        seq, _ = run_chunks(gpu, gl, gn, d, 0, stop + 11, d.n_steps, seq)
        res = gpu.finish_trial()
        assert np.array_equal(res.ns, ref.ns)
        assert np.nanmax(np.abs(res.bins - ref.bins)) < 1e-4
        gl.sync_to_host()
        assert np.allclose(gn.w_in, cn.w_in, rtol=1e-4, atol=1e-5)
        assert np.allclose(gn.w_ff, cn.w_ff, rtol=1e-4, atol=1e-5)
        assert set(rows_g) == set(rows) and set(globs_g) == set(globs)
        for k in rows:
            assert rows_g[k].dtype == rows[k].dtype and rows_g[k].shape == rows[k].shape, k
        print("ok")
    """)


RECORD = """
    import json, sys
    from numba.cuda.simulator import kernel as simk
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    seen = {}
    orig = simk.FakeCUDAKernel.__call__

    def desc(a):
        a = a._ary if isinstance(a, FakeCUDAArray) else a
        if isinstance(a, np.ndarray):
            return ["array", a.dtype.name, a.ndim]
        if isinstance(a, bool):
            return ["scalar", "bool"]
        if isinstance(a, (int, np.integer)):
            return ["scalar", "int64"]
        return ["scalar", "float64"]

    def record(self, *args):
        if not self._device:
            fn = self.fn
            fac = getattr(self, "tsn_key", None)
            seen[json.dumps([fn.__name__, fac, [desc(a) for a in args]])] = 1
        return orig(self, *args)

    simk.FakeCUDAKernel.__call__ = record
    from tests.backends.gpu import build, train_loop
    from tsn_mpi.backends.gpu import GpuLearner, GpuSimulator
    from tsn_mpi.comm import SerialComm
    for prec, path, model, kern in (("float32", "fused", "lif", None),
                                    ("float64", "steps", "glif5", "streamed"),
                                    ("float16", "host", "glif3", "warp"),
                                    ("int16", "fused", "glif2", None)):
        plugin = f"tsn_mpi.models.{model.rstrip('12345')}:{model}"
        extra = {"plastic": {"l_ff": 2}, "learning": {"p_precision": prec},
                 "neuron": {"noise_sigma": 0.2, "model": plugin}}
        cfg, d, net, cell, tau, sig = build(extra)
        sim = GpuSimulator(cfg, d, net, cell, SerialComm(), tau, sig,
                           host_exchange=path == "host", fused=path == "fused")
        lrn = GpuLearner(cfg, d, net, kernel=kern)
        train_loop(sim, lrn, net, d, 1, measure=True)
        GpuLearner(cfg, d, net, p_rows=lrn.p_rows())
    json.dump([json.loads(k) for k in seen], open(sys.argv[1], "w"))
"""

LOWER = """
    import json, sys
    from numba import from_dtype, types
    from numba.cuda import dispatcher as cuda_dispatcher
    from numba.cuda.compiler import compile_cuda

    class Sm90:
        compute_capability = (9, 0)

    cuda_dispatcher.get_current_device = lambda: Sm90()  # device functions ask the driver
    from tsn_mpi.backends.gpu import loop as K
    from tsn_mpi.backends.gpu import rls as R

    def numba_type(x):
        if x[0] == "array":
            return types.Array(from_dtype(np.dtype(x[1])), x[2], "C")
        return types.boolean if x[1] == "bool" else from_dtype(np.dtype(x[1]))

    names = []
    for name, fac, descs in json.load(open(sys.argv[1])):
        fn = R.from_key(fac) if fac else getattr(K, name, None) or getattr(R, name)
        argtypes = tuple(numba_type(x) for x in descs)
        cres = compile_cuda(fn.py_func, types.void, argtypes, cc=(9, 0))
        assert cres.library.get_llvm_str()
        names.append(name)
    print(json.dumps(sorted(set(names))))
"""


def test_kernels_type_and_lower_for_sm90(tmp_path):
    sigs = tmp_path / "sigs.json"
    rec = tmp_path / "record.py"
    rec.write_text(PRELUDE + textwrap.dedent(RECORD))
    run_script(f"import sys; sys.argv = ['x', {str(sigs)!r}]\nexec(open({str(rec)!r}).read())")
    low = tmp_path / "lower.py"
    low.write_text(PRELUDE + textwrap.dedent(LOWER))
    out = run_script(
        f"import sys; sys.argv = ['x', {str(sigs)!r}]\nexec(open({str(low)!r}).read())", sim=False
    )
    names = set(json.loads(out.strip().splitlines()[-1]))
    expect = {
        "neuron_step",
        "deliver",
        "run_steps",
        "traces_at",
        "kernel",
        "fill_p0",
    }
    assert expect <= names, expect - names


def test_unsupported_settings_fail_by_name():
    """Custom cell models on the GPU, small mode and full storage: one ConfigError each (no
    device needed)."""
    from tests.backends.gpu import build
    from tsn_mpi.backends.gpu import GpuLearner, GpuSimulator
    from tsn_mpi.comm import SerialComm
    from tsn_mpi.errors import ConfigError

    cfg, d, net, cell, tau, sig = build()
    cell.model_id = -1
    with pytest.raises(ConfigError, match="custom cell models"):
        GpuSimulator(cfg, d, net, cell, SerialComm(), tau, sig)
    for extra, what in (
        ({"learning": {"mode": "small"}}, "learning.mode"),
        ({"learning": {"p_storage": "full"}}, "learning.p_storage"),
    ):
        cfg, d, net, *_ = build(extra)
        with pytest.raises(ConfigError, match=what):
            GpuLearner(cfg, d, net)


TWO_RANKS = """
    import sys
    from tsn_mpi.comm.mpi import MpiComm
    comm = MpiComm.world()
    if comm.size != int(sys.argv[1]):
        sys.exit(f"expected {sys.argv[1]} ranks, got {comm.size}")
    from tests.backends.gpu import build, copy_net, train_loop
    from tsn_mpi.backends.gpu import GpuLearner, GpuSimulator
    from tsn_mpi.comm import SerialComm
    from tsn_mpi.backends.cpu.learner import CpuLearner
    from tsn_mpi.backends.cpu.simulator import CpuSimulator

    extra = {"network": {"x_bal_e": 12.0, "x_bal_i": 10.0}, "neuron": {"noise_sigma": 0.3},
             "plastic": {"l_ff": 2, "w_ff": 0.5}, "feedforward": {"mu": 2000.0}}
    cfg, d, net, cell, tau, sig = build(extra, exact=True, comm=comm)
    gpu = GpuSimulator(cfg, d, net, cell, comm, tau, sig)
    assert gpu.host_exchange and not gpu.fused
    gl = GpuLearner(cfg, d, net)
    res, _ = train_loop(gpu, gl, net, d, 1, measure=True)
    gl.sync_to_host()
    counts = comm.allgather_counts(net.n_owned)
    ns = comm.allgatherv(res.ns, counts)
    w = comm.allgatherv(net.w_in, counts)
    if comm.rank == 0:
        cfg, d, ref, cell, tau, sig = build(extra, exact=True)
        cpu = CpuSimulator(cfg, d, ref, cell, SerialComm(), tau, sig)
        a, _ = train_loop(cpu, CpuLearner(cfg, d, ref), ref, d, 1, measure=True)
        assert a.ns.sum() > 20 and np.array_equal(ns, a.ns), (ns, a.ns)
        assert np.allclose(w, ref.w_in, rtol=1e-4, atol=1e-5)
        print("ok two ranks")
"""


@pytest.mark.mpi
def test_two_ranks_exchange_spikes_through_the_host(tmp_path):
    """Two simulated GPUs (2 MPI ranks, host allgather per step) train like one CPU process."""
    from tests import mpirun

    if not mpirun.have_mpi():
        pytest.skip("mpi4py/mpiexec not installed")
    script = tmp_path / "two_ranks.py"
    script.write_text(PRELUDE + textwrap.dedent(TWO_RANKS))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NUMBA_ENABLE_CUDASIM", "1")  # read by mpirun.mpi_env for the ranks
        proc = mpirun.run_mpi(2, [str(script), "2"], timeout=900)
    assert proc.returncode == 0 and "ok two ranks" in proc.stdout, proc.stdout + proc.stderr
    print(proc.stdout)


def test_gpu_benchmark_runs_under_the_simulator(tmp_path):
    """benchmarks/gpu.py --smoke end to end (tiny sizes), so the GPU benchmark cannot rot."""
    out = tmp_path / "gpu.json"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NUMBA_NUM_THREADS="1")
    env["PYTHONWARNINGS"] = "ignore::RuntimeWarning"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--reps", "1",
         "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["rls"] and res["loops"]["micro"]["fused"]
    assert "two launches per step" in proc.stdout


def test_gpu_config_keys_choose_the_paths():
    """gpu.fused, gpu.rls_kernel and gpu.rls_unroll (config, not environment variables) pick
    the time-loop path and the RLS kernel; an explicit argument still wins."""
    run_script("""
        from tests.backends.gpu import build, copy_net
        from tsn_mpi.backends.gpu import GpuLearner, GpuSimulator
        from tsn_mpi.comm import SerialComm

        for fused, kind, unroll in ((True, "auto", 0), (False, "warp", 0), (True, "block", 3)):
            cfg, d, net, cell, tau, sig = build({"gpu": {"fused": fused, "rls_kernel": kind,
                                                         "rls_unroll": unroll}})
            gn = copy_net(net)
            sim = GpuSimulator(cfg, d, gn, cell, SerialComm(), tau, sig)
            assert sim.fused is fused
            gl = GpuLearner(cfg, d, gn)
            assert gl.rls.kind == ("block" if kind == "auto" else kind), (kind, gl.rls.kind)
            if kind == "block":
                assert gl.rls.kernel.tsn_key[-1] == unroll
        assert GpuLearner(cfg, d, copy_net(net), kernel="streamed").rls.kind == "streamed"
        print("ok")
    """)
