"""Bandwidth of the CPU fast-mode RLS kernel against the machine's copy bandwidth.

    python benchmarks/rls_kernel.py [--quick] [--mb 300] [--reps 7] [--rounds 3] [--no-compile]

One RLS update streams each tile of P twice (read for k = P x, read+write for the update) while
the tile stays in cache, so memory sees one read and one write of P: the kernel's GB/s is
counted as 2 * bytes(P) / t, like a copy (read + write).  For full storage only the upper
triangle is touched; both the nominal (2 * P.nbytes / t) and touched figures are given.
Reference bandwidths (1 GiB float32): a numba prange copy (read + write counted), np.copyto and
an in-place scale (read-modify-write, the kernel's own access pattern).  Timings are the best
of --reps calls, first call (JIT / cache load) excluded; the copy is re-measured next to every
kernel configuration.
On a shared machine other jobs steal bandwidth: --rounds R repeats the whole table and keeps
each configuration's best time and the best copy figure (``% copy`` = best kernel / best copy
seen in the whole run, the conservative ratio).  Also times small mode (spec §4.5, no stored P)
and the cold compile of both kernels.
Saves benchmarks/results/rls_kernel.json (rls_kernel_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tsn_mpi.backends.cpu import rls_fast, rls_small  # noqa: E402
from tsn_mpi.learn.packed import TILE_W, alloc_tiles, n_packed  # noqa: E402

N_GLOBAL = 200_000


@njit(parallel=True, cache=True)
def _pcopy(src, dst):
    for i in prange(src.size):
        dst[i] = src[i]


@njit(parallel=True, cache=True)
def _pscale(a, s):
    for i in prange(a.size):
        a[i] = a[i] * s


def best_of(fn, reps: int) -> float:
    """Minimum wall time of ``reps`` calls of fn() after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


class Copy:
    """Reference bandwidths on two 1 GiB float32 arrays (GB/s, read + write counted)."""

    def __init__(self, gib: float = 1.0) -> None:
        self.src = np.ones(int(gib * (1 << 28)), np.float32)
        self.dst = np.zeros_like(self.src)
        self.nbytes = 2 * self.src.nbytes

    def numba(self, reps: int = 5) -> float:
        return self.nbytes / best_of(lambda: _pcopy(self.src, self.dst), reps) / 1e9

    def numpy(self, reps: int = 5) -> float:
        return self.nbytes / best_of(lambda: np.copyto(self.dst, self.src), reps) / 1e9

    def inplace(self, reps: int = 5) -> float:
        one = np.float32(1.0)
        return self.nbytes / best_of(lambda: _pscale(self.dst, one), reps) / 1e9


def problem(n: int, n_owned: int, n_ff: int = 0, seed: int = 0) -> dict:
    """Random presynaptic ids, small weights and traces for n_owned neurons of n = n_ff + m."""
    rng = np.random.default_rng(seed)
    m = n - n_ff
    return dict(
        pre=rng.integers(0, N_GLOBAL, (n_owned, m)).astype(np.int32),
        w=(rng.normal(size=(n_owned, m)) * 1e-3).astype(np.float32),
        r=rng.random(N_GLOBAL) * 0.01,
        x_ff=rng.random(n_ff) * 0.01,
        w_ff=np.zeros((n_owned, n_ff), np.float32),
        u_bal=np.zeros(n_owned, np.float32),
        target=np.zeros(n_owned, np.float32),
        bad=np.zeros(n_owned, np.uint8),
    )


