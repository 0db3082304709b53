"""The GPU backend on a real GPU against the CPU backend (marker ``gpu``; skipped without one).

A 512-neuron network with a 500 ms trial.  Spike inputs on the GPU are summed with float
atomics in arbitrary order, so after learning starts the two backends drift apart like two
chaotic runs; the tests therefore compare (1) spikes over the first 100 steps and a whole test
trial with dyadic weights (exact sums), (2) the RLS kernel fed the same inputs as the CPU
learner for two loops (weights and P to float tolerance), (3) two full GPU training loops
against the CPU statistically (rates, learned weights), for the fused and the per-step paths.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.gpu import build, copy_net, host, start_loop, train_loop
from tsn_mpi.backends.gpu.device import gpu_available, require_gpu
from tsn_mpi.comm import SerialComm
from tsn_mpi.errors import LaunchError

HAVE_GPU = gpu_available()
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="no usable CUDA device (numba.cuda)")

SMALL = {
    "network": {"n_cells": 512, "p_ee": 0.4},
    "simulation": {"stim_on": 200.0, "stim_off": 300.0, "train_duration": 200.0,
                   "u0_skip_time": 100.0},
}  # fmt: skip


@pytest.mark.skipif(HAVE_GPU, reason="a GPU is available")
def test_require_gpu_says_why_in_one_line():
    with pytest.raises(LaunchError) as err:
        require_gpu()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("run.backend = 'gpu' (or --gpu) but ")
    assert "tsn-mpi[gpu]" in msg


@pytest.mark.gpu
@needs_gpu
def test_select_device_binds_a_gpu():
    from tsn_mpi.backends.gpu import select_device

    assert select_device(SerialComm()) >= 0  # before any other GPU work of the process
    require_gpu()


def _sims(extra=None, exact=True, **kw):
    from tsn_mpi.backends.cpu.simulator import CpuSimulator
    from tsn_mpi.backends.gpu import GpuSimulator

    cfg, d, net, cell, tau, sig = build(extra, exact=exact, base=SMALL)
    cn, gn = copy_net(net), copy_net(net)
    cpu = CpuSimulator(cfg, d, cn, cell, SerialComm(), tau, sig)
    gpu = GpuSimulator(cfg, d, gn, cell, SerialComm(), tau, sig, **kw)
    return cfg, d, net, cn, gn, cpu, gpu


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("path", ["fused", "steps", "host"])
def test_same_spikes_without_learning(path):
    kw = {"fused": path == "fused", "host_exchange": path == "host"}
    extra = {"neuron": {"noise_sigma": 0.3}}
    cfg, d, net, cn, gn, cpu, gpu = _sims(extra, **kw)
    for s in (cpu, gpu):
        s.start_trial("test", 3, 0, np.arange(64), ("utotal", "uplastic"))
        s.advance(1, 100)
    a = cpu.finish_trial().ns
    b = gpu.finish_trial().ns
    assert a.sum() > 0 and np.array_equal(a, b)
    assert (gpu._fused_kernel is not None) == (path == "fused"), gpu.fused_error
    for s in (cpu, gpu):
        s.advance(101, d.n_steps)
    a, b = cpu.finish_trial(), gpu.finish_trial()
    # dyadic weights: sums are exact; only FMA contraction / libdevice ulps could differ
    assert np.mean(a.ns == b.ns) > 0.95, (a.ns.sum(), b.ns.sum())
    assert abs(int(a.ns.sum()) - int(b.ns.sum())) <= 0.05 * a.ns.sum()


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize(
    "precision,kernel",
    [("float32", None), ("float32", "warp"), ("float32", "streamed"), ("float64", None),
     ("float16", None)],  # fmt: skip
)
def test_rls_kernel_follows_cpu_learner(precision, kernel):
    """Both learners get the CPU simulator's traces for two loops: same weights and P."""
    from tsn_mpi.backends.cpu.learner import CpuLearner
    from tsn_mpi.backends.cpu.simulator import CpuSimulator
    from tsn_mpi.backends.gpu import GpuLearner

    extra = {"learning": {"p_precision": precision}, "plastic": {"l_ff": 2, "w_ff": 0.3}}
    cfg, d, net, cell, tau, sig = build(extra, base=SMALL)
    cn, gn = copy_net(net), copy_net(net)
    sim = CpuSimulator(cfg, d, cn, cell, SerialComm(), tau, sig)
    cl, gl = CpuLearner(cfg, d, cn), GpuLearner(cfg, d, gn, kernel=kernel)
    assert np.array_equal(cl.p_rows(), gl.p_rows())
    for loop in (1, 2):
        start_loop(sim, cn, d, loop)
        ls, step, seq = d.learn_step, 1, 0
        while step <= d.n_steps:
            if step % ls == 0 and step > d.stim_off_step:
                r = sim.traces_at(step - 1)
                tgt = net.targets[0, seq]
                assert cl.update(r, sim.r_ff, sim.u_bal, tgt) == 0
                assert gl.update(r.copy(), sim.r_ff.copy(), sim.u_bal.copy(), tgt) == 0
                seq += 1
            end = min((step // ls + 1) * ls - 1, d.n_steps)
            sim.advance(step, end)
            step = end + 1
    gl.sync_to_host()
    rtol = {"float64": 1e-9, "float32": 1e-3, "float16": 2e-2}[precision]
    scale = np.abs(cn.w_in - net.w_in).max()
    assert scale > 1e-3
    assert np.abs(gn.w_in - cn.w_in).max() <= rtol * max(1.0, np.abs(cn.w_in).max())
    assert np.abs(gn.w_ff - cn.w_ff).max() <= rtol * max(1.0, np.abs(cn.w_ff).max())
    pc, pg = cl.p_rows().astype(np.float64), gl.p_rows().astype(np.float64)
    assert np.abs(pg - pc).max() <= rtol * np.abs(pc).max()


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("path", ["fused", "steps"])
def test_training_two_loops_like_cpu(path):
    from tsn_mpi.backends.cpu.learner import CpuLearner
    from tsn_mpi.backends.gpu import GpuLearner
    from tsn_mpi.learn.correlation import mean_correlation, pearson_per_neuron

    cfg, d, net, cn, gn, cpu, gpu = _sims(exact=False, fused=path == "fused")
    cl, gl = CpuLearner(cfg, d, cn), GpuLearner(cfg, d, gn)
    cors = {}
    for name, sim, lrn, nt in (("cpu", cpu, cl, cn), ("gpu", gpu, gl, gn)):
        for loop in (1, 2):
            res, nbad = train_loop(sim, lrn, nt, d, loop, measure=loop == 2)
            assert nbad == 0
        cors[name] = mean_correlation(pearson_per_neuron(nt.targets[0], res.bins[0]))[0]
        rate = res.ns.mean() / d.train_time * 1000
        cors[name + "_rate"] = rate
    gl.sync_to_host()
    dw_c, dw_g = (cn.w_in - net.w_in).ravel(), (gn.w_in - net.w_in).ravel()
    assert np.corrcoef(dw_c, dw_g)[0, 1] > 0.5, cors
    assert abs(cors["gpu_rate"] - cors["cpu_rate"]) < 0.2 * cors["cpu_rate"] + 0.5, cors
    assert np.isnan(cors["gpu"]) == np.isnan(cors["cpu"]), cors
    assert np.isnan(cors["cpu"]) or abs(cors["gpu"] - cors["cpu"]) < 0.1, cors
    r = host(gpu.traces_at(d.n_steps))
    assert np.all(np.isfinite(r))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("k", [2, 5])
def test_glif_spikes_like_cpu(k):
    """GLIF on the device: the same spikes as the CPU for a test trial (dyadic weights; FMA
    contraction may flip a rare threshold crossing)."""
    import copy

    from tsn_mpi.backends.cpu.simulator import CpuSimulator
    from tsn_mpi.backends.gpu import GpuSimulator

    extra = {"neuron": {"noise_sigma": 0.3, "model": f"tsn_mpi.models.glif:glif{k}"}}
    cfg, d, net, cell, tau, sig = build(extra, exact=True, base=SMALL)
    gcell = copy.deepcopy(cell)
    cpu = CpuSimulator(cfg, d, copy_net(net), cell, SerialComm(), tau, sig)
    gpu = GpuSimulator(cfg, d, copy_net(net), gcell, SerialComm(), tau, sig)
    for s in (cpu, gpu):
        s.start_trial("test", 3, 0, np.arange(16), ("utotal",))
        s.advance(1, d.n_steps)
    a, b = cpu.finish_trial().ns, gpu.finish_trial().ns
    assert a.sum() > 0 and np.mean(a == b) > 0.95, (a.sum(), b.sum())
    assert np.allclose(cell.state, gcell.state, rtol=1e-3, atol=1e-3) or np.mean(a == b) < 1
