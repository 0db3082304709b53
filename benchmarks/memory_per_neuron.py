"""Bytes per neuron of every array a rank holds during training, against the minimum.

    python benchmarks/memory_per_neuron.py [--no-stim-timing] [--ranks-1m 1 16]

Builds the live objects of a training run of the default config (``tsn-mpi new`` + ``init``,
then the :class:`Network`, :class:`CpuLearner` and :class:`Simulator` exactly as ``train`` builds
them, with the trial set up in train_test mode, as every default loop measures the correlation)
and walks their numpy array attributes (tuples included; views of one buffer counted once).
Each array also has a formula in the model sizes (N, owned n, ranks R, in-degree, m, ...): the
formulas are checked against the live sizes, then evaluated for the paper's 1M-neuron
configuration (K = 512 per population -> p_ee = 512/500000, l_exc = l_inh = 45, everything
else default), which is never built.

Theoretical minimum for the chosen storage (per neuron): P packed n(n+1)/2 x 4 B; static
in-degree (2K on average) x (4 B index + 1 B weight code); plastic m x (4 B index + 4 B weight);
targets n_learn x 4 B per task; minimal state 36 B (v, u_bale, u_bali, u_plas, in_e, in_i,
in_p and the trace r as float32, last spike as an int32 step).  Not in the minimum: the stimulus
(the default OU can be regenerated from the seed, 0 B stored), recording for the correlation,
exchange buffers, scratch.  The target of the issue is actual / minimum <= 1.25.

Also times one train-mode trial with the stimulus precomputed (tsn-mpi's choice while it fits
in 1 GiB per rank) and generated online, since that table is the largest optional array.
Saves benchmarks/results/memory_per_neuron.json.
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

TILE = 32  # tsn_mpi.learn.packed.TILE_W


def build_live(run_dir: Path, checkpoint=None) -> dict:
    """Network, cell, learner and simulator of one process, as ``tsn_mpi.train`` builds them."""
    from tsn_mpi.phases.common import open_run
    from tsn_mpi.phases.restore import read_run_files, restore_state

    run = open_run(run_dir, quiet=True)
    cfg, d = run.cfg, run.d
    net, init, ck = read_run_files(run, checkpoint)
    state = restore_state(run, net, init, ck, lazy=())
    cell, learner, sim = state.cell, state.learner, state.sim
    return dict(run=run, cfg=cfg, d=d, net=net, cell=cell, learner=learner, sim=sim)


# ----------------------------------------------------------------- per-array size formulas
# s: sizes; every formula gives bytes held by one rank.  (category, formula, note)

TUPLE_NAMES = {
    "static_out": ("out_indptr", "out_post", "out_code", "st_table", "pop_info"),
    "plastic_out": ("out_indptr", "out_post", "out_slot", "w_in"),
    "scratch": ("z", "u", "drive", "spk", "exchange_s", "ff_fired"),
    "cell_tuple": ("model_id", "params", "state", "lif_th", "lif_dt_invtau", "lif_vre"),
}


def pad8(x: int) -> int:
    return -(-max(x, 1) // 8) * 8


F = {
    # CpuLearner
    "learner.P": ("P", lambda s: -(-s["n"] // TILE) * TILE * s["n_packed"] * s["p_bytes"],
                  "AoSoA tiles, n rounded up to 32"),
    "learner.bad": ("scratch", lambda s: s["n"], "uint8 flag per neuron"),
    # Network
    "net.st_indptr": ("static", lambda s: 8, "incoming CSR: dropped once the outgoing map exists"),
    "net.st_pre": ("static", lambda s: 0, "incoming CSR: dropped at start-up"),
    "net.st_code": ("static", lambda s: 0, "incoming CSR: dropped at start-up"),
    "net.st_table": ("static", lambda s: s["n_codes"] * 4, "4 weights by population"),
    "net.pl_pre": ("plastic", lambda s: s["n"] * s["m"] * 4, "int32 presynaptic ids (RLS)"),
    "net.w_in": ("plastic", lambda s: s["n"] * s["m"] * 4, "float32 plastic weights"),
    "net.w_ff": ("plastic", lambda s: s["n"] * s["lx"] * 4, ""),
    "net.targets": ("targets", lambda s: s["ntasks"] * s["n_learn"] * s["n"] * 4, ""),
    "net.ff_rates": ("feed-forward", lambda s: s["n_ff_steps"] * s["lx"] * 8, ""),
    "sim.rate_ff": ("feed-forward", lambda s: 0, "net.ff_rates itself when non-empty"),
    # Simulator: connectivity maps
    "sim.static_out.out_indptr": ("static", lambda s: (s["N"] + 1) * 8,
                                  "int64 over all N presynaptic ids, per rank"),
    "sim.static_out.out_post": ("static", lambda s: s["nnz"] * 4, ""),
    "sim.static_out.out_code": ("static", lambda s: 0 if s["by_pop"] else s["nnz"] * 1,
                                "empty: weights follow the populations"),
    "sim.static_out.pop_info": ("static", lambda s: 24, ""),
    "sim.plastic_out.out_indptr": ("plastic", lambda s: (s["N"] + 1) * 8,
                                   "int64 over all N presynaptic ids, per rank"),
    "sim.plastic_out.out_post": ("plastic", lambda s: s["n"] * s["m"] * 4, ""),
    "sim.plastic_out.out_slot": ("plastic", lambda s: s["n"] * s["m"] * 1, "uint8 slot < m"),
    "sim.needed": ("plastic", lambda s: s["n_needed"] * 8, "int64 unique plastic pre ids"),
    # traces (all N gids per rank)
    "sim.r_val": ("traces", lambda s: s["N"] * 8, "float64, all N"),
    "sim.r_step": ("traces", lambda s: s["N"] * 8, "int64, all N"),
    "sim.r_now": ("traces", lambda s: s["N"] * 8, "float64, all N, filled at needed gids"),
    "sim.pending": ("traces", lambda s: s["N"] * 4, "int32, all N"),
    "sim.a_pre": ("traces", lambda s: 8, ""),
    "sim.inc_pre": ("traces", lambda s: 8, ""),
    "sim.inv_tau_post": ("traces", lambda s: 8, ""),
    "sim.n_pending": ("traces", lambda s: 8, ""),
    # neuron state
    **{f"sim.{k}": ("state", lambda s: s["n"] * 4, "float32")
       for k in ("v", "u_bale", "u_bali", "u_plas", "u_bal", "in_e", "in_i", "in_p", "x_bal")},
    "sim.ns": ("state", lambda s: s["n"] * 4, "int32"),
    "sim.last_spike": ("state", lambda s: s["n"] * 8, "float64 ms"),
    "sim.sigma": ("state", lambda s: 8, ""),
    "sim.noise_rng": ("state", lambda s: s["n"] * 8, "uint64 RNG stream (no noise by default)"),
    "cell.params": ("state", lambda s: s["n"] * 3 * 8, "(n, 3) float64 thresh, 1/tau, vre"),
    "cell.state": ("state", lambda s: 0, ""),
    "sim.cell_tuple.state": ("state", lambda s: 0, "cell.state itself when non-empty"),
    "sim.cell_tuple.lif_th": ("state", lambda s: s["n"] * 4, "copy of cell.params[:, 0]"),
    "sim.cell_tuple.lif_dt_invtau": ("state", lambda s: s["n"] * 8, "from cell.params[:, 1]"),
    "sim.cell_tuple.lif_vre": ("state", lambda s: s["n"] * 4, "copy of cell.params[:, 2]"),
    # stimulus
    "sim.stim_arr": ("stimulus", lambda s: s["ntasks"] * s["n_stim"] * s["n"] * 4
                     if s["stim_pre"] else 4, "empty: the OU stimulus is drawn online"),
    "sim.ou_s": ("stimulus", lambda s: s["n"] * 8, "float64 online OU value"),
    "sim.ou_rng": ("stimulus", lambda s: s["n"] * 8, "uint64 RNG stream"),
    # feed-forward
    "sim.r_ff": ("feed-forward", lambda s: s["lx"] * 8, ""),
    "sim.spk_ff": ("feed-forward", lambda s: s["lx"] * 8, ""),
    "sim.ff_rng": ("feed-forward", lambda s: s["lx"] * 8, ""),
    # recording (correlation)
    "sim.group_of_step": ("recording", lambda s: s["n_after"] * 4, ""),
    "sim.group_ranges": ("recording", lambda s: s["n_groups"] * 16, ""),
    "sim.group_count": ("recording", lambda s: s["n_groups"] * 8, ""),
    "sim.uavg": ("recording", lambda s: s["n"] * 8, "init-mode only, float64"),
    "sim.u0_sum": ("recording", lambda s: s["n"] * 8, "init-mode only, float64"),
    "sim.u0_sumsq": ("recording", lambda s: s["n"] * 8, "init-mode only, float64"),
    "sim.roll_idx": ("recording", lambda s: s["n"] * 8, "int64 column of each neuron"),
    "sim.roll_sel": ("recording", lambda s: 8, ""),
    "sim.roll": ("recording", lambda s: s["n_groups"] * s["n"] * 8,
                 "float64 rolling sums (n_groups, 1, n) in train_test loops"),
    "sim.spk_idx": ("recording", lambda s: 0, ""),
    "sim.spk_steps": ("recording", lambda s: 0, ""),
    # exchange
    "sim.cap": ("exchange", lambda s: 8, ""),
    "sim.send": ("exchange", lambda s: (s["cap"] + 1) * 4, ""),
    "sim.recv": ("exchange", lambda s: (s["cap"] + 1) * s["R"] * 4, ""),
    "sim.local_spk": ("exchange", lambda s: max(s["n"], 1) * 4 * min(s.get("loop_threads", 1), 2),
                      "spike ids of a step; two halves (step parity) with loop threads"),
    "sim.all_spk": ("exchange", lambda s: max(s["n"], 1) * 4,
                    "the threads' spike ids gathered (threaded loop under MPI)"),
    "sim.ff_fired": ("feed-forward", lambda s: 2 * (s["lx"] + 1) * 4, "drawn inputs of a step"),
    "sim.overflow": ("exchange", lambda s: 16, ""),
    "sim.exchange_s": ("exchange", lambda s: 16, "seconds in allgather and delivery (MPI)"),
    # scratch
    "sim.scratch.z": ("scratch", lambda s: s["n"] * 8, "float64 normals (noise only)"),
    "sim.scratch.u": ("scratch", lambda s: s["n"] * 4, ""),
    "sim.scratch.drive": ("scratch", lambda s: s["n"] * 4, ""),
    "sim.scratch.spk": ("scratch", lambda s: pad8(s["n"]), "uint8 spike flags"),
}  # fmt: skip

MIN_STATE = 36  # v, u_bale, u_bali, u_plas, in_e, in_i, in_p, r (float32) + last spike int32


def minimum(s: dict) -> dict:
    """Theoretical minimum bytes per neuron (see the module docstring)."""
    mn = {
        "P": s["n_packed"] * s["p_bytes"],
        "static": s["nnz"] / s["n"] * (4 if s["by_pop"] else 4 + 1),  # index (+ code)
        "plastic": s["m"] * (4 + 4) + s["lx"] * 4,
        "targets": s["n_learn"] * 4 * s["ntasks"],
        "state": MIN_STATE,
    }
    mn["total"] = sum(mn.values())
    return mn


# --------------------------------------------------------------------------- live inventory


def walk(obj, prefix: str):
    """(name, array) for every numpy array attribute of obj, tuples expanded."""
    for k, v in vars(obj).items():
        if isinstance(v, np.ndarray):
            yield f"{prefix}.{k}", v
        elif isinstance(v, tuple) and k in TUPLE_NAMES:
            for name, x in zip(TUPLE_NAMES[k], v, strict=False):
                if isinstance(x, np.ndarray):
                    yield f"{prefix}.{k}.{name}", x


def inventory(live: dict) -> list[dict]:
    seen: dict[tuple[int, int], str] = {}
    rows = []
    for prefix in ("learner", "net", "cell", "sim"):
        for name, a in walk(live[prefix], prefix):
            key = (a.__array_interface__["data"][0], a.nbytes)
            if a.nbytes and key in seen:
                continue  # a view of an array already counted (e.g. sim.plastic_out.w_in)
            seen[key] = name
            rows.append(dict(name=name, dtype=str(a.dtype), shape=list(a.shape), bytes=a.nbytes))
    return rows


def sizes_live(live: dict, R: int = 1) -> dict:
    d, net, sim = live["d"], live["net"], live["sim"]
    return dict(
        N=d.n_cells, n=net.n_owned, R=R, m=d.n_plastic, lx=d.l_ff,
        nnz=int(sim.static_out[1].size), by_pop=bool(net.st_by_population),
        n_codes=int(net.st_table.size), n_packed=d.n_packed,
        p_bytes=np.dtype(live["cfg"].learning.p_precision).itemsize, ntasks=d.ntasks,
        n_learn=d.n_learn, n_stim=d.n_stim_steps, stim_pre=not sim.stim_online,
        n_ff_steps=int(net.ff_rates.shape[0]), n_needed=int(sim.needed.size),
        n_after=int(sim.group_of_step.size), n_groups=int(len(sim.group_ranges)),
        cap=int(sim.cap[0]), loop_threads=int(sim.loop_threads),
    )  # fmt: skip


def sizes_1m(R: int, base: dict) -> dict:
    """Sizes of the paper's 1M configuration on R ranks (even partition), analytically."""
    N, ne, K, le = 1_000_000, 500_000, 512, 45
    n = N // R
    m = 2 * le
    # expected distinct presynaptic ids among n*le draws per population (each of size ne)
    needed = 2 * ne * (1 - math.exp(-n * le / ne))
    from tsn_mpi.simulate.trial import exchange_capacity

    cap = n if R == 1 else exchange_capacity(n, 0.1)
    return dict(base, N=N, n=n, R=R, m=m, nnz=2 * K * n, n_packed=m * (m + 1) // 2,
                n_needed=int(round(needed)), stim_pre=False, cap=cap)  # fmt: skip


