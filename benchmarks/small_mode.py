"""Small mode (no stored P, spec §4.5) against fast mode: memory per neuron, speed, learning.

    python benchmarks/small_mode.py [--nloops 100] [--fast-loops 100] [--window-loops 50]
        [--before-rev REV] [--work DIR] [--quick]

For each mode it runs ``tsn-mpi new`` + ``init`` of the default model (seed 1) with
``learning.mode`` set, then trains in a child process, which reports its peak RSS (VmHWM),
s/loop (median of loops 2..N; loop 1 loads the compiled kernels) and the learning curve.
Small mode trains ``--nloops`` loops (the acceptance check: mean correlation at loops 98-100
>= 0.6), fast mode ``--fast-loops``, and small mode without the running-mean row
(``learning.history_mean = false``, the reference's window-only small mode) ``--window-loops``
(it diverges after ~45 loops, and its loops slow down as the firing rate climbs).

Memory: the learner's arrays (fast: P in tiles; small: the trace history) as ``train`` builds
them, every array of the live objects per neuron (``memory_per_neuron.build_live`` /
``inventory``, skipped if those helpers do not run), the peak RSS of each training process,
and the same for the paper's 1M-neuron model (N = 1e6, m = 90 plastic inputs, LX = 0, float32
packed P; other arrays from ``memory_per_neuron``'s formulas).  The history is
``H x (LX + N)`` float64 on every rank (H = history / learn_every = 10), so per owned neuron
it costs ``8 H N / n``.

Speed: the RLS kernels alone on synthetic problems (m = 58 as the default model, m = 90 as
the paper's), seconds per learning step and per neuron update, and the projected RLS seconds
per loop (100 learning steps) of 1M neurons on this machine's threads.

Saves benchmarks/results/small_mode.json (small_mode_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

N_1M, M_1M = 1_000_000, 90


def set_learning(run_dir: Path, mode: str, history_mean: bool) -> None:
    """Set learning.mode and learning.history_mean in run_dir/config.toml (text edit)."""
    path = run_dir / "config.toml"
    text = path.read_text()
    head, sep, tail = text.partition("[learning]")
    tail, n = re.subn(r'(?m)^mode = "\w+"', f'mode = "{mode}"', tail, count=1)
    mean = "true" if history_mean else "false"
    tail, n2 = re.subn(r"(?m)^history_mean = \w+", f"history_mean = {mean}", tail, count=1)
    if not sep or n != 1 or n2 != 1:
        raise RuntimeError(f"no learning.mode or learning.history_mean in {path}")
    path.write_text(head + sep + tail)


def vm_hwm() -> int:
    """Peak RSS of this process since its exec (VmHWM; ru_maxrss would include the parent's
    RSS at fork, which Linux carries across exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(run_dir: Path, nloops: int, out: Path) -> None:
    """Train nloops loops in this process; write peak RSS and the curve to out (JSON)."""
    import tsn_mpi

    curve = tsn_mpi.train(run_dir, nloops=nloops, quiet=True)
    with open("/proc/self/statm") as fh:
        rss_end = int(fh.read().split()[1]) * resource.getpagesize()
    res = dict(
        peak_rss_bytes=vm_hwm(),
        rss_end_bytes=rss_end,
        curve={k: np.asarray(v).tolist() for k, v in curve.items()},
    )
    out.write_text(json.dumps(res))


def train_child(run_dir: Path, nloops: int) -> dict:
    out = run_dir / "bench-child.json"
    cmd = [sys.executable, __file__, "--child", str(run_dir), "--nloops", str(nloops)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    res = json.loads(out.read_text())
    el = np.asarray(res["curve"]["elapsed_s"])
    cor = np.asarray(res["curve"]["correlation"])
    res["s_per_loop_median"] = float(np.median(el[1:]) if el.size > 1 else el[0])
    res["mean_correlation_last3"] = float(np.mean(cor[-3:]))
    res["loops_last3"] = res["curve"]["loop"][-3:]
    return res


def learner_memory(run_dir: Path) -> dict:
    """Bytes of the learner's arrays (P tiles or history, bad flags) as ``train`` builds them."""
    from tsn_mpi.phases.common import open_run
    from tsn_mpi.phases.restore import read_run_files, restore_state

    run = open_run(run_dir, quiet=True)
    net, init, ck = read_run_files(run)
    lrn = restore_state(run, net, init, ck, lazy=()).learner
    arrays = {"P": lrn.P, "hist": lrn.hist, "bad": lrn.bad}
    nbytes = {k: int(v.nbytes) for k, v in arrays.items() if v is not None}
    n = net.n_owned
    return dict(
        n_owned=n, N=run.d.n_cells, m=run.d.n_plastic, lx=run.d.l_ff,
        history_rows=None if lrn.hist is None else int(lrn.hist.shape[0]),
        history_window=int(run.d.history),
        learner_bytes=nbytes, learner_bytes_per_neuron=sum(nbytes.values()) / n,
    )


def all_arrays(run_dir: Path) -> dict | None:
    """Bytes per neuron of every array of the live training objects (memory_per_neuron's
    accounting), or None if that script's helpers cannot run in this tree."""
    try:
        import memory_per_neuron as mpn

        live = mpn.build_live(run_dir)
        rows = mpn.inventory(live)
        n = live["net"].n_owned
        sizes = mpn.sizes_live(live)
    except (ImportError, AttributeError, TypeError, KeyError) as exc:
        print(f"(memory_per_neuron helpers unavailable: {exc!r})")
        return None
    hist = getattr(live["learner"], "hist", None)
    total = sum(r["bytes"] for r in rows)
    if hist is not None and not any(r["name"] == "learner.hist" for r in rows):
        total += hist.nbytes
    return dict(bytes_per_neuron=total / n, sizes=sizes)


def projection_1m(history: int, ranks: list[int], sizes: dict | None) -> dict:
    """Bytes per neuron of the 1M model (m = 90, LX = 0): fast (float32 packed P, tiles of 32)
    and small (float64 history of H x N on every rank); other arrays from memory_per_neuron's
    formulas when available."""
    out = {}
    for R in ranks:
        n = N_1M // R
        p = -(-n // 32) * 32 * (M_1M * (M_1M + 1) // 2) * 4 / n
        hist = history * N_1M * 8 / n
        row = dict(n_per_rank=n, fast_P_bytes_per_neuron=p, small_history_bytes_per_neuron=hist,
                   fast_P_gb_per_rank=p * n / 1e9, small_history_gb_per_rank=hist * n / 1e9)
        if sizes is not None:
            try:
                import memory_per_neuron as mpn

                rows = mpn.evaluate(mpn.sizes_1m(R, dict(sizes, p_bytes=4)))
                rest = sum(r["bytes"] for r in rows if r["name"] != "learner.P") / n
                row.update(other_arrays_bytes_per_neuron=rest,
                           fast_total_gb_per_rank=(p + rest) * n / 1e9,
                           small_total_gb_per_rank=(hist + rest) * n / 1e9)
            except (ImportError, AttributeError, TypeError, KeyError) as exc:
                print(f"(memory_per_neuron 1M formulas unavailable: {exc!r})")
        out[f"R={R}"] = row
    return out


def synthetic(n_owned: int, m: int, H: int, seed: int = 0) -> dict:
    """A problem shaped like the default model: E inputs then I inputs, E/I weight signs."""
    rng = np.random.default_rng(seed)
    N = max(2 * n_owned, 4 * m)
    half = N // 2
    pre = np.stack(
        [np.concatenate([rng.choice(half, m // 2, replace=False),
                         half + rng.choice(half, m - m // 2, replace=False)])
         for _ in range(n_owned)]
    ).astype(np.int32)  # fmt: skip
    w = np.abs(rng.normal(0.1, 0.05, size=(n_owned, m))).astype(np.float32)
    w[:, m // 2 :] *= -1
    return dict(
        pre=pre, w=w, r=rng.random(N) * 0.05, x_ff=np.zeros(0),
        w_ff=np.zeros((n_owned, 0), np.float32),
        u_bal=rng.normal(size=n_owned).astype(np.float32),
        target=rng.normal(size=n_owned).astype(np.float32), hist=rng.random((H, N)) * 0.05,
    )  # fmt: skip


def load_rls_at(rev: str):
    """The small-mode RLS module as of git revision ``rev`` (``backends/cpu/rls_small.py``, or
    ``rls.py`` before the split), imported as a separate module."""
    import importlib.util
    import tempfile

    for name in ("rls_small.py", "rls.py"):
        got = subprocess.run(["git", "show", f"{rev}:tsn_mpi/backends/cpu/{name}"], cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
        if got.returncode == 0:
            break
    else:
        raise SystemExit(f"{rev}: no tsn_mpi/backends/cpu/rls_small.py or rls.py")
    src = got.stdout
    path = Path(tempfile.mkdtemp(prefix="tsn-rls-")) / "rls_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("rls_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def kernel_times(n_owned: int, m: int, H: int, reps: int, before=None) -> dict:
    """Best seconds per learning step of the RLS kernels (benchmark mode: weights not applied),
    each call alternating with the others ``reps`` times: fast (float32 packed P), small with
    the mean row (as trained), small window only (the reference's), and optionally small mode
    of an earlier revision's module ``before`` (window only)."""
    from tsn_mpi.backends.cpu.rls_fast import rls_fast
    from tsn_mpi.backends.cpu.rls_small import rls_small
    from tsn_mpi.learn.initial_p import initial_p_rows
    from tsn_mpi.learn.packed import rows_to_tiles

    p = synthetic(n_owned, m, H + 1)
    bad = np.zeros(n_owned, np.uint8)
    P = rows_to_tiles(initial_p_rows(p["w"], p["pre"] >= 0, 0, 0.8, 1.0, 0.01), dtype=np.float32)
    common = (p["pre"], p["w"], p["r"], p["x_ff"], p["w_ff"], p["u_bal"], p["target"])
    small = (p["hist"], H, 0.8, 1.0, 0.01, False, False, bad)
    window = np.ascontiguousarray(p["hist"][:H])
    calls = {
        "fast": lambda: rls_fast(P, *common, False, False, bad),
        "small": lambda: rls_small(*common, *small, mean_row=H, mean_weight=1000.0),
        "small_window_only": lambda: rls_small(*common, window, *small[1:]),
    }
    if before is not None:
        calls["small_before"] = lambda: before.rls_small(*common, window, *small[1:])
    best = dict.fromkeys(calls, np.inf)
    for f in calls.values():
        f()
    for _ in range(reps):
        for name, f in calls.items():
            t = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t)
    return dict(
        n_owned=n_owned, m=m, H=H, P_bytes=int(P.nbytes), s_per_step=best,
        us_per_neuron_update={k: v / n_owned * 1e6 for k, v in best.items()},
        rls_s_per_loop_1m={k: v / n_owned * N_1M * 100 for k, v in best.items()},
    )


def measure_kernels(res: dict, args: argparse.Namespace) -> None:
    """res["kernels"]: kernel_times at the default model's m and at m = 90, with all numba
    threads and with one (less sensitive to other jobs on the machine)."""
    import numba

    before = load_rls_at(args.before_rev) if args.before_rev else None
    res["kernels_before_rev"] = args.before_rev
    window, m0 = res["history_window"], res["modes"]["small"]["memory"]["m"]
    res["kernels"] = []
    nt = numba.get_num_threads()
    for threads in (nt, 1) if nt > 1 else (nt,):
        numba.set_num_threads(threads)
        for m in (m0, M_1M):
            res["kernels"].append(dict(kernel_times(4096, m, window, args.reps, before),
                                       threads=threads))  # fmt: skip
    numba.set_num_threads(nt)
    res["loadavg_kernels_end"] = os.getloadavg()


def print_kernels(res: dict) -> None:
    print("\nRLS kernels alone, 4096 synthetic neurons, benchmark mode: s per learning step "
          "(best of the alternating reps), and RLS s/loop projected to 1M neurons")  # fmt: skip
    kinds = list(res["kernels"][0]["s_per_step"])
    print(f"{'thr':>4}{'m':>4}" + "".join(f"{k:>19}" for k in kinds) + f"{'1M s/loop':>11}"
          + "".join(f"{k[:12]:>13}" for k in kinds[1:]))  # fmt: skip
    for k in res["kernels"]:
        t, p1 = k["s_per_step"], k["rls_s_per_loop_1m"]
        print(f"{k['threads']:>4}{k['m']:>4}" + "".join(f"{t[x]:19.5f}" for x in kinds)
              + f"{p1['fast']:11.0f}" + "".join(f"{p1[x]:13.0f}" for x in kinds[1:]))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nloops", type=int, default=100, help="small-mode training loops")
    ap.add_argument("--fast-loops", type=int, default=100, help="fast-mode loops")
    ap.add_argument("--window-loops", type=int, default=50,
                    help="loops of small mode without the mean row (the reference's; 0: skip)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-small-mode"))
    ap.add_argument("--reps", type=int, default=7, help="kernel timing repetitions")
    ap.add_argument("--ranks-1m", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--before-rev", default="",
                    help="also time small mode's kernel as of this git revision")
    ap.add_argument("--quick", action="store_true", help="3 small-mode loops, fewer reps")
    ap.add_argument("--kernels-only", action="store_true",
                    help="re-time the kernels only, into the existing results file")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.nloops, args.child / "bench-child.json")
        return
    if args.quick:
        args.nloops, args.fast_loops, args.reps, args.window_loops = 3, 3, 2, 3
    from _provenance import save_json

    path = HERE / "results" / ("small_mode_quick.json" if args.quick else "small_mode.json")
    if args.kernels_only:
        res = json.loads(path.read_text())
        res["loadavg_kernels_start"] = os.getloadavg()
        measure_kernels(res, args)
        print_kernels(res)
        save_json(path, res, __file__)  # the earlier run's provenance kept as "earlier"
        print(f"\nwrote {path}")
        return
    import numba

    import tsn_mpi

    res: dict = dict(
        machine=f"{platform.node()} {platform.processor()}", threads=numba.get_num_threads(),
        loadavg_start=os.getloadavg(), nloops_small=args.nloops, nloops_fast=args.fast_loops,
    )  # fmt: skip
    modes = {}
    runs = [("fast", "fast", True, args.fast_loops), ("small", "small", True, args.nloops)]
    if args.window_loops:
        runs.append(("small_window_only", "small", False, args.window_loops))
    for name, mode, history_mean, nloops in runs:
        run = args.work / name
        shutil.rmtree(run, ignore_errors=True)
        tsn_mpi.new(run)
        set_learning(run, mode, history_mean)
        tsn_mpi.init(run, quiet=True)
        mem = learner_memory(run)
        mem["all_arrays"] = all_arrays(run)
        print(f"{name}: training {nloops} loops ...", flush=True)
        tr = train_child(run, nloops)
        modes[name] = dict(mode=mode, history_mean=history_mean, memory=mem, train=tr)
    res["modes"] = modes
    sm = modes["small"]["memory"]
    history = sm["history_rows"]  # the window, plus the running-mean row
    res["history_rows"] = history
    res["history_window"] = sm["history_window"]
    full = modes["fast"]["memory"]["all_arrays"]
    res["projection_1m"] = projection_1m(history, args.ranks_1m, full and full["sizes"])
    res["loadavg_end"] = os.getloadavg()
    measure_kernels(res, args)

    names = list(modes)
    print(f"\ndefault model, N = {sm['N']}, m = {sm['m']}, history rows = {history} "
          f"(window {sm['history_window']} + mean), 1 rank, "
          f"{res['threads']} threads\n")  # fmt: skip
    print(f"{'':<34}" + "".join(f"{nm:>20}" for nm in names))

    def arrays(x: dict) -> float:
        a = x["memory"]["all_arrays"]
        return float("nan") if a is None else a["bytes_per_neuron"]

    def curve_max(x: dict) -> str:
        c = x["train"]["curve"]
        i = int(np.nanargmax(c["correlation"]))
        return f"{c['correlation'][i]:.3f} @ {c['loop'][i]}"

    table = [
        ("learner arrays, B/neuron", lambda x: x["memory"]["learner_bytes_per_neuron"], "{:.0f}"),
        ("all arrays, B/neuron", arrays, "{:.0f}"),
        ("peak RSS of training, MB", lambda x: x["train"]["peak_rss_bytes"] / 1e6, "{:.1f}"),
        ("RSS after training, MB", lambda x: x["train"]["rss_end_bytes"] / 1e6, "{:.1f}"),
        ("s/loop (median of loops 2..N)", lambda x: x["train"]["s_per_loop_median"], "{:.2f}"),
        ("loops trained", lambda x: x["train"]["curve"]["loop"][-1], "{}"),
        ("mean correlation, last 3 loops", lambda x: x["train"]["mean_correlation_last3"],
         "{:.3f}"),
        ("best correlation @ loop", curve_max, "{}"),
        ("firing rate, last loop, Hz", lambda x: x["train"]["curve"]["firing_rate_hz"][-1],
         "{:.1f}"),
    ]  # fmt: skip
    for label, get, fmt in table:
        print(f"{label:<34}" + "".join(f"{fmt.format(get(modes[nm])):>20}" for nm in names))
    print_kernels(res)
    print(f"\n1M-neuron model (m = {M_1M}, {history} history rows): learner bytes per neuron, "
          "GB per rank")
    print(f"{'':<10}{'fast P':>10}{'small hist':>12}{'fast GB':>10}{'small GB':>10}"
          f"{'+ other arrays GB':>19}")  # fmt: skip
    for key, p in res["projection_1m"].items():
        other = p.get("other_arrays_bytes_per_neuron")
        tail = "" if other is None else f"{other * p['n_per_rank'] / 1e9:19.2f}"
        print(f"{key:<10}{p['fast_P_bytes_per_neuron']:10.0f}"
              f"{p['small_history_bytes_per_neuron']:12.0f}{p['fast_P_gb_per_rank']:10.2f}"
              f"{p['small_history_gb_per_rank']:10.2f}{tail}")  # fmt: skip
    save_json(path, res, __file__)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
