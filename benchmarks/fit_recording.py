"""Fit a synthetic recording end to end: NWB (written by pynwb) -> new --data -> init -> train
-> test, with the held-out PSTH r, rates and time per loop; or only time a large fit.

The recording comes from :mod:`tsn_mpi.data.synthetic` (inhomogeneous Poisson units, not a
tsn-mpi network) and is written with pynwb.  Each phase runs as its own process (``mpiexec -n R``
for R > 1) that reports its wall time and every rank's peak RSS.  Training runs in stages; after
each stage the test phase scores the fit on the held-out trials (``fit-metrics.json``).

    python benchmarks/fit_recording.py --units 400 --stages 100,100,100      # the issue's case
    python benchmarks/fit_recording.py --units 8000 --stages 3 --no-test --ranks 2   # s/loop

Output: ``benchmarks/results/fit_recording_<units>u_r<R>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def mpiexec() -> str:
    local = Path(sys.executable).parent / "mpiexec"
    return os.environ.get("TSN_MPIEXEC") or (str(local) if local.exists() else "mpiexec")


def phase_main(argv: list[str]) -> None:
    """Run inside the launched process(es): ``--phase NAME RANKS RUN_DIR [ARG]``."""
    import numpy as np

    import tsn_mpi
    from tsn_mpi.comm import make_comm

    name, ranks, run_dir = argv[0], int(argv[1]), argv[2]
    comm = make_comm()
    if comm.size != ranks:
        raise SystemExit(f"expected {ranks} ranks, got {comm.size}")
    t0 = time.perf_counter()
    out: dict = {}
    if name == "init":
        tsn_mpi.init(run_dir, comm=comm)
    elif name == "train":
        curve = tsn_mpi.train(run_dir, nloops=int(argv[3]), correlation_interval=int(argv[4]),
                              comm=comm)  # fmt: skip
        out["curve"] = {k: np.asarray(v).tolist() for k, v in curve.items()}
    else:
        tsn_mpi.test(run_dir, ntrials=int(argv[3]), comm=comm, no_plot=comm.size > 1)
    out["wall_s"] = time.perf_counter() - t0
    out["rss_bytes"] = comm.allgather_obj(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    if comm.rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


def run_phase(ranks: int, threads: int, *args: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", args[0], str(ranks),
           *args[1:]]  # fmt: skip
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{args[0]} failed with exit {proc.returncode}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    out["log_tail"] = "\n".join(x for x in proc.stdout.splitlines()[-12:]
                                if not x.startswith("RESULT"))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=400)
    ap.add_argument("--conditions", type=int, default=2)
    ap.add_argument("--trials", type=int, default=16, help="trials per condition")
    ap.add_argument("--trial-s", type=float, default=2.0)
    ap.add_argument("--rate", type=float, default=13.0)
    ap.add_argument("--modulation", type=float, default=1.2)
    ap.add_argument("--stages", default="100,100,100", help="loops per training stage")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="numba threads per rank (0: cores/R)")
    ap.add_argument("--test-trials", type=int, default=0, help="0: the default of the fit")
    ap.add_argument("--no-test", action="store_true", help="time training only")
    ap.add_argument(
        "--new-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [data] option of new --data, e.g. smooth_width=50",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change a key of the written config before init (TOML value)",
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-fit-recording"))
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    import numpy as np

    import tsn_mpi
    from benchmarks._provenance import save_json
    from tsn_mpi.data.synthetic import generate, write_nwb

    threads = a.threads or max(1, (os.cpu_count() or 1) // a.ranks)
    work = a.work / f"u{a.units}_r{a.ranks}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    res: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
                 "load_average_start": os.getloadavg()}  # fmt: skip
    t0 = time.perf_counter()
    rec = generate(a.units, a.conditions, a.trials, a.trial_s, a.rate, a.modulation,
                   keep_rates=False)  # fmt: skip
    res["generate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    nwb = write_nwb(rec, work / "recording.nwb")
    res["write_nwb_s"] = time.perf_counter() - t0
    res["nwb_bytes"] = nwb.stat().st_size
    res["n_spikes"] = int(rec.times.size)
    del rec
    opts = {}
    for kv in a.new_option:
        k, v = kv.split("=", 1)
        opts[k] = json.loads(v) if v[:1].isdigit() or v[:1] in "-[" else v
    run = work / "run"
    t0 = time.perf_counter()
    tsn_mpi.new(run, data=nwb, data_options=opts)
    res["new_data_s"] = time.perf_counter() - t0
    res["new_data_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if a.set:
        _apply_sets(run / "config.toml", a.set)
    res["config"] = (run / "config.toml").read_text()
    print(f"prepared {a.units} units in {res['new_data_s']:.1f} s", flush=True)
    res["init"] = run_phase(a.ranks, threads, "init", str(run))
    print(f"init {res['init']['wall_s']:.1f} s", flush=True)
    res["stages"] = []
    done = 0
    for n in (int(x) for x in a.stages.split(",")):
        st = run_phase(a.ranks, threads, "train", str(run), str(n), str(max(1, min(10, n))))
        done += n
        el = np.asarray(st["curve"]["elapsed_s"][-n:])
        stage = {"loops": done, "train_wall_s": st["wall_s"], "train_rss_bytes": st["rss_bytes"],
                 "s_per_loop_median": float(np.median(el[1:] if el.size > 1 else el)),
                 "correlation_last": _last_cor(st["curve"])}  # fmt: skip
        if not a.no_test:
            nt = a.test_trials or _default_trials(run)
            te = run_phase(a.ranks, threads, "test", str(run), str(nt))
            stage.update(test_wall_s=te["wall_s"], test_rss_bytes=te["rss_bytes"],
                         test_trials=nt,
                         metrics=json.loads((run / "fit-metrics.json").read_text()),
                         summary=te["log_tail"])  # fmt: skip
            print(te["log_tail"], flush=True)
        res["stages"].append(stage)
        print(
            f"loops {done}: {stage['s_per_loop_median']:.3f} s/loop, correlation "
            f"{stage['correlation_last']}",
            flush=True,
        )
    res["curve"] = st["curve"]
    res["load_average_end"] = os.getloadavg()
    out = a.out or HERE / "results" / f"fit_recording_{a.units}u_r{a.ranks}.json"
    save_json(out, res, __file__)
    print(f"wrote {out}")


def _last_cor(curve: dict) -> float | None:
    import numpy as np

    c = np.asarray(curve["correlation"], dtype=float)
    c = c[np.isfinite(c)]
    return float(c[-1]) if c.size else None


def _default_trials(run: Path) -> int:
    """Twice the training trials per condition (at least 10): a model PSTH at least as clean
    as the training PSTH behind the ceiling."""
    import h5py

    with h5py.File(run / "data-fit.h5", "r") as f:
        return max(10, 2 * int(f["n_train"][()].max()))


def _apply_sets(cfg_path: Path, sets: list[str]) -> None:
    """Replace ``key = value`` lines of config.toml (section by section)."""
    lines = cfg_path.read_text().splitlines()
    for kv in sets:
        key, value = kv.split("=", 1)
        section, name = key.strip().split(".", 1)
        current, hits = "", 0
        for i, line in enumerate(lines):
            s = line.strip()
            if s.startswith("[") and s.endswith("]"):
                current = s[1:-1]
            elif current == section and s.split("=", 1)[0].strip() == name and "=" in s:
                lines[i] = f"{name} = {value.strip()}"
                hits += 1
        if hits != 1:
            raise SystemExit(f"--set {kv}: no key {key} in {cfg_path}")
    cfg_path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        phase_main(sys.argv[2:])
    else:
        main()
