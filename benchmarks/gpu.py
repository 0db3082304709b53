"""GPU backend on one GPU: RLS kernel bandwidth and seconds per training loop.

    python benchmarks/gpu.py [--loops 3] [--skip-1m] [--smoke] [--out FILE]

(a) The fast-mode RLS kernels on packed P (block: one thread block per neuron; warp: one warp
    per neuron, both with the row staged in shared memory; streamed: one warp per neuron
    reading P twice from device memory) for n = 58 and 90 inputs, float32 (and float16, int16,
    float64 at n = 90; 1M neurons at n = 90 if memory allows; the block kernel staging 16 or
    all of its loads per thread as one unrolled group), as GB/s = 2 * bytes(P) / time (one read
    and one write of P, like a copy), against the device copy bandwidth (numba device-to-device
    copy of a 4 GB array, read + write counted).  The training loops of (b) use the fastest float32
    kernel at n = 90 (unless --rls-kernel is given; config keys gpu.rls_kernel / gpu.rls_unroll).
(b) Seconds per training loop (one 2000 ms trial, 100 RLS updates) for the default config
    (4096 neurons) and the paper's 1M model (K = 512, l_exc = l_inh = 45, 90 plastic inputs),
    with GpuSimulator + GpuLearner driven like ``phases.train`` on one process; split into the
    time loop and RLS.  The network is built in-process with the CPU plugins; for the 1M model
    the default static plugin's connections (1e9 synapses, the same streams) are generated in
    parallel straight into the GPU's outgoing map (~5 GB of host memory).  The default config
    also runs one loop with two kernel launches per step instead of the fused kernel.  As in
    ``tsn-mpi init``, an init trial first measures each neuron's mean current, which offsets
    its target (without it the firing rate climbs loop after loop, on the CPU as on the GPU).

Prints progress lines and a table; saves benchmarks/results/gpu_<device>.json.  Parts that run
out of device or host memory are skipped with a message.  ``--smoke`` runs tiny sizes (for
checking the script under NUMBA_ENABLE_CUDASIM=1).
"""

from __future__ import annotations

import argparse
import math
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from numba import cuda, njit, prange  # noqa: E402

from tsn_mpi.backends.gpu import GpuLearner, GpuSimulator, select_device  # noqa: E402
from tsn_mpi.backends.gpu import rls as R  # noqa: E402
from tsn_mpi.backends.gpu.device import simulated  # noqa: E402
from tsn_mpi.comm import SerialComm  # noqa: E402
from tsn_mpi.config import default_config, derive, from_dict  # noqa: E402
from tsn_mpi.models.lif import lif  # noqa: E402
from tsn_mpi.network.build import (  # noqa: E402
    Network,
    build_ff_rates,
    build_plastic,
    build_static,
    build_stimulus,
    build_targets,
)
from tsn_mpi.network.context import PluginContext  # noqa: E402
from tsn_mpi.network.sampling import scratch_table  # noqa: E402
from tsn_mpi.network.static import sorted_partners  # noqa: E402
from tsn_mpi.partition import partition  # noqa: E402

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f} s] {msg}", flush=True)


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".upper()
    return isinstance(exc, MemoryError) or "OUT_OF_MEMORY" in text or "OUT OF MEMORY" in text


def free_device() -> None:
    """Release device memory of dead arrays now (numba defers frees)."""
    import gc

    gc.collect()
    try:
        cuda.current_context().deallocations.clear()
    except Exception:  # noqa: BLE001 - simulator or another numba version
        pass


# ------------------------------------------------------------------------------ bandwidths


def copy_bandwidth(nbytes: int, reps: int) -> float:
    """GB/s of a device-to-device copy, read + write counted (best of reps)."""
    n = nbytes // 4
    src = cuda.device_array(n, np.float32)
    dst = cuda.device_array(n, np.float32)
    dst.copy_to_device(src)
    cuda.synchronize()
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        dst.copy_to_device(src)
        cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    del src, dst
    free_device()
    return 2 * n * 4 / best / 1e9


