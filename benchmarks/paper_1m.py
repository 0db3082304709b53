"""The paper's 1M-neuron model (configs/paper-1m.toml) on CPU ranks of this machine.

``mpiexec -n R`` runs ``init`` and then ``train`` for a few loops; prints and saves (JSON under
benchmarks/results/) the peak RSS of every rank in each phase, init time, s/loop with its split
(time loop = neuron update + delivery + exchange; RLS; chunk-boundary sync; I/O), and the
checkpoint's size and write time.  Needs ~22 GB of memory with float16 P on 2 ranks (float32 P:
~26 GB, see ``tsn-mpi plan configs/paper-1m.toml --ranks 2``) and ~25 GB of disk per run dir.

    python benchmarks/paper_1m.py --ranks 2 --loops 2 --precision float16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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


def run_phase(ranks: int, phase: str, run_dir: Path, *extra: str) -> dict:
    """``mpiexec -n ranks`` one phase with cores/ranks numba threads per rank (no more threads
    than cores: idle OpenMP threads spinning would steal the other ranks' time loop)."""
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, str(HERE / "_phase_ranks.py"),
           str(ranks), phase, str(run_dir), *extra]  # fmt: skip
    env = dict(os.environ, NUMBA_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // ranks)))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    sys.stdout.write(proc.stdout.replace("RESULT ", "  result: ")[:4000])
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{phase} failed with exit {proc.returncode}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    out["launcher_wall_s"] = wall
    out["log"] = proc.stdout[-6000:]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--loops", type=int, default=2)
    ap.add_argument("--precision", default="float16", choices=("float16", "float32"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-paper-1m"))
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "paper-1m.toml")
    ap.add_argument("--skip-init", action="store_true", help="reuse an initialised --work")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    args = ap.parse_args()
    import tsn_mpi
    from tsn_mpi.plan import format_plan, plan

    text = args.config.read_text()
    text = re.sub(r'p_precision = "\w+"', f'p_precision = "{args.precision}"', text)
    res: dict = dict(config=str(args.config), ranks=args.ranks,
                     precision=args.precision, machine=platform.node(),
                     cpus=os.cpu_count())  # fmt: skip
    out = args.out or HERE / "results" / f"paper_1m_r{args.ranks}_{args.precision}.json"
    if args.skip_init and out.exists():  # keep the init figures of the run that made --work
        old = json.loads(out.read_text())
        res.update({k: old[k] for k in ("plan", "init") if k in old})
        res["init_from_earlier_run"] = True
        if "provenance" in old:  # kept by save_json as provenance["earlier"]
            res["provenance"] = old["provenance"]
    if not args.skip_init:
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        (args.work / "config.toml").write_text(text)
        cfg = tsn_mpi.load_config(args.work / "config.toml")
        pl = plan(cfg, args.ranks)
        print(format_plan(pl), flush=True)
        res["plan"] = {k: pl[k] for k in ("peak_bytes", "node_bytes", "seconds_per_loop",
                                          "components", "time", "checkpoint_s")}  # fmt: skip
        print(f"\n== init on {args.ranks} ranks", flush=True)
        res["init"] = run_phase(args.ranks, "init", args.work)
        ck0 = args.work / "checkpoints" / "ckpt-0.h5"
        res["init"]["network_h5_bytes"] = (args.work / "network.h5").stat().st_size
        res["init"]["ckpt0_bytes"] = ck0.stat().st_size
    print(f"\n== train {args.loops} loops on {args.ranks} ranks", flush=True)
    res["train"] = run_phase(args.ranks, "train", args.work, str(args.loops))
    curve = res["train"]["curve"]
    last = max(args.work.glob("checkpoints/ckpt-*.h5"), key=lambda p: p.stat().st_mtime)
    res["train"]["checkpoint"] = dict(name=last.name, bytes=last.stat().st_size,
                                      write_s=curve["io_s"][-1])  # fmt: skip
    print("\nloop   s/loop   time loop  (exchange  delivery)   RLS    sync    I/O    rate Hz")
    for i, loop in enumerate(curve["loop"]):
        print(f"{loop:>4} {curve['elapsed_s'][i]:8.1f} {curve['sim_s'][i]:11.1f} "
              f"{curve['exchange_s'][i]:10.1f} {curve['deliver_s'][i]:9.1f} "
              f"{curve['rls_s'][i]:7.1f} {curve['sync_s'][i]:7.1f} {curve['io_s'][i]:6.1f} "
              f"{curve['firing_rate_hz'][i]:9.2f}")  # fmt: skip
    for ph in ("init", "train"):
        if ph in res:
            print(f"peak RSS per rank, {ph}: "
                  + ", ".join(f"{r / 1e9:.2f} GB" for r in res[ph]["rss"]))
    ck = res["train"]["checkpoint"]
    print(f"checkpoint {ck['name']}: {ck['bytes'] / 1e9:.2f} GB, written in {ck['write_s']:.1f} s"
          f" ({ck['bytes'] / 1e9 / max(ck['write_s'], 1e-9):.2f} GB/s)")
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    save_json(out, res, __file__)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
