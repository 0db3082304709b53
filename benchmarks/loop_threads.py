"""The CPU time loop on 1 and 2 (or more) threads of one process: default and ~100k-neuron model.

    python benchmarks/loop_threads.py [--models default 100k] [--threads 1 2] [--reps 7]
                                      [--n-large 100000] [--rls] [--work DIR]

For each model the run is initialised once (kept in --work), then the simulator and learner are
built as ``train`` builds them (``memory_per_neuron.build_live``), and whole training trials
(train mode, advanced in chunks of learn_step steps as in training) are timed, the thread
counts interleaved A/B within each repetition (the order alternating between repetitions), so
every count sees the same machine load.  Between chunks the learner runs only with --rls (in
benchmark mode: computed, not applied; untimed), so by default every repetition is the same
trajectory with fixed weights.  Reported per thread count: median, min and max seconds of the
time loop, and the per-repetition speed-up t(1)/t(T) (median, min, max); the spike counts of
every trial are checked to be identical across thread counts (the loop is bitwise the same).
The ~100k model keeps the default's in-degree (K = 205: p_ee = 205 / Ne).
Next to each repetition a pure compute kernel (independent sqrt chains, no memory traffic, no
synchronisation) runs on 1 and on the largest thread count: its speed-up is what the machine
can give at that moment (about 1.0 when other jobs hold the other cores), the ceiling for the
time loop's.
Saves benchmarks/results/loop_threads.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit, prange

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))


def make_run(work: Path, name: str, n_large: int) -> Path:
    """Initialise (once) the run of model ``name`` under ``work``."""
    import tsn_mpi

    run = work / name
    if (run / "checkpoints" / "ckpt-0.h5").is_file():
        return run
    run.mkdir(parents=True, exist_ok=True)
    tsn_mpi.new(run)
    if name != "default":
        ne = n_large // 2
        text = (run / "config.toml").read_text()
        text = text.replace("n_cells = 4096", f"n_cells = {n_large}", 1)
        text = text.replace("p_ee = 0.1", f"p_ee = {205 / ne!r}", 1)
        (run / "config.toml").write_text(text)
    t = time.perf_counter()
    tsn_mpi.init(run, quiet=True)
    print(f"{name}: init {time.perf_counter() - t:.1f} s", flush=True)
    return run


@njit(parallel=True)
def _chains(out, nt, n):  # pragma: no cover - jitted
    for k in prange(nt):
        y = 1.0 + k
        for _ in range(n):
            y = np.sqrt(y + 1.0)
        out[k] = y


def machine_speedup(nt: int, n: int = 5_000_000) -> float:
    """Speed-up of ``nt`` independent compute chains on ``nt`` threads over one thread."""
    import numba

    out = np.zeros(nt)
    old = numba.get_num_threads()
    _chains(out, nt, 10)
    numba.set_num_threads(1)
    t = time.perf_counter()
    _chains(out, nt, n)
    one = time.perf_counter() - t
    numba.set_num_threads(nt)
    t = time.perf_counter()
    _chains(out, nt, n)
    many = time.perf_counter() - t
    numba.set_num_threads(old)
    return one / many


def trial(live: dict, rls: bool) -> tuple[float, np.ndarray]:
    """One train-mode trial in learn_step chunks: seconds inside ``advance`` and the counts."""
    sim, learner, net, d = live["sim"], live["learner"], live["net"], live["d"]
    sim.start_trial("train", 1, 0)
    t_adv, step, seq, ls = 0.0, 1, 0, d.learn_step
    while step <= d.n_steps:
        if rls and step % ls == 0 and step > d.stim_off_step:
            learner.update(sim.traces_at(step - 1), sim.r_ff, sim.u_bal, net.targets[0, seq])
            seq += 1
        end = min((step // ls + 1) * ls - 1, d.n_steps)
        t = time.perf_counter()
        sim.advance(step, end)
        t_adv += time.perf_counter() - t
        step = end + 1
    return t_adv, sim.finish_trial().ns.copy()


def bench_model(run: Path, threads: list[int], reps: int, rls: bool) -> dict:
    import numba
    from memory_per_neuron import build_live

    live = build_live(run)
    live["learner"].apply = False
    sim = live["sim"]
    out = {t: [] for t in threads}
    ns_ref = None
    for t in threads:  # warm-up: compile / load every variant
        sim.set_loop_threads(t)
        trial(live, rls)
    loads = [os.getloadavg()[0]]
    machine = []
    for rep in range(reps):
        machine.append(machine_speedup(max(threads)))
        order = threads if rep % 2 == 0 else threads[::-1]
        for t in order:
            sim.set_loop_threads(t)
            assert sim.loop_threads == t, f"asked {t} threads, got {sim.loop_threads}"
            secs, ns = trial(live, rls)
            if ns_ref is None:
                ns_ref = ns
            assert np.array_equal(ns, ns_ref), "spike counts differ between thread counts"
            out[t].append(secs)
        loads.append(os.getloadavg()[0])
    base = np.asarray(out[threads[0]])
    res = {"n_cells": int(live["d"].n_cells), "k": int(live["d"].k),
           "n_steps": int(live["d"].n_steps), "spikes": int(ns_ref.sum()),
           "numba_threads": numba.get_num_threads(), "threading_layer": numba.threading_layer(),
           "loadavg_1min": loads, "seconds": {str(t): v for t, v in out.items()},
           "machine_speedup": machine}  # fmt: skip
    summary = {}
    for t in threads:
        a = np.asarray(out[t])
        ratio = base / a
        summary[str(t)] = {
            "median_s": float(np.median(a)), "min_s": float(a.min()), "max_s": float(a.max()),
            "speedup_median": float(np.median(ratio)), "speedup_min": float(ratio.min()),
            "speedup_max": float(ratio.max()),
            "speedup_of_medians": float(np.median(base) / np.median(a)),
            "speedup_of_minima": float(base.min() / a.min()),
        }  # fmt: skip
    res["summary"] = summary
    del live
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["default", "100k"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n-large", type=int, default=100_000)
    ap.add_argument("--rls", action="store_true", help="run RLS (not applied) between chunks")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-loop-threads"))
    args = ap.parse_args()
    import numba

    if max(args.threads) > numba.config.NUMBA_NUM_THREADS:
        sys.exit(f"--threads up to {numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS)")
    results = {}
    for name in args.models:
        run = make_run(args.work, name, args.n_large)
        r = bench_model(run, args.threads, args.reps, args.rls)
        results[name] = r
        print(f"\n{name}: N = {r['n_cells']}, K = {r['k']}, {r['n_steps']} steps, "
              f"{r['spikes']} spikes per trial, layer {r['threading_layer']}, load average "
              f"{min(r['loadavg_1min']):.1f}-{max(r['loadavg_1min']):.1f} "
              f"({os.cpu_count()} cpus)")  # fmt: skip
        m = r["machine_speedup"]
        print(f"compute kernel on {max(args.threads)} threads (what the machine gives): "
              f"{np.median(m):.2f}x median, {min(m):.2f}-{max(m):.2f}")  # fmt: skip
        print(f"{'threads':>8}{'median s':>10}{'min s':>9}{'max s':>9}"
              f"{'speed-up: median':>18}{'min':>7}{'max':>7}{'of minima':>11}")  # fmt: skip
        for t, s in r["summary"].items():
            print(f"{t:>8}{s['median_s']:10.3f}{s['min_s']:9.3f}{s['max_s']:9.3f}"
                  f"{s['speedup_median']:18.2f}{s['speedup_min']:7.2f}{s['speedup_max']:7.2f}"
                  f"{s['speedup_of_minima']:11.2f}")  # fmt: skip
    from _provenance import save_json

    out = {"reps": args.reps, "threads": args.threads, "rls_between_chunks": args.rls,
           "loadavg_start_end": os.getloadavg(), "results": results}  # fmt: skip
    path = save_json(HERE / "results" / "loop_threads.json", out, __file__)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