def evaluate(s: dict) -> list[dict]:
    return [dict(name=k, category=c, bytes=int(f(s)), note=note) for k, (c, f, note) in F.items()]


def by_category(rows: list[dict], n: int) -> dict:
    out: dict[str, float] = {}
    for r in rows:
        out[r["category"]] = out.get(r["category"], 0.0) + r["bytes"] / n
    out["total"] = sum(out.values())
    return out


def rss_now() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def time_stimulus(run_dir: Path, reps: int = 5) -> dict:
    """Seconds of one train-mode trial (no RLS) with the OU stimulus drawn online (tsn-mpi's
    way) and read from a precomputed table (8 KB per neuron, the same values): the two
    simulators alternate, min of ``reps`` each."""
    from tsn_mpi import rng
    from tsn_mpi.backends.cpu.loop import ou_stimulus

    sims = {"online": build_live(run_dir)["sim"]}
    live = build_live(run_dir)
    sim, cfg, d = live["sim"], live["cfg"], live["d"]
    gids = np.arange(sim.gid0, sim.gid0 + sim.n, dtype=np.int64)
    seeds = rng.stream_states(cfg.run.seed, rng.STIMULUS, gids, 0)
    mu, b, sig = sim.ou
    sim.stim_arr = ou_stimulus(seeds, d.n_stim_steps, mu, b, sig, cfg.simulation.dt)[None]
    sim.stim_online = False
    sims["precomputed"] = sim
    n_steps = d.n_steps
    best = dict.fromkeys(sims, float("inf"))
    for _ in range(reps + 1):
        for name, s in sims.items():
            s.start_trial("train", 1, 0)
            t = time.perf_counter()
            s.advance(1, n_steps)
            best[name] = min(best[name], time.perf_counter() - t)
    return best