def rls_bandwidth(n_owned: int, l_half: int, reps: int, dtype: str = "float32",
                  kernel: str = "block", unroll: int = 0) -> dict:
    """Time the packed RLS kernel ``kernel`` (block, warp or streamed; see rls.rls_launch) on
    n_owned neurons with m = 2 * l_half inputs and P of ``dtype`` (int16: scale 2^14)."""
    m = 2 * l_half
    n_rls = m
    L = n_rls * (n_rls + 1) // 2
    g = np.random.default_rng(0)
    pre = np.empty((n_owned, m), np.int32)
    for j in range(m):  # random partners, E first (as the plastic plugin)
        lo, hi = (0, n_owned // 2) if j < l_half else (n_owned // 2, n_owned)
        pre[:, j] = g.integers(lo, hi, n_owned)
    w = np.where(np.arange(m)[None, :] < l_half, 0.3, -0.3).astype(np.float32)
    w = np.ascontiguousarray(np.broadcast_to(w, (n_owned, m)))
    P = cuda.device_array((n_owned, L), np.dtype(dtype))
    pre_d, w_d = cuda.to_device(pre), cuda.to_device(w)
    scale = 2.0**14 if dtype == "int16" else 1.0
    lim = R.INT_LIMITS.get(dtype, 0)
    R.fill_p0[-(-n_owned // 4), 128](P, pre_d, w_d, 0, m, 0.8, 0.01, 1.0, scale, lim)
    r = cuda.to_device(g.uniform(0.0, 0.05, n_owned))
    x_ff = cuda.to_device(np.zeros(1))
    w_ff = cuda.to_device(np.zeros((n_owned, 1), np.float32))
    u_bal = cuda.to_device(g.normal(size=n_owned).astype(np.float32))
    target = cuda.to_device(g.normal(size=n_owned).astype(np.float32))
    bad = cuda.to_device(np.zeros(n_owned, np.uint8))
    nbad = cuda.to_device(np.zeros(1, np.int32))
    launch = R.rls_launch(0, m, dtype, kernel, unroll)

    def run():
        launch(n_owned, P, pre_d, w_d, r, x_ff, w_ff, u_bal, target, scale, 0, 0, bad, nbad)
        cuda.synchronize()

    t = time.perf_counter()
    run()  # compile + first call
    first = time.perf_counter() - t
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    nb = int(nbad.copy_to_host()[0])
    p_bytes = L * n_owned * np.dtype(dtype).itemsize
    best = min(times)
    P = pre_d = w_d = None  # noqa: F841 - release the device arrays
    free_device()
    return {"n_owned": n_owned, "n_rls": n_rls, "dtype": dtype, "kernel": kernel,
            "unroll": unroll, "threads_per_block": launch.threads,
            "neurons_per_block": launch.neurons_per_block, "p_gb": p_bytes / 1e9, "best_s": best,
            "median_s": float(np.median(times)), "first_call_s": first,
            "gb_s": 2 * p_bytes / best / 1e9, "bad_flags": nb}  # fmt: skip


# ---------------------------------------------------------------------------- loop timings


@njit(parallel=True)
def _er_outgoing(seed, n, k2, n_exc, tsize):  # pragma: no cover - jitted
    """The default static plugin's connections (network.static._er_out, same streams) as the
    outgoing map, in parallel: post gids and weight codes (pre E/I * 2 + post E/I)."""
    post = np.empty(n * k2, np.int32)
    code = np.empty(n * k2, np.uint8)
    blk = 4096
    for b in prange((n + blk - 1) // blk):
        table = np.full(tsize, -1, np.int64)
        buf = np.empty(k2, np.int64)
        st = np.empty(1, np.uint64)
        for pre in range(b * blk, min(n, (b + 1) * blk)):
            sorted_partners(seed, pre, n, k2, table, buf, st)
            c_pre = 0 if pre < n_exc else 2
            for q in range(k2):
                post[pre * k2 + q] = buf[q]
                code[pre * k2 + q] = c_pre + (0 if buf[q] < n_exc else 1)
    return post, code


def build_network(cfg, direct_static: bool):
    """The network of cfg for one process (init statistics faked: no init trial).

    direct_static: build the default static plugin's connections straight into the outgoing
    map the GPU uses (parallel, no incoming CSR) and return it as static_out."""
    d = derive(cfg)
    n = d.n_cells
    ctx = PluginContext(cfg, d, range(n), Path("."),
                        {"ns": np.zeros(n, np.int64), "uavg": np.zeros(n)})  # fmt: skip
    t = time.perf_counter()
    static_out = None
    if direct_static:
        k2 = 2 * d.k
        (w_ee, w_ie), (w_ei, w_ii) = d.w_static
        table = np.array([w_ee, w_ie, w_ei, w_ii], np.float32)
        post, code = _er_outgoing(cfg.run.seed, n, k2, d.n_exc, scratch_table(k2).size)
        static_out = (np.arange(n + 1, dtype=np.int64) * k2, post, code, table)
        st = (np.zeros(n + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint8), table)
        nnz = post.size
    else:
        st = build_static(ctx, SerialComm(), partition(n, 1))
        nnz = st[1].size
    by_pop = {"st_by_population": st[4]} if len(st) > 4 else {}
    st = st[:4]
    log(f"  static connectivity: {nnz / 1e6:.1f} M synapses in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    pl_pre, w_in, w_ff = build_plastic(ctx)
    targets = build_targets(ctx).astype(np.float32)
    net = Network(n, range(n), *st, pl_pre, w_in, w_ff, targets, build_stimulus(ctx),
                  build_ff_rates(ctx), **by_pop)  # fmt: skip
    log(f"  plastic partners and targets: {time.perf_counter() - t:.1f} s")
    return d, net, lif(ctx), static_out, nnz, ctx


def direct_static(cfg) -> bool:
    """Large networks of the default static plugin get the direct parallel build."""
    return cfg.network.n_cells > 100_000 and cfg.network.static_plugin.endswith(":erdos_renyi")


def time_loops(name: str, cfg, loops: int, per_step_loop: bool) -> dict:
    log(f"{name}: building the network")
    d, net, cell, static_out, nnz, ctx = build_network(cfg, direct_static(cfg))
    t = time.perf_counter()
    sim = GpuSimulator(cfg, d, net, cell, SerialComm(), cfg.neuron.tau_plas, 0.0,
                       static_out=static_out)  # fmt: skip
    del static_out
    # as tsn-mpi init: an init trial (plastic input off) gives each neuron's mean current, the
    # offset of its target; without it the targets sit at 0 and the rate climbs loop by loop
    sim.start_trial("init", 0, 0)
    sim.advance(1, d.n_steps)
    init = sim.finish_trial()
    init_rate = 1000.0 * float(init.ns.mean()) / d.train_time
    ctx.init["uavg"] = init.uavg
    net.targets = build_targets(ctx).astype(np.float32)
    log(f"{name}: init trial {time.perf_counter() - t:.1f} s, rate {init_rate:.2f} Hz")
    learner = GpuLearner(cfg, d, net)
    cuda.synchronize()
    setup = time.perf_counter() - t
    log(f"{name}: device setup {setup:.1f} s (P {learner.nbytes() / 1e9:.2f} GB, "
        f"{learner.rls.kind} RLS kernel)")  # fmt: skip
    rows = []
    for loop in range(1, loops + 2 + int(per_step_loop)):  # loop 1 includes compilation
        if loop == loops + 2:  # the extra loop: two kernel launches per step
            sim.fused = False
            sim.start_trial("train", 0, 0)
            sim.advance(1, 2)  # compile the per-step kernels outside the timing
        rows.append(one_loop(sim, learner, net, d, loop))
        r = rows[-1]
        kind = "fused" if sim.fused else "2 launches/step"
        log(f"{name}: loop {loop} ({kind}) {r['total_s']:.3f} s = time loop {r['sim_s']:.3f} "
            f"+ RLS {r['rls_s']:.3f}; rate {r['rate_hz']:.2f} Hz, bad {r['bad']}")  # fmt: skip
    timed = rows[1 : loops + 1]
    out = {
        "n_cells": d.n_cells, "n_rls": d.n_rls, "static_synapses": int(nnz),
        "p_bytes": learner.nbytes(), "setup_s": setup, "first_loop_s": rows[0]["total_s"],
        "s_per_loop": float(np.median([r["total_s"] for r in timed])),
        "sim_s": float(np.median([r["sim_s"] for r in timed])),
        "rls_s": float(np.median([r["rls_s"] for r in timed])),
        "us_per_step": 1e6 * float(np.median([r["sim_s"] for r in timed])) / d.n_steps,
        "ms_per_rls_update": 1e3 * float(np.median([r["rls_s"] for r in timed])) / d.n_learn,
        "fused": sim._fused_kernel is not None, "fused_error": sim.fused_error,
        "init_rate_hz": init_rate, "rls_kernel": learner.rls.kind,
        "rls_unroll": int(cfg.gpu.rls_unroll),
        "loops": rows,
    }  # fmt: skip
    if per_step_loop and len(rows) > loops + 1:
        out["per_step_launch_s_per_loop"] = rows[-1]["total_s"]
        out["per_step_launch_us_per_step"] = 1e6 * rows[-1]["sim_s"] / d.n_steps
    del sim, learner, net
    free_device()
    return out


def one_loop(sim, learner, net, d, loop: int) -> dict:
    """One training loop as phases.train._run_loop drives it; seconds split."""
    sim.start_trial("train", loop, 0)
    ls, step, seq = d.learn_step, 1, 0
    t_sim = t_rls = 0.0
    bad = 0
    t_all = time.perf_counter()
    while step <= d.n_steps:
        t0 = time.perf_counter()
        if step % ls == 0 and step > d.stim_off_step:
            bad += learner.update(sim.traces_at(step - 1), sim.r_ff, sim.u_bal,
                                  net.targets[0, seq])  # fmt: skip
            seq += 1
        t1 = time.perf_counter()
        end = min((step // ls + 1) * ls - 1, d.n_steps)
        sim.advance(step, end)
        t2 = time.perf_counter()
        t_rls += t1 - t0
        t_sim += t2 - t1
        step = end + 1
    total = time.perf_counter() - t_all
    res = sim.finish_trial()
    rate = 1000.0 * res.ns.mean() / d.train_time
    return {"loop": loop, "total_s": total, "sim_s": t_sim, "rls_s": t_rls, "rate_hz": rate,
            "bad": bad}  # fmt: skip


# ----------------------------------------------------------------------------------- main

UNROLLS = (0, 16)  # the block kernel's staging group, loads per thread (0 = its whole share)


def pick_rls(rows: list[dict], n_rls: int) -> dict | None:
    """The fastest float32 kernel for n_rls inputs at the largest neuron count measured."""
    rows = [r for r in rows if r["n_rls"] == n_rls and r["dtype"] == "float32"]
    if not rows:
        return None
    most = max(r["n_owned"] for r in rows)
    return min((r for r in rows if r["n_owned"] == most), key=lambda r: r["best_s"])



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=3, help="timed loops per model (after one)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-1m", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (simulator check)")
    ap.add_argument("--rls-kernel", default="auto", choices=("auto", "block", "warp", "streamed"),
                    help="RLS kernel of the training loops (auto: the fastest measured in (a))")
    ap.add_argument("--rls-unroll", type=int, default=0, help="block kernel staging group")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    args = ap.parse_args()
    dev = select_device(SerialComm())  # under the CUDA simulator: also its fixes (cudasim_fixes)
    name = "simulator" if simulated() else cuda.get_current_device().name
    name = name.decode() if isinstance(name, bytes) else str(name)
    log(f"device {dev}: {name}")
    res: dict = {"device": name, "host": platform.node(), "python": sys.version.split()[0]}
    # (a) bandwidths
    copy_gb = 0.004 if args.smoke else 4.0
    bw = copy_bandwidth(int(copy_gb * 1e9), args.reps)
    res["copy_gb_s"] = bw
    log(f"device copy ({copy_gb:g} GB, read+write): {bw:.0f} GB/s")
    # (n_owned, l_half, P dtype, kernel, unroll); unroll 0 = the block kernel's default
    if args.smoke:
        sizes = [(9, 29, "float32", "block", 0), (9, 29, "float32", "block", 4),
                 (9, 29, "float32", "warp", 0), (9, 29, "float32", "streamed", 0),
                 (9, 4, "int16", "block", 0)]  # fmt: skip
    else:
        sizes = [(600_000, 29, "float32", "block", 0), (600_000, 29, "float32", "warp", 0),
                 (600_000, 29, "float32", "streamed", 0)]  # fmt: skip
        sizes += [(250_000, 45, "float32", "block", u) for u in UNROLLS]
        sizes += [(250_000, 45, "float32", "warp", 0), (250_000, 45, "float32", "streamed", 0),
                  (250_000, 45, "float16", "block", 0), (250_000, 45, "int16", "block", 0),
                  (250_000, 45, "float64", "block", 0),
                  (250_000, 45, "float64", "streamed", 0)]  # fmt: skip
        if not args.skip_1m:
            sizes += [(1_000_000, 45, "float32", "block", u) for u in UNROLLS]
            sizes += [(1_000_000, 45, "float32", "warp", 0)]
    res["rls"] = []
    for n_owned, l_half, dtype, kind, unroll in sizes:
        what = f"RLS n={2 * l_half} {dtype} {kind}{f' unroll {unroll}' if unroll else ''}, " \
               f"{n_owned} neurons"  # fmt: skip
        try:
            r = rls_bandwidth(n_owned, l_half, args.reps, dtype, kind, unroll)
        except Exception as exc:  # noqa: BLE001
            if not is_oom(exc):
                raise
            log(f"{what}: skipped (out of memory)")
            free_device()
            continue
        r["pct_copy"] = 100.0 * r["gb_s"] / bw
        res["rls"].append(r)
        log(f"{what}, P {r['p_gb']:.2f} GB: {r['best_s'] * 1e3:.2f} ms/update, "
            f"{r['gb_s']:.0f} GB/s ({r['pct_copy']:.0f}% of copy), first call "
            f"{r['first_call_s']:.1f} s, bad {r['bad_flags']}")  # fmt: skip
    # (b) loops, with the fastest float32 n = 90 kernel of (a) at the largest size measured
    best = pick_rls(res["rls"], 2 * (29 if args.smoke else 45))
    kernel, unroll = args.rls_kernel, args.rls_unroll
    if kernel == "auto" and best:
        kernel, unroll = best["kernel"], int(best["unroll"])
        log(f"training loops use the {kernel} kernel, unroll {unroll}")
    res["loop_rls_kernel"] = {"gpu.rls_kernel": kernel, "gpu.rls_unroll": unroll}
    if args.smoke:
        models = [("micro", from_dict({
            "network": {"n_cells": 64, "p_ee": 0.4},
            "simulation": {"stim_on": 2.0, "stim_off": 4.0, "train_duration": 6.0,
                           "u0_skip_time": 1.0},
            "learning": {"learn_every": 2.0}}))]  # fmt: skip
    else:
        models = [("default", default_config())]
        if not args.skip_1m:
            models.append(("1M", from_dict({
                "network": {"n_cells": 1_000_000, "p_ee": 512 / 500_000},
                "plastic": {"l_exc": 45, "l_inh": 45}})))  # fmt: skip
    res["loops"] = {}
    models = [(label, cfg.replace(gpu__rls_kernel=kernel, gpu__rls_unroll=unroll))
              for label, cfg in models]  # fmt: skip
    for label, cfg in models:
        loops = 1 if args.smoke else (min(args.loops, 2) if label == "1M" else args.loops)
        try:
            res["loops"][label] = time_loops(label, cfg, loops, per_step_loop=label != "1M")
        except Exception as exc:  # noqa: BLE001
            if not is_oom(exc):
                raise
            log(f"{label}: skipped (out of memory: {type(exc).__name__})")
            free_device()
    # table
    print("\nRLS kernel (packed P; GB/s = 2 x bytes(P) / time)", flush=True)
    print(f"{'n':>4} {'P type':>8} {'kernel':>9} {'unroll':>6} {'neurons':>9} {'P GB':>7} "
          f"{'ms/update':>10} {'GB/s':>7} {'% copy':>7}")  # fmt: skip
    for r in res["rls"]:
        print(f"{r['n_rls']:>4} {r['dtype']:>8} {r['kernel']:>9} {r['unroll'] or '-':>6} "
              f"{r['n_owned']:>9} "
              f"{r['p_gb']:>7.2f} {r['best_s'] * 1e3:>10.2f} {r['gb_s']:>7.0f} "
              f"{r['pct_copy']:>7.0f}")  # fmt: skip
    print(f"device copy: {bw:.0f} GB/s (read + write)")
    print("\nTraining loop (one process, median of timed loops)")
    print(f"{'model':>8} {'neurons':>9} {'s/loop':>8} {'time loop':>10} {'RLS':>7} "
          f"{'us/step':>8} {'ms/RLS':>7} {'1st loop':>9}")  # fmt: skip
    for label, r in res["loops"].items():
        print(f"{label:>8} {r['n_cells']:>9} {r['s_per_loop']:>8.3f} {r['sim_s']:>10.3f} "
              f"{r['rls_s']:>7.3f} {r['us_per_step']:>8.1f} {r['ms_per_rls_update']:>7.2f} "
              f"{r['first_loop_s']:>9.1f}")  # fmt: skip
        if "per_step_launch_s_per_loop" in r:
            print(f"{'':>8} two launches per step: {r['per_step_launch_s_per_loop']:.3f} s/loop "
                  f"({r['per_step_launch_us_per_step']:.1f} us/step)")  # fmt: skip
        if r.get("fused_error"):
            print(f"{'':>8} fused kernel unavailable: {r['fused_error']}")
        rates = ", ".join(f"{x['rate_hz']:.2f}" for x in r["loops"])
        print(f"{'':>8} rate per loop (Hz): {rates}; init trial {r['init_rate_hz']:.2f} Hz")
    tag = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "gpu"
    out = args.out or HERE / "results" / f"gpu_{'smoke_' if args.smoke else ''}{tag}.json"
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    save_json(out, res, __file__, gpu=name)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