def bench_fast(n: int, dtype, storage: str, mb: float, reps: int) -> dict:
    """Time rls_fast / rls_fast_full on about ``mb`` MB of P (benchmark mode: apply=False)."""
    length = n * n if storage == "full" else n_packed(n)
    itemsize = np.dtype(dtype).itemsize
    n_owned = max(TILE_W, int(mb * 1e6 / (length * itemsize)) // TILE_W * TILE_W)
    p = problem(n, n_owned)
    P = alloc_tiles(n_owned // TILE_W, length, dtype)  # as rows_to_tiles: huge pages
    P[:, :, :] = np.asarray(0.01, dtype)  # any finite P; apply=False keeps the weights fixed
    kernel = rls_fast.rls_fast_full if storage == "full" else rls_fast.rls_fast

    def call():
        kernel(P, p["pre"], p["w"], p["r"], p["x_ff"], p["w_ff"], p["u_bal"], p["target"],
               False, False, p["bad"])  # fmt: skip

    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    t = best_of(call, reps)
    touched = n_owned * n_packed(n) * itemsize
    return dict(n=n, dtype=np.dtype(dtype).name, storage=storage, n_neurons=n_owned,
                p_mb=P.nbytes / 1e6, ms=t * 1e3, gbs=2 * P.nbytes / t / 1e9,
                gbs_touched=2 * touched / t / 1e9, first_call_s=first)  # fmt: skip


def bench_small(n: int, n_owned: int, history: int, reps: int) -> dict:
    """Time rls_small (float64 Cholesky per neuron) for n_owned neurons and a full history."""
    p = problem(n, n_owned, seed=1)
    hist = np.random.default_rng(2).random((history, N_GLOBAL)) * 0.01

    def call():
        rls_small.rls_small(p["pre"], p["w"], p["r"], p["x_ff"], p["w_ff"], p["u_bal"],
                            p["target"], hist, history, 0.8, 1.0, 0.01, False, False,
                            p["bad"])  # fmt: skip

    t = best_of(call, reps)
    return dict(n=n, n_neurons=n_owned, history=history, ms=t * 1e3,
                us_per_neuron=t / n_owned * 1e6)  # fmt: skip


COMPILE_SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
from tsn_mpi.backends.cpu.rls_fast import rls_fast
from tsn_mpi.backends.cpu.rls_small import rls_small
t1 = time.perf_counter()
n_owned, m = 40, 6
pre = np.zeros((n_owned, m), np.int32); w = np.zeros((n_owned, m), np.float32)
wf = np.zeros((n_owned, 0), np.float32); z = np.zeros(n_owned, np.float32)
bad = np.zeros(n_owned, np.uint8); r = np.zeros(4); xf = np.zeros(0)
P = np.zeros((2, m * (m + 1) // 2, 32), np.float32)
t2 = time.perf_counter()
rls_fast(P, pre, w, r, xf, wf, z, z, False, True, bad)
t3 = time.perf_counter()
rls_small(pre, w, r, xf, wf, z, z, np.zeros((2, 4)), 0, 0.8, 1.0, 0.01, False, True, bad)
t4 = time.perf_counter()
print(t1 - t0, t3 - t2, t4 - t3)
"""


def cold_compile() -> dict:
    """Seconds to compile fast_kernel and small_kernel with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, "-c", COMPILE_SNIPPET], env=env, check=True,
                             capture_output=True, text=True).stdout.split()  # fmt: skip
    return dict(import_s=float(out[0]), fast_kernel_s=float(out[1]), small_kernel_s=float(out[2]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~100 MB of P, fewer repeats")
    ap.add_argument("--mb", type=float, default=None, help="MB of P per configuration")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None, help="repeat the table, keep the best")
    ap.add_argument("--no-compile", action="store_true", help="skip the cold-compile timing")
    args = ap.parse_args()
    mb = args.mb or (100.0 if args.quick else 300.0)
    reps = args.reps or (3 if args.quick else 7)

    rounds = args.rounds or (1 if args.quick else 3)
    load0 = os.getloadavg()
    copy = Copy(0.25 if args.quick else 1.0)
    ref = dict(numba_copy=0.0, np_copyto=0.0, inplace_scale=0.0)
    configs = [(58, np.float32, "packed"), (90, np.float32, "packed"),
               (256, np.float32, "packed"), (90, np.float16, "packed"),
               (90, np.float64, "packed"), (90, np.float32, "full")]  # fmt: skip
    best: dict[tuple, dict] = {}
    for rnd in range(rounds):
        new = dict(numba_copy=copy.numba(reps), np_copyto=copy.numpy(reps),
                   inplace_scale=copy.inplace(reps))  # fmt: skip
        ref = {k: max(ref[k], new[k]) for k in ref}
        print(f"round {rnd + 1}/{rounds}: threads {numba.get_num_threads()}, layer "
              f"{numba.threading_layer()}, load {os.getloadavg()[0]:.2f}; copy GB/s (read + "
              "write): numba prange {numba_copy:.1f}, np.copyto {np_copyto:.1f}, in-place "
              "scale {inplace_scale:.1f}".format(**new))  # fmt: skip
        for cfg in configs:
            row = bench_fast(*cfg, mb, reps)
            row["copy_gbs"] = copy.numba(3)  # same machine state as the kernel
            ref["numba_copy"] = max(ref["numba_copy"], row["copy_gbs"])
            if cfg not in best or row["ms"] < best[cfg]["ms"]:
                best[cfg] = row
            print(f"  n={cfg[0]} {row['dtype']} {cfg[2]}: {row['ms']:.2f} ms, {row['gbs']:.1f} "
                  f"GB/s (copy {row['copy_gbs']:.1f})")  # fmt: skip
    rows = [best[cfg] for cfg in configs]
    print(
        f"best of {rounds} round(s); copy = best numba prange copy {ref['numba_copy']:.1f} "
        f"GB/s (np.copyto {ref['np_copyto']:.1f}, in-place scale {ref['inplace_scale']:.1f})"
    )
    hdr = f"{'n':>4} {'dtype':>8} {'storage':>7} {'neurons':>8} {'P MB':>6} {'ms':>8} "
    print(hdr + f"{'GB/s':>6} {'% copy':>6}")
    for row in rows:
        row["pct_copy"] = 100 * row["gbs"] / ref["numba_copy"]
        full = row["storage"] == "full"
        extra = f"  (touched {row['gbs_touched']:.1f} GB/s)" if full else ""
        print(f"{row['n']:>4} {row['dtype']:>8} {row['storage']:>7} {row['n_neurons']:>8} "
              f"{row['p_mb']:>6.0f} {row['ms']:>8.2f} {row['gbs']:>6.1f} "
              f"{row['pct_copy']:>5.0f}%{extra}")  # fmt: skip
    small = bench_small(90, 1024 if args.quick else 4096, 10, max(2, reps // 2))
    print(f"small mode n=90 H=10: {small['ms']:.1f} ms for {small['n_neurons']} neurons "
          f"({small['us_per_neuron']:.1f} us per neuron)")  # fmt: skip
    compile_s = None if args.no_compile else cold_compile()
    if compile_s:
        print("cold compile (s): fast_kernel {fast_kernel_s:.1f}, small_kernel "
              "{small_kernel_s:.1f}".format(**compile_s))  # fmt: skip

    out = dict(
        machine=dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                     numba_threads=numba.get_num_threads(), layer=numba.threading_layer(),
                     numba=numba.__version__, numpy=np.__version__,
                     loadavg_before=load0, loadavg_after=os.getloadavg()),
        reference_gbs=ref, fast=rows, small=small, cold_compile_s=compile_s,
        settings=dict(mb=mb, reps=reps, rounds=rounds, quick=args.quick),
    )  # fmt: skip
    path = HERE / "results" / ("rls_kernel_quick.json" if args.quick else "rls_kernel.json")
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    save_json(path, out, __file__)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
