"""tsn-mpi plan's predicted peak memory per rank against the measured peak RSS of ``train``.

    python benchmarks/plan_validation.py [--case N:R ...] [--loops 2]

For each case N:R it makes a run of the default config with N neurons (p_ee, and with it K,
as in the default config), runs ``init`` and then ``train --nloops L`` through
``_phase_ranks.py``: under ``mpiexec -n R`` for R > 1, as one plain process for R = 1 (what
plan's one-process interpreter overhead assumes), with cores // R numba threads per rank.
Each rank reports its peak RSS (``ru_maxrss``); the largest is compared with
``tsn_mpi.plan.plan(cfg, R)``'s peak per rank (the rank owning the most neurons) at init's
firing rate, the same prediction ``tsn-mpi plan RUN --ranks R`` prints.  The last loop writes
the checkpoint (plan's largest transient for the default model).  Also records plan's
predicted s/loop next to the measured one (loops 2.. without checkpoint I/O): timings depend
on the host (see the provenance block) and on its load.

The default cases (256 neurons, whose RSS is almost all interpreter, numba, h5py and MPI, what
plan's OVERHEAD_SERIAL / OVERHEAD_MPI stand for; the default model on 1 and 2 ranks) take about
a minute on a 2-core, 24 GiB machine.  Larger ones (e.g. 32768:2, ~4 GB per rank and minutes
of init) are up to the caller; ``tsn-mpi plan`` says whether they fit first.
Saves benchmarks/results/plan_validation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

DEFAULT_CASES = ("256:1", "256:2", "4096:1", "4096:2")


def mpiexec() -> str:
    local = Path(sys.executable).parent / "mpiexec"
    return os.environ.get("TSN_MPIEXEC") or (str(local) if local.exists() else "mpiexec")


def phase_cmd(ranks: int, phase: str, run_dir: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, str(HERE / "_phase_ranks.py"), str(ranks), phase, str(run_dir),
           *extra]  # fmt: skip
    return [mpiexec(), "-n", str(ranks), *cmd] if ranks > 1 else cmd


def _short(arg: str) -> str:
    """An argument as it reads in the JSON: repository paths relative, executables by name."""
    p = Path(arg)
    if not p.is_absolute():
        return arg
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return p.name if p.parent == Path(sys.executable).parent else arg


def run_phase(ranks: int, phase: str, run_dir: Path, *extra: str) -> dict:
    """One phase on ``ranks`` ranks; returns _phase_ranks.py's RESULT (rss per rank, wall_s)."""
    cmd = phase_cmd(ranks, phase, run_dir, *extra)
    env = dict(os.environ, NUMBA_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // ranks)))
    if ranks == 1:
        env["TSN_MPI_COMM"] = "serial"
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{phase} ({' '.join(cmd)}) failed with exit {proc.returncode}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    out["launcher_wall_s"] = time.perf_counter() - t0
    out["command"] = " ".join(_short(c) for c in cmd)
    return out


def one_case(n_cells: int, ranks: int, loops: int, work: Path) -> dict:
    import tsn_mpi
    from tsn_mpi.plan import plan

    run = work / f"n{n_cells}-r{ranks}"
    shutil.rmtree(run, ignore_errors=True)
    tsn_mpi.new(run)
    cfg_path = run / "config.toml"
    text, count = re.subn(r"(?m)^n_cells = \d+", f"n_cells = {n_cells}", cfg_path.read_text())
    if count != 1:
        raise SystemExit(f"{cfg_path}: expected one 'n_cells = ...' line, found {count}")
    cfg_path.write_text(text)
    cfg = tsn_mpi.load_config(cfg_path)
    assert cfg.network.n_cells == n_cells
    print(f"== N = {n_cells}, R = {ranks}: init", flush=True)
    init = run_phase(ranks, "init", run)
    rate = 0.5 * (init["init"]["rate_e"] + init["init"]["rate_i"])
    pl = plan(cfg, ranks, rate_hz=rate)
    print(f"   train --nloops {loops}", flush=True)
    train = run_phase(ranks, "train", run, str(loops))
    curve = train["curve"]
    el = np.asarray(curve["elapsed_s"], float) - np.asarray(curve["io_s"], float)
    measured = max(train["rss"])
    shutil.rmtree(run, ignore_errors=True)
    return {
        "case": f"N={n_cells}, R={ranks}",
        "n_cells": n_cells,
        "ranks": ranks,
        "loops": loops,
        "how": [init["command"], train["command"]],
        "predicted_peak_bytes_per_rank": pl["peak_bytes"],
        "measured_peak_rss_bytes_per_rank": measured,
        "measured_peak_rss_bytes_every_rank": train["rss"],
        "error_pct": round(100.0 * (pl["peak_bytes"] - measured) / measured, 2),
        "predicted_components": pl["components"],
        "predicted_transients": pl["transients"],
        "predicted_peak_transient": pl["peak_transient"],
        "fits_here_predicted": pl["fits"],
        "init_rate_hz": rate,
        "init_wall_s": init["wall_s"],
        "init_peak_rss_bytes_every_rank": init["rss"],
        "train_wall_s": train["wall_s"],
        "predicted_s_per_loop": pl["seconds_per_loop"],
        "measured_s_per_loop_without_io": el.tolist(),
        "checkpoint_write_s": float(curve["io_s"][-1]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", metavar="N:R",
                    help=f"neurons:ranks, repeatable (default: {' '.join(DEFAULT_CASES)})")
    ap.add_argument("--loops", type=int, default=2, help="train loops (the last checkpoints)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-plan-validation"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "plan_validation.json")
    args = ap.parse_args()
    from _provenance import save_json

    load0 = os.getloadavg()
    cases = []
    for spec in args.case or DEFAULT_CASES:
        n, r = (int(x) for x in spec.split(":"))
        cases.append(one_case(n, r, args.loops, args.work))
    print(f"\n{'case':<16}{'predicted':>12}{'measured':>12}{'error':>8}  {'s/loop pred':>11}"
          f"{'measured':>10}")  # fmt: skip
    for c in cases:
        later = c["measured_s_per_loop_without_io"][1:] or c["measured_s_per_loop_without_io"]
        print(f"{c['case']:<16}{c['predicted_peak_bytes_per_rank'] / 1e6:10.0f}MB"
              f"{c['measured_peak_rss_bytes_per_rank'] / 1e6:10.0f}MB{c['error_pct']:+7.1f}%"
              f"  {c['predicted_s_per_loop']:11.3f}{float(np.median(later)):10.3f}")  # fmt: skip
    data = {
        "what": "tsn_mpi.plan peak memory per rank (train) against the largest measured peak "
                "RSS of the ranks (ru_maxrss x 1024); error = (predicted - measured) / measured",
        "note": "timings depend on the host and its load (provenance); the first loop loads "
                "or compiles the kernels",
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
        "cases": cases,
    }
    out = save_json(args.out, data, __file__)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
