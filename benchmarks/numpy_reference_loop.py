"""A plain vectorised-numpy training loop of the default model, timed against tsn-mpi.

    python benchmarks/numpy_reference_loop.py [--numpy-loops 2] [--steps 20000] [--out DIR]

What a user would write without numba: the same network (built by ``tsn-mpi new`` + ``tsn-mpi
init``; connectivity, targets, initial weights and P read from network.h5 and ckpt-0.h5 with
h5py), simulated with numpy vector operations per time step (spec §3.3): traces, static and
plastic filters, external drive + OU stimulus, LIF membrane with refractoriness, spike delivery
through outgoing-synapse CSR maps with ``np.add.at``, rolling averages for the correlation, and
at every learning step a batched numpy RLS update of all neurons (spec §4.3, a-priori gain):
packed P unpacked with one ``np.take`` into a preallocated (N, n, n) buffer, ``k = P x`` by
``np.einsum``, the rank-1 update on the packed triangle with ``np.take`` gathers (the fastest of
the numpy variants tried: unpack + einsum beats unpack + matmul and the 2-GEMM scatter trick of
infra notes §3 here, because the 2-GEMM form gathers x twice over the packed length).  Only
numpy (no scipy); all large work buffers are preallocated (without that, page faults make the
RLS 3-4x slower), so this is a *good* numpy implementation and the ratio is conservative.

Same algorithm, not bitwise: its own random initial voltages and OU stimulus (numpy RNG), so
spike trains differ from tsn-mpi's after a few ms; the check is statistical: firing rate,
correlation and the size of the weight change after loop 1, next to tsn-mpi's loop 1 from the
same ckpt-0.

Timing: tsn-mpi's s/loop is the median of loops 2..3 of ``tsn_mpi.train(D, nloops=3)``, run
once before and once after the numpy loops (so both bracket the same machine load; the median
over the 4 samples is used), with all numba threads and with 1 (``numba.set_num_threads``).
The numpy loop is timed in full (default) or over ``--steps`` steps, then extrapolated as
(neuron + delivery time per step) x 20000 + (time per RLS update) x 100, which the output
says.  numpy runs single-threaded here (element-wise ops and einsum do not use BLAS threads);
tsn-mpi uses NUMBA_NUM_THREADS (default: all cores) in RLS only, its time loop is serial.
Saves benchmarks/results/numpy_vs_numba.json.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import h5py
import numba
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import tsn_mpi  # noqa: E402
from tsn_mpi.config import derive, load_config  # noqa: E402

f32 = np.float32


# ----------------------------------------------------------------------------- the model


def ranges(indptr: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Concatenated positions ``indptr[i]:indptr[i+1]`` of every ``i`` in ids (vectorised)."""
    starts = indptr[ids]
    lens = indptr[ids + 1] - starts
    ends = np.cumsum(lens)
    return np.repeat(starts - (ends - lens), lens) + np.arange(ends[-1] if ends.size else 0)


