"""The cost model of docs/scaling.md (``tsn_mpi.plan``): checked against the measurements in
benchmarks/results, then projected to 10M and 100M neurons on CPU clusters and GPUs.

    python benchmarks/cost_model.py

1. Validation: for every measured run found in benchmarks/results (default model strong
   scaling, weak scaling, the 1M model), the model's s/loop (checkpoint excluded) at the
   measured firing rate against the measured s/loop, checkpoint I/O excluded (scaling.py's
   means of loops 2..; the median of loops 2.. where the whole curve is stored).
2. Projection: the paper's model (K = 512, 45 + 45 plastic inputs, packed P) at N = 10M and
   100M on 64-4096 CPU ranks (64-core nodes, 256 GB, ~300 GB/s memory, 100 Gb/s network; one
   rank per core "64x1", or 8 ranks of 8 threads "8x8") and on 8-512 GPUs (one 80 GB GPU per
   rank, 4 per node), with float32 and float16 P.
Saves benchmarks/results/cost_model.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

RES = HERE / "results"
GB = 1e9

_CPU_CONSTANTS = dict(RLS_VALUES_NODE=40e9, RLS_VALUES_THREAD=1.5e9, NET_GBS=12.0,
                      LAT_NET_DOUBLING=2.0e-6, CKPT_GBS=5.0)  # fmt: skip
# 64-core nodes: one rank per core, or 8 ranks of 8 threads (fewer copies of the O(N) arrays)
CLUSTER_CPU = dict(cores_per_node=64, ranks_per_node=64, node_mem_bytes=256 * 10**9,
                   constants=_CPU_CONSTANTS)  # fmt: skip
CLUSTER_CPU_THREADS = dict(CLUSTER_CPU, ranks_per_node=8)
CLUSTER_GPU = dict(cores_per_node=64, ranks_per_node=4, node_mem_bytes=512 * 10**9, gpu=True,
                   gpu_mem_bytes=80 * 10**9,
                   constants=dict(NET_GBS=25.0, LAT_NET_DOUBLING=3.0e-6))  # fmt: skip


def _paper(n: int, precision: str = "float32", loop_threads: str | int = "auto"):
    from tsn_mpi.config import from_dict

    return from_dict({"network": {"n_cells": n, "p_ee": 512 / (n // 2)},
                      "plastic": {"l_exc": 45, "l_inh": 45},
                      "learning": {"p_precision": precision},
                      "run": {"loop_threads": loop_threads}}, "cost model")  # fmt: skip


def _default(n: int = 4096, k: int | None = None, loop_threads: str | int = "auto"):
    from tsn_mpi.config import from_dict

    net = {"n_cells": n}
    if k is not None:
        net["p_ee"] = k / (n // 2)
    return from_dict({"network": net, "run": {"loop_threads": loop_threads}}, "cost model")


def _measured_mean(curve: dict, key: str = "elapsed_s") -> float:
    """Median s/loop of loops 2.. without checkpoint I/O (robust to a loop disturbed by another
    job on the machine)."""
    el = np.asarray(curve[key], float)
    io = np.asarray(curve.get("io_s", np.zeros_like(el)), float)
    sl = slice(1, None) if el.size > 1 else slice(None)
    return float(np.median((el - io)[sl]))


def validation() -> list[dict]:
    from tsn_mpi.plan import plan

    rows = []
    p = RES / "scaling.json"
    if p.exists():
        sc = json.loads(p.read_text())
        for ranks, r in sc["rows"].items():
            rate = r.get("firing_rate_hz", 4.75)  # init rates 3.4 (E) and 6.1 Hz (I)
            # these runs predate the threaded time loop (issue #20): one loop thread
            pred = plan(_default(loop_threads=1), int(ranks), rate_hz=rate)
            rows.append(dict(label=f"default, R={ranks} (strong)", ranks=int(ranks),
                             measured_s=r["elapsed_s"] - r["io_s"], source=p.name,
                             model_s=pred["seconds_per_loop"], model=pred["time"]))  # fmt: skip
    p = RES / "weak_scaling.json"
    if p.exists():
        ws = json.loads(p.read_text())
        for r in ws["rows"]:
            pred = plan(
                _default(r["n_cells"], r["k"], loop_threads=1), r["ranks"], rate_hz=r["rate_hz"]
            )
            rows.append(dict(label=f"weak, N={r['n_cells']}, R={r['ranks']}", ranks=r["ranks"],
                             measured_s=_measured_mean(r["curve"]), source=p.name,
                             model_s=pred["seconds_per_loop"], model=pred["time"]))  # fmt: skip
    for p in sorted(RES.glob("paper_1m_r*_*.json")):
        pm = json.loads(p.read_text())
        c = pm["train"]["curve"]
        rate = float(np.mean(c["firing_rate_hz"]))
        pred = plan(_paper(1_000_000, pm["precision"], loop_threads=1), pm["ranks"], rate_hz=rate)
        rows.append(dict(label=f"paper 1M, {pm['precision']} P, R={pm['ranks']}",
                         ranks=pm["ranks"], measured_s=_measured_mean(c), source=p.name,
                         model_s=pred["seconds_per_loop"], model=pred["time"]))  # fmt: skip
    return rows


def projections() -> list[dict]:
    from tsn_mpi.plan import plan

    out = []
    for n in (10_000_000, 100_000_000):
        for prec in ("float32", "float16"):
            cfg = _paper(n, prec)
            for kind, layout in (("CPU 64x1", CLUSTER_CPU), ("CPU 8x8", CLUSTER_CPU_THREADS)):
                for r in (64, 256, 1024, 4096):
                    p = plan(cfg, r, **layout)
                    out.append(dict(kind=kind, n_cells=n, precision=prec, ranks=r,
                                    per_rank_gb=p["peak_bytes"] / GB, fits=p["fits"],
                                    s_per_loop=p["seconds_per_loop"], time=p["time"],
                                    checkpoint_s=p["checkpoint_s"]))  # fmt: skip
            for r in (8, 32, 128, 512):
                p = plan(cfg, r, **CLUSTER_GPU)
                out.append(dict(kind="GPUs", n_cells=n, precision=prec, ranks=r,
                                per_rank_gb=p["device_bytes"] / GB,
                                fits=p["fits"], s_per_loop=p["seconds_per_loop"],
                                time=p["time"], checkpoint_s=p["checkpoint_s"]))  # fmt: skip
    return out


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    val = validation()
    print("model vs the measured runs in benchmarks/results (s/loop, checkpoint excluded)\n")
    print(f"{'run':<36}{'measured':>10}{'model':>9}{'error':>8}")
    for v in val:
        v["error"] = v["model_s"] / v["measured_s"] - 1
        print(f"{v['label']:<36}{v['measured_s']:10.2f}{v['model_s']:9.2f}{v['error']:+8.0%}")
    proj = projections()
    print("\nprojected s/loop, paper model (K = 512, 90 plastic inputs, packed P)\n")
    print(f"{'N':>11} {'P':>8} {'on':>10}{'R':>6}{'mem/rank GB':>13}{'fits':>6}{'s/loop':>9}"
          f"{'loop':>8}{'lookups':>9}{'RLS':>8}{'allgather':>10}")  # fmt: skip
    for p in proj:
        t = p["time"]
        loop = t["neuron updates"] + t["synaptic events"]
        print(f"{p['n_cells']:>11,} {p['precision']:>8} {p['kind']:>10}{p['ranks']:>6}"
              f"{p['per_rank_gb']:13.2f}{'yes' if p['fits'] else 'NO':>6}{p['s_per_loop']:9.2f}"
              f"{loop:8.2f}{t['spike lookups (all N)']:9.2f}{t['RLS']:8.2f}"
              f"{t['per-step overhead and allgather']:10.2f}")  # fmt: skip
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    # the measurements come from those files' hosts, not this one: keep their provenance
    inputs = {v["source"]: json.loads((RES / v["source"]).read_text()).get("provenance")
              for v in val}  # fmt: skip
    save_json(RES / "cost_model.json", dict(validation=val, projections=proj,
                                            cluster_cpu=CLUSTER_CPU, cluster_gpu=CLUSTER_GPU,
                                            inputs=inputs), __file__)  # fmt: skip
    print("wrote benchmarks/results/cost_model.json")


if __name__ == "__main__":
    main()