# ------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-memory"))
    ap.add_argument("--ranks-1m", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--no-stim-timing", action="store_true")
    args = ap.parse_args()
    import tsn_mpi

    shutil.rmtree(args.work, ignore_errors=True)
    tsn_mpi.new(args.work)
    tsn_mpi.init(args.work, quiet=True)
    rss0 = rss_now()
    live = build_live(args.work)
    sim, n = live["sim"], live["net"].n_owned
    sim.start_trial("train_test", 1, 0, np.arange(n), (live["d"].correlation_var,))
    rss1 = rss_now()
    measured = inventory(live)
    s = sizes_live(live)
    formula = {r["name"]: r for r in evaluate(s)}
    mismatch = []
    for r in measured:
        f = formula.get(r["name"])
        r["category"] = f["category"] if f else "unlisted"
        r["note"] = f["note"] if f else ""
        r["formula_bytes"] = f["bytes"] if f else None
        if f is None or f["bytes"] != r["bytes"]:
            mismatch.append(r["name"])
    missing = sorted(set(formula) - {r["name"] for r in measured})
    # arrays the formulas know but the live objects share with another (e.g. views): fine
    cats = by_category(measured, n)

    print(f"default config, 1 rank holding all N = {n} neurons (train_test loop)\n")
    print(f"{'array':<32}{'dtype':>9}{'shape':>18}{'B/neuron':>10}  note")
    for r in sorted(measured, key=lambda r: -r["bytes"]):
        if r["bytes"] / n < 0.5:
            continue
        print(f"{r['name']:<32}{r['dtype']:>9}{str(tuple(r['shape'])):>18}"
              f"{r['bytes'] / n:10.1f}  {r['note']}")  # fmt: skip
    small = sum(r["bytes"] for r in measured if r["bytes"] / n < 0.5)
    print(f"{'(arrays under 0.5 B/neuron)':<59}{small / n:10.1f}")
    if mismatch or missing:
        print(f"formula mismatch: {mismatch}; not present live: {missing}")
    arrays_mb = sum(r["bytes"] for r in measured) / 1e6
    rss = dict(before_build_mb=rss0 / 1e6, after_build_mb=rss1 / 1e6, arrays_mb=arrays_mb,
               peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6)  # fmt: skip
    print(f"process RSS: {rss0 / 1e6:.0f} MB after init (interpreter, numba, h5py), "
          f"{rss1 / 1e6:.0f} MB with the live objects (+{(rss1 - rss0) / 1e6:.0f} MB; arrays "
          f"{arrays_mb:.0f} MB), peak {rss['peak_mb']:.0f} MB")  # fmt: skip

    # 1M configuration
    scen = {"default (N=4096, R=1)": (s, measured, cats)}
    for R in args.ranks_1m:
        s1 = sizes_1m(R, s)
        rows = evaluate(s1)
        scen[f"1M, K=512, m=90 (R={R})"] = (s1, rows, by_category(rows, s1["n"]))
    order = ["P", "static", "plastic", "targets", "stimulus", "state", "traces", "recording",
             "exchange", "scratch", "feed-forward", "total"]  # fmt: skip
    names = list(scen)
    print("\nbytes per neuron by category (minimum in brackets)\n")
    print(f"{'category':<14}" + "".join(f"{nm:>30}" for nm in names))
    results = {}
    for nm in names:
        s_, rows_, cat_ = scen[nm]
        results[nm] = dict(sizes=s_, by_category=cat_, minimum=minimum(s_), arrays=rows_)
    for c in order:
        cells = []
        for nm in names:
            v = results[nm]["by_category"].get(c, 0.0)
            m_ = results[nm]["minimum"].get(c)
            cells.append(f"{v:12.0f}" + (f" [{m_:8.0f}]" if m_ is not None else " " * 11))
        print(f"{c:<14}" + "".join(f"{x:>30}" for x in cells))
    big = ("net.st_indptr", "net.st_pre", "net.st_code", "sim.stim_arr")  # ~0 now
    for nm in names:
        r = results[nm]
        tot = r["by_category"]["total"]
        lean = tot - sum(a["bytes"] for a in r["arrays"] if a["name"] in big) / r["sizes"]["n"]
        r["ratio_without_stim_table_and_incoming_csr"] = lean / r["minimum"]["total"]
    print(f"{'actual/min':<14}" + "".join(
        f"{results[nm]['by_category']['total'] / results[nm]['minimum']['total']:>30.2f}"
        for nm in names))  # fmt: skip
    print(f"{'  w/o stim+in':<14}" + "".join(
        f"{results[nm]['ratio_without_stim_table_and_incoming_csr']:>30.2f}"
        for nm in names))  # fmt: skip
    print("(w/o stim+in: without the precomputed stimulus table and the incoming static CSR)")
    for nm in names:
        r = results[nm]
        r["ratio"] = r["by_category"]["total"] / r["minimum"]["total"]
        tot = r["by_category"]["total"] * r["sizes"]["n"]
        r["bytes_per_rank"] = tot
        print(f"{nm}: {tot / 1e9:.2f} GB per rank, x{r['sizes']['R']} ranks")

    # wasteful arrays (per neuron, default and 1M R=16)
    waste = {
        "LIF parameters twice (cell.params float64 + cell_tuple copies)":
            ["cell.params"],
        "init-only accumulators kept in training (uavg, u0_sum, u0_sumsq)":
            ["sim.uavg", "sim.u0_sum", "sim.u0_sumsq"],
        "rolling sums in float64 (sim.roll), half as float32": ["sim.roll"],
        "O(N) per rank: traces + two int64 indptrs over all N + needed":
            ["sim.r_val", "sim.r_step", "sim.r_now", "sim.pending",
             "sim.static_out.out_indptr", "sim.plastic_out.out_indptr", "sim.needed"],
    }  # fmt: skip
    print("\ncandidate waste, bytes per neuron")
    print(f"{'':<72}" + "".join(f"{nm[:22]:>24}" for nm in names))
    wres = {}
    for label, keys in waste.items():
        vals = []
        for nm in names:
            rows_ = {r["name"]: r["bytes"] for r in results[nm]["arrays"]}
            v = sum(rows_.get(k, 0) for k in keys) / results[nm]["sizes"]["n"]
            if "float32" in label:
                v /= 2
            vals.append(v)
        wres[label] = dict(zip(names, vals, strict=True))
        print(f"{label:<72}" + "".join(f"{v:24.0f}" for v in vals))

    stim_t = None
    if not args.no_stim_timing:
        stim_t = time_stimulus(args.work)
        print(f"\none train-mode trial (no RLS, min of 5, alternating): stimulus precomputed "
              f"{stim_t['precomputed']:.3f} s, online {stim_t['online']:.3f} s")  # fmt: skip

    out = dict(
        scenarios=results, formula_mismatch=mismatch, formula_not_live=missing, waste=wres,
        trial_s_stimulus=stim_t, minimum_state_bytes=MIN_STATE, rss=rss,
        notes="default measured from live objects (formulas checked equal); 1M computed from "
              "the same formulas; per-rank O(N) arrays make per-neuron bytes grow with R",
    )  # fmt: skip
    path = HERE / "results" / "memory_per_neuron.json"
    path.parent.mkdir(exist_ok=True)
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    save_json(path, out, __file__)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
