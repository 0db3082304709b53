"""Effect of P's storage precision on learning: the default model trained for 100 loops with
float32 and float16 P (same seed), mean correlation over loops 98-100 and s/loop of each.

    python benchmarks/p_precision_curve.py [--loops 100] [--precisions float32 float16]

float16 halves P's memory (the paper's 1M model: 16.4 -> 8.2 GB) and its RLS bytes; the
arithmetic stays float32.  Saves benchmarks/results/p_precision_curve.json.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=100)
    ap.add_argument("--precisions", nargs="+", default=["float32", "float16"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/tsn-precision"))
    args = ap.parse_args()
    import tsn_mpi

    shutil.rmtree(args.work, ignore_errors=True)
    res = {}
    for prec in args.precisions:
        run = args.work / prec
        tsn_mpi.new(run)
        cfg = (run / "config.toml").read_text()
        (run / "config.toml").write_text(
            re.sub(r'p_precision = "\w+"', f'p_precision = "{prec}"', cfg))
        tsn_mpi.init(run, quiet=True)  # same network for every precision (same seed)
        t0 = time.perf_counter()
        curve = tsn_mpi.train(run, nloops=args.loops, quiet=True)
        wall = time.perf_counter() - t0
        cor = np.asarray(curve["correlation"], dtype=float)
        res[prec] = dict(
            mean_cor_last3=float(np.nanmean(cor[-3:])), cor_last3=cor[-3:].tolist(),
            cor=cor.tolist(), median_s_per_loop=float(np.median(curve["elapsed_s"][1:])),
            wall_s=wall, rate_hz_last=float(curve["firing_rate_hz"][-1]))  # fmt: skip
        print(f"{prec:>8}: mean correlation loops {args.loops - 2}-{args.loops} "
              f"{res[prec]['mean_cor_last3']:.3f} ({', '.join(f'{c:.3f}' for c in cor[-3:])}), "
              f"{res[prec]['median_s_per_loop']:.3f} s/loop", flush=True)
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    out = save_json(HERE / "results" / "p_precision_curve.json",
                    dict(loops=args.loops, results=res), __file__)
    print(f"wrote {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