def outgoing(pre: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR by presynaptic id: (indptr (n+1), order of the synapses)."""
    order = np.argsort(pre, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    indptr[1:] = np.cumsum(np.bincount(pre, minlength=n))
    return indptr, order


class NumpyModel:
    """The default model from a tsn-mpi run directory, with state as plain numpy arrays."""

    def __init__(self, run_dir: Path, seed: int = 12345) -> None:
        cfg = load_config(run_dir / "config.toml")
        d = derive(cfg)
        neu, sim, lr = cfg.neuron, cfg.simulation, cfg.learning
        if cfg.plastic.l_ff or neu.noise_sigma or neu.noise_sigma_file or neu.tau_plas_file:
            raise SystemExit("the numpy reference covers the default model (no FF, no noise)")
        if lr.mode != "fast" or lr.p_storage != "packed" or lr.gain != "apriori":
            raise SystemExit("the numpy reference covers fast/packed/apriori RLS only")
        self.cfg, self.d = cfg, d
        N = self.N = d.n_cells
        self.dt = sim.dt
        exc = np.arange(N) < d.n_exc
        self.th = np.where(exc, neu.thresh_e, neu.thresh_i).astype(f32)
        self.dt_tau = (self.dt / np.where(exc, neu.tau_mem_e, neu.tau_mem_i)).astype(f32)
        self.x_bal = np.where(exc, d.x_bal_e, d.x_bal_i).astype(f32)
        with h5py.File(run_dir / "network.h5", "r") as f:
            indptr = f["static/indptr"][...]
            st_pre = f["static/pre"][...].astype(np.int64)
            if "static_by_population" in f:  # network format 2: [E->E, E->I, I->E, I->I]
                post = np.repeat(np.arange(N), np.diff(indptr))
                code = 2 * (st_pre >= d.n_exc) + (post >= d.n_exc)
                st_w = f["static_by_population"][...][code]
            elif "static/weight" in f:
                st_w = f["static/weight"][...]
            else:
                st_w = f["static_table"][...][f["static/code"][...]]
            self.pl_pre = f["plastic/pre"][...].astype(np.int64)
            self.targets = np.ascontiguousarray(f["targets"][...].transpose(1, 2, 0))  # task,m,N
            stim = dict(f.attrs)
        with h5py.File(run_dir / "checkpoints" / "ckpt-0.h5", "r") as f:
            self.P = np.ascontiguousarray(f["rows/P"][...], dtype=f32)  # (N, n(n+1)/2)
            self.w = np.ascontiguousarray(f["rows/w_in"][...], dtype=f32)  # (N, m)
        if np.any(self.pl_pre < 0):
            raise SystemExit("the numpy reference assumes every neuron has all m plastic inputs")
        # static synapses by presynaptic neuron, split by sign (E input, I input)
        st_post = np.repeat(np.arange(N), np.diff(indptr))
        self.static = []
        for sel in (st_w > 0, st_w < 0):
            ip, order = outgoing(st_pre[sel], N)
            self.static.append((ip, st_post[sel][order].astype(np.intp), st_w[sel][order]))
        # plastic synapses by presynaptic neuron: (post, flat index into w)
        m = self.pl_pre.shape[1]
        self.pl_indptr, order = outgoing(self.pl_pre.ravel(), N)
        self.pl_flat = order.astype(np.intp)
        self.pl_post = (order // m).astype(np.intp)
        # RLS index tables and buffers (packed upper triangle, element (a, b) a <= b at
        # a + b(b+1)/2)
        n = m
        b = np.repeat(np.arange(n), np.arange(1, n + 1))
        a = np.arange(n * (n + 1) // 2) - b * (b + 1) // 2
        self.ia, self.ib = a, b
        hi, lo = (
            np.maximum.outer(np.arange(n), np.arange(n)),
            np.minimum.outer(np.arange(n), np.arange(n)),
        )
        self.full_idx = (lo + hi * (hi + 1) // 2).ravel()
        self.Pf = np.empty((N, n, n), f32)
        self.T1 = np.empty_like(self.P)
        self.T2 = np.empty_like(self.P)
        self.x64 = np.empty((N, m))
        # the OU stimulus of each task (same every loop, as in tsn-mpi), own RNG
        self.rng = np.random.default_rng(seed)
        rows = d.n_stim_steps
        self.stim = np.empty((d.ntasks, rows, N), f32)
        sq = math.sqrt(self.dt)
        mu, bb, sig = stim["stim_mu"], stim["stim_b"], stim["stim_sigma"]
        for task in range(d.ntasks):
            s = np.zeros(N)
            for row in range(rows):
                if row:
                    s += bb * (mu - s) * self.dt + sig * sq * self.rng.standard_normal(N)
                self.stim[task, row] = s

    # ------------------------------------------------------------------------ RLS (§4.3)
    def rls(self, r: np.ndarray, u_bal: np.ndarray, target: np.ndarray) -> None:
        """One a-priori-gain RLS step of every neuron with traces r (float64, length N)."""
        N, n = self.w.shape
        np.take(r, self.pl_pre, out=self.x64)
        x = self.x64.astype(f32)
        np.take(self.P, self.full_idx, axis=1, out=self.Pf.reshape(N, n * n))
        k = np.einsum("bij,bj->bi", self.Pf, x)  # P_old x, float32
        c = np.einsum("bi,bi->b", x.astype(np.float64), k.astype(np.float64))
        den = 1.0 / (1.0 + c)
        e = np.einsum("bi,bi->b", self.w.astype(np.float64), self.x64) + u_bal - target
        self.w -= (e[:, None] * k).astype(f32)
        kd = (den[:, None] * k).astype(f32)
        np.take(kd, self.ia, axis=1, out=self.T1)
        np.take(k, self.ib, axis=1, out=self.T2)
        self.T1 *= self.T2
        self.P -= self.T1

    def rls_full(self, Pfull: np.ndarray, tmp: np.ndarray, r, u_bal, target) -> None:
        """The same step on full (N, n, n) float32 P (the whole matrix updated, 2x memory):
        what a numpy user might prefer, since it needs no gathers."""
        np.take(r, self.pl_pre, out=self.x64)
        x = self.x64.astype(f32)
        k = np.einsum("bij,bj->bi", Pfull, x)
        c = np.einsum("bi,bi->b", x.astype(np.float64), k.astype(np.float64))
        den = 1.0 / (1.0 + c)
        e = np.einsum("bi,bi->b", self.w.astype(np.float64), self.x64) + u_bal - target
        self.w -= (e[:, None] * k).astype(f32)
        kd = (den[:, None] * k).astype(f32)
        np.multiply(kd[:, :, None], k[:, None, :], out=tmp)
        Pfull -= tmp

    def time_rls(self, reps: int) -> dict:
        """ms per RLS update (min and median of ``reps``, after a warm-up) for packed and
        full P, on the current weights and P (restored afterwards) with realistic traces."""
        N, n = self.w.shape
        r = np.random.default_rng(0).random(N) * 0.02
        u_bal = np.zeros(N, f32)
        target = self.targets[0, 0]
        saved = self.P.copy(), self.w.copy()
        Pfull = self.P[:, self.full_idx].reshape(N, n, n)
        tmp = np.empty_like(Pfull)
        out = {}
        for name, fn in (
            ("packed", lambda: self.rls(r, u_bal, target)),
            ("full", lambda: self.rls_full(Pfull, tmp, r, u_bal, target)),
        ):
            fn()
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            out[name] = dict(min_ms=1e3 * min(ts), median_ms=1e3 * float(np.median(ts)))
        self.P[:], self.w[:] = saved
        return out

    # ------------------------------------------------------------------ one loop (§3.3)
    def run_loop(self, task: int, n_steps: int | None = None) -> dict:
        d, cfg, N, dt = self.d, self.cfg, self.N, self.dt
        neu, sim, lr = cfg.neuron, cfg.simulation, cfg.learning
        n_steps = d.n_steps if n_steps is None else n_steps
        a_e, b_e = 1.0 - dt / neu.tau_bal_e, 1.0 / neu.tau_bal_e
        a_i, b_i = 1.0 - dt / neu.tau_bal_i, 1.0 / neu.tau_bal_i
        a_p, b_p = 1.0 - dt / neu.tau_plas, 1.0 / neu.tau_plas
        refrac, vre = neu.refrac, f32(neu.v_reset)
        v = (vre + (self.th - vre) * self.rng.standard_normal(N)).astype(f32)
        u_bale, u_bali, u_plas, u_bal, u, drive = (np.zeros(N, f32) for _ in range(6))
        in_e, in_i, in_p = (np.zeros(N, f32) for _ in range(3))
        r = np.zeros(N)
        last = np.full(N, -100.0)
        ns = np.zeros(N, np.int64)
        spk = np.zeros(0, np.intp)
        roll = np.zeros((d.n_learn, N))
        cnt = np.zeros(d.n_learn)
        stim = self.stim[task]
        targets = self.targets[task]
        w_flat = self.w.reshape(-1)
        (ie_ptr, ie_post, ie_w), (ii_ptr, ii_post, ii_w) = self.static
        learn_seq = 0
        t_rls = t_del = 0.0
        n_rls = 0
        t0 = time.perf_counter()
        for ti in range(1, n_steps + 1):
            t = dt * ti
            # 2. learning, with r and u_bal as left by step ti-1
            if ti % d.learn_step == 0 and ti > d.stim_off_step:
                ta = time.perf_counter()
                self.rls(r, u_bal, targets[learn_seq])
                learn_seq += 1
                n_rls += 1
                t_rls += time.perf_counter() - ta
            # 6g. presynaptic traces (spikes of step ti-1)
            r *= a_p
            r[spk] += b_p
            # 6a-d. filters and currents (inputs of step ti-1)
            u_bale *= a_e
            u_bale += b_e * in_e
            u_bali *= a_i
            u_bali += b_i * in_i
            u_plas *= a_p
            u_plas += b_p * in_p
            np.add(u_bale, u_bali, out=u_bal)
            np.add(u_bal, u_plas, out=u)
            # 3/6f. rolling averages at integer ms after stim_off (for the correlation)
            if ti > d.stim_off_step and ti % d.steps_per_ms == 0:
                s = ti // d.steps_per_ms - int(sim.stim_off)
                start = math.floor((s - sim.wid) / lr.learn_every + 1)
                end = min(start + d.wid_inc, d.n_learn)
                start = max(start, 1)
                roll[start - 1 : end] += u
                cnt[start - 1 : end] += 1
            # 6h. external drive (+ stimulus in the open window)
            if d.stim_on_step < ti < d.stim_off_step:
                np.add(self.x_bal, stim[ti - d.stim_on_step - 1], out=drive)
                drive += u
            else:
                np.add(self.x_bal, u, out=drive)
            # 6j. LIF membrane, refractoriness, spikes
            awake = t > last + refrac
            vn = v + self.dt_tau * (drive - v)
            fire = awake & (vn > self.th)
            np.copyto(v, vn, where=awake)
            spk = np.flatnonzero(fire)
            v[spk] = vre
            last[spk] = t
            ns[spk] += 1
            # 7. delivery: inputs of step ti, consumed at ti+1
            ta = time.perf_counter()
            in_e.fill(0.0)
            in_i.fill(0.0)
            in_p.fill(0.0)
            if spk.size:
                q = ranges(ie_ptr, spk)
                np.add.at(in_e, ie_post[q], ie_w[q])
                q = ranges(ii_ptr, spk)
                np.add.at(in_i, ii_post[q], ii_w[q])
                q = ranges(self.pl_indptr, spk)
                np.add.at(in_p, self.pl_post[q], w_flat[self.pl_flat[q]])
            t_del += time.perf_counter() - ta
        wall = time.perf_counter() - t0
        rate = 1000.0 * ns.sum() / N / (n_steps * dt)
        cor = float("nan")
        if n_steps == d.n_steps:
            with np.errstate(invalid="ignore", divide="ignore"):
                bins = roll / cnt[:, None]
                cor = float(np.nanmean(pearson(targets, bins)))
        t_neuron = wall - t_rls - t_del
        steps_per_loop = d.n_steps
        est = t_neuron / n_steps * steps_per_loop + t_del / n_steps * steps_per_loop
        est += (t_rls / n_rls if n_rls else 0.0) * d.n_learn
        return dict(
            steps=n_steps, wall_s=wall, rls_s=t_rls, n_rls=n_rls, delivery_s=t_del,
            neuron_s=t_neuron, s_per_loop=est, extrapolated=n_steps != d.n_steps or n_rls == 0,
            rate_hz=float(rate), correlation=cor,
        )  # fmt: skip


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column Pearson correlation of (time, neuron) arrays."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


# ------------------------------------------------------------------------------ driver


def tsn_train(
    base: Path, dest: Path, nloops: int, threads: int | None = None
) -> tuple[dict, np.ndarray]:
    """Train a copy of ``base``; ``threads``: numba threads for this call (None = all)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(base, dest)
    # without NUMBA_NUM_THREADS, train's comm.threads.share_cores resets the thread count
    os.environ.setdefault("NUMBA_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads or numba.config.NUMBA_NUM_THREADS)
    try:
        curve = tsn_mpi.train(dest, nloops=nloops, quiet=True)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    with h5py.File(dest / "checkpoints" / f"ckpt-{nloops}.h5", "r") as f:
        w = f["rows/w_in"][...]
    return {k: np.asarray(v).tolist() for k, v in curve.items()}, w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numpy-loops", type=int, default=2, help="numpy loops to time")
    ap.add_argument("--steps", type=int, default=None, help="steps per numpy loop (extrapolate)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/tsn-numpy-ref"))
    args = ap.parse_args()
    base = args.out / "base"
    shutil.rmtree(args.out, ignore_errors=True)
    tsn_mpi.new(base)
    tsn_mpi.init(base, quiet=True)
    load0 = os.getloadavg()
    with h5py.File(base / "checkpoints" / "ckpt-0.h5", "r") as f:
        w0 = f["rows/w_in"][...]
    # tsn-mpi: loop 1 weights, then s/loop before and after the numpy loops
    curve1, w1_tsn = tsn_train(base, args.out / "tsn1", 1)
    curve_a, _ = tsn_train(base, args.out / "tsn_a", 3)
    curve_a1, _ = tsn_train(base, args.out / "tsn_a1", 3, threads=1)
    model = NumpyModel(base)
    runs = []
    for loop in range(1, args.numpy_loops + 1):
        res = model.run_loop(task=0, n_steps=args.steps)
        runs.append(res)
        print(f"numpy loop {loop}: {res['wall_s']:.1f} s for {res['steps']} steps "
              f"(RLS {res['rls_s']:.1f} s, delivery {res['delivery_s']:.1f} s), "
              f"rate {res['rate_hz']:.2f} Hz, correlation {res['correlation']:.4f}")  # fmt: skip
        if loop == 1:
            w1_np = model.w.copy()
    rls_ms = model.time_rls(10)
    curve_b1, _ = tsn_train(base, args.out / "tsn_b1", 3, threads=1)
    curve_b, _ = tsn_train(base, args.out / "tsn_b", 3)
    tsn_samples = curve_a["elapsed_s"][1:] + curve_b["elapsed_s"][1:]
    tsn_s = float(np.median(tsn_samples))
    tsn1_samples = curve_a1["elapsed_s"][1:] + curve_b1["elapsed_s"][1:]
    tsn1_s = float(np.median(tsn1_samples))
    split_keys = ("sim_s", "rls_s")
    tsn_split = {k: float(np.median(curve_a[k][1:] + curve_b[k][1:])) for k in split_keys}
    tsn1_split = {k: float(np.median(curve_a1[k][1:] + curve_b1[k][1:])) for k in split_keys}
    np_s = float(np.median([r["s_per_loop"] for r in runs]))
    best = min(runs, key=lambda r: r["s_per_loop"])
    dw_tsn, dw_np = (w1_tsn - w0).ravel(), (w1_np - w0).ravel()
    rms_tsn, rms_np = float(np.sqrt(np.mean(dw_tsn**2))), float(np.sqrt(np.mean(dw_np**2)))
    dw_corr = float(np.corrcoef(dw_tsn, dw_np)[0, 1])
    r1 = runs[0]
    check = dict(
        rate_hz_tsn=curve1["firing_rate_hz"][0], rate_hz_numpy=r1["rate_hz"],
        correlation_tsn=curve1["correlation"][0], correlation_numpy=r1["correlation"],
        dw_rms_tsn=rms_tsn, dw_rms_numpy=rms_np, dw_correlation=dw_corr,
    )  # fmt: skip
    full = r1["steps"] == model.d.n_steps
    check["close"] = bool(
        abs(check["rate_hz_numpy"] / check["rate_hz_tsn"] - 1) < 0.1
        and (not full or abs(check["correlation_numpy"] - check["correlation_tsn"]) < 0.05)
        and (not full or 0.7 < rms_np / rms_tsn < 1.4)
    )
    scale = model.d.n_steps / best["steps"]
    print("\nsame algorithm? (loop 1 from the same ckpt-0; different random v0 and stimulus)")
    print(f"{'':>28} {'tsn-mpi':>10} {'numpy':>10}")
    print(f"{'firing rate (Hz)':>28} {check['rate_hz_tsn']:10.3f} {check['rate_hz_numpy']:10.3f}")
    print(f"{'correlation':>28} {check['correlation_tsn']:10.4f} "
          f"{check['correlation_numpy']:10.4f}")  # fmt: skip
    print(f"{'RMS weight change':>28} {rms_tsn:10.5f} {rms_np:10.5f}   "
          f"(corr. of the two changes {dw_corr:.2f})")  # fmt: skip
    print(f"{'close':>28} {check['close']}")
    nthr = numba.config.NUMBA_NUM_THREADS
    np_tl = float(np.median([(r["neuron_s"] + r["delivery_s"]) * scale for r in runs]))
    np_rls = float(np.median([r["rls_s"] / max(r["n_rls"], 1) for r in runs])) * model.d.n_learn
    if best["extrapolated"]:
        # a partial loop has few (or no) RLS steps, the first with page faults: use the
        # separately timed packed update instead
        np_rls = rls_ms["packed"]["median_ms"] * 1e-3 * model.d.n_learn
        np_s = np_tl + np_rls
    np_full_rls = rls_ms["full"]["median_ms"] * 1e-3 * model.d.n_learn
    np_full = np_tl + np_full_rls
    rows = [
        ("numpy, packed P", np_s, np_tl, np_rls),
        ("numpy, full P (*)", np_full, np_tl, np_full_rls),
        (f"tsn-mpi, {nthr} threads", tsn_s, tsn_split["sim_s"], tsn_split["rls_s"]),
        ("tsn-mpi, 1 thread", tsn1_s, tsn1_split["sim_s"], tsn1_split["rls_s"]),
    ]
    ext = " (numpy extrapolated from a partial loop)" if best["extrapolated"] else ""
    print(f"\ns/loop, default config (N = {model.N}, {model.d.n_steps} steps, "
          f"{model.d.n_learn} RLS updates){ext}")  # fmt: skip
    print(f"{'':>24} {'s/loop':>8} {'time loop':>10} {'RLS':>8}")
    for name, a, b, c in rows:
        print(f"{name:>24} {a:8.3f} {b:10.3f} {c:8.3f}")
    for name, t, sp in ((f"{nthr} threads", tsn_s, tsn_split), ("1 thread", tsn1_s, tsn1_split)):
        print(f"{'numpy / tsn-mpi ' + name:>24} {np_s / t:8.1f} {np_tl / sp['sim_s']:10.1f} "
              f"{np_rls / sp['rls_s']:8.1f}")  # fmt: skip
    print(f"(*) full P: time loop of the packed run + {model.d.n_learn} x the median of 10 "
          f"timed full-P updates.  numpy RLS per update, ms (min / median of 10): packed "
          f"{rls_ms['packed']['min_ms']:.0f} / {rls_ms['packed']['median_ms']:.0f}, full "
          f"{rls_ms['full']['min_ms']:.0f} / {rls_ms['full']['median_ms']:.0f}")  # fmt: skip
    ratio, ratio1 = np_s / tsn_s, np_s / tsn1_s
    out = dict(
        machine=dict(node=platform.node(), cpu=platform.processor() or platform.machine(),
                     cores=os.cpu_count(), numba_threads=numba.get_num_threads(),
                     numpy=np.__version__, loadavg_before=load0, loadavg_after=os.getloadavg()),
        numpy_loops=runs, numpy_s_per_loop=np_s, numpy_time_loop_s=np_tl, numpy_rls_s=np_rls,
        tsn_s_per_loop=tsn_s, tsn_samples_s=tsn_samples, tsn_split=tsn_split,
        tsn_1thread_s_per_loop=tsn1_s, tsn_1thread_samples_s=tsn1_samples,
        tsn_1thread_split=tsn1_split, ratio=ratio, ratio_1thread=ratio1,
        ratio_time_loop=np_tl / tsn_split["sim_s"], ratio_rls=np_rls / tsn_split["rls_s"],
        numpy_rls_update_ms=rls_ms, numpy_full_p_s_per_loop=np_full,
        ratio_full_p=np_full / tsn_s, ratio_full_p_1thread=np_full / tsn1_s, check=check,
        notes="numpy loop timed in full unless extrapolated (median over numpy loops); "
              "tsn-mpi s/loop = median of loops 2-3 of two 3-loop runs per thread count, "
              "before and after the numpy loops; numpy is single-threaded",
    )  # fmt: skip
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    path = save_json(HERE / "results" / "numpy_vs_numba.json", out, __file__)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
