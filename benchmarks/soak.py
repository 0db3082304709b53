"""Soak: train a tiny model for many loops in one process; watch RSS and open files.

    python benchmarks/soak.py [--nloops 300] [--mode run|calls] [--out DIR]

``--mode run`` (default) is one ``tsn_mpi.train(nloops=N)`` call, sampled after every loop
(the train phase formats one table row per loop; the sampler wraps that function).  ``--mode
calls`` makes N calls of ``tsn_mpi.train(nloops=1)``: every loop reopens network.h5, reads and
writes a checkpoint, so leaks in the I/O and set-up paths show as well.

Samples per loop: RSS (VmRSS of /proc/self/status) and open file descriptors
(/proc/self/fd).  Prints first/last/max and the least-squares slope of RSS over the second
half, writes benchmarks/results/soak[-calls].json, and exits 1 if RSS grows by more than 5 %
over the second half (by that fit) or the number of open descriptors grows.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import tsn_mpi
import tsn_mpi.phases.train as train_phase
from tsn_mpi.comm import SerialComm

HERE = Path(__file__).resolve().parent
MAX_RSS_GROWTH = 0.05  # fraction over the second half

# the tests' tiny model: 256 neurons, 20 RLS updates per loop
TINY = (HERE.parent / "configs" / "tiny.toml").read_text()


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Sampler:
    """Collects (loop, wall s, RSS kB, open fds) rows; prints a line every ``every`` loops."""

    def __init__(self, every: int) -> None:
        self.rows: list[tuple[int, float, int, int]] = []
        self.every = every
        self.t0 = time.perf_counter()

    def sample(self) -> None:
        row = (len(self.rows) + 1, time.perf_counter() - self.t0, rss_kb(), open_fds())
        self.rows.append(row)
        if row[0] % self.every == 0:
            print(
                f"loop {row[0]:5d}  {row[1]:7.1f} s  RSS {row[2] / 1024:7.1f} MiB  fds {row[3]}",
                flush=True,
            )


def summarise(rows: list[tuple[int, float, int, int]]) -> dict:
    a = np.asarray(rows, dtype=np.float64)
    loop, rss, fds = a[:, 0], a[:, 2], a[:, 3].astype(np.int64)
    half = len(rows) // 2
    x, y = loop[half:], rss[half:]
    slope, icpt = np.polyfit(x, y, 1) if x.size >= 2 else (0.0, float(y[0]))
    start, end = slope * x[0] + icpt, slope * x[-1] + icpt
    growth = (end - start) / start
    return {
        "loops": len(rows),
        "rss_kb": {
            "first": int(rss[0]),
            "last": int(rss[-1]),
            "max": int(rss.max()),
            "at_half": int(rss[half]),
        },
        "fds": {"first": int(fds[0]), "last": int(fds[-1]), "max": int(fds.max())},
        "rss_slope_kb_per_loop_second_half": float(slope),
        "rss_growth_second_half": float(growth),
        "s_per_loop_median": float(np.median(np.diff(a[:, 1]))) if len(rows) > 1 else a[0, 1],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nloops", type=int, default=300)
    ap.add_argument("--mode", choices=("run", "calls"), default="run")
    ap.add_argument("--out", type=Path, default=Path("/tmp/tsn-soak"))
    ap.add_argument("--every", type=int, default=25, help="print a line every N loops")
    args = ap.parse_args()
    if args.nloops < 4:
        ap.error("--nloops must be at least 4")
    run, comm = args.out, SerialComm()
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    (run / "config.toml").write_text(TINY)
    tsn_mpi.init(run, comm=comm, quiet=True)

    sampler = Sampler(args.every)
    if args.mode == "run":
        row = train_phase.format_row

        def format_row(*a, **k):  # called once per loop, after the loop's I/O
            sampler.sample()
            return row(*a, **k)

        train_phase.format_row = format_row
        try:
            tsn_mpi.train(run, nloops=args.nloops, comm=comm, quiet=True)
        finally:
            train_phase.format_row = row
    else:
        for _ in range(args.nloops):
            tsn_mpi.train(run, nloops=1, comm=comm, quiet=True)
            sampler.sample()

    s = summarise(sampler.rows)
    rss, fds = s["rss_kb"], s["fds"]
    fail_rss = s["rss_growth_second_half"] > MAX_RSS_GROWTH
    fail_fds = fds["last"] > fds["first"]
    print()
    print(f"{'':26}{'first':>10}{'last':>10}{'max':>10}")
    print(
        f"{'RSS (MiB)':26}{rss['first'] / 1024:10.1f}{rss['last'] / 1024:10.1f}"
        f"{rss['max'] / 1024:10.1f}"
    )
    print(f"{'open fds':26}{fds['first']:10d}{fds['last']:10d}{fds['max']:10d}")
    print(f"{'RSS slope, 2nd half':26}{s['rss_slope_kb_per_loop_second_half']:10.2f} kB/loop")
    print(
        f"{'RSS growth, 2nd half':26}{100 * s['rss_growth_second_half']:10.2f} %  "
        f"(limit {100 * MAX_RSS_GROWTH:.0f} %)"
    )
    print(f"{'s/loop (median)':26}{s['s_per_loop_median']:10.3f}")
    result = {
        "mode": args.mode,
        "nloops": args.nloops,
        "config": TINY,
        "machine": f"{platform.node()} {platform.processor()}",
        "python": sys.version.split()[0],
        "tsn_mpi": tsn_mpi.__version__,
        "summary": s,
        "ok": not (fail_rss or fail_fds),
        "samples": {
            k: [r[i] for r in sampler.rows]
            for i, k in enumerate(("loop", "wall_s", "rss_kb", "fds"))
        },
    }
    name = "soak.json" if args.mode == "run" else f"soak-{args.mode}.json"
    sys.path.insert(0, str(HERE))
    from _provenance import save_json

    out = save_json(HERE / "results" / name, result, __file__)
    print(f"wrote {out}")
    if fail_rss:
        print(f"FAIL: RSS grew {100 * s['rss_growth_second_half']:.1f} % over the second half")
    if fail_fds:
        print(f"FAIL: open file descriptors grew from {fds['first']} to {fds['last']}")
    return 1 if (fail_rss or fail_fds) else 0


if __name__ == "__main__":
    sys.exit(main())
