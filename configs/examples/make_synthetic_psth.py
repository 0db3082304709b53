"""Write a small synthetic PSTH file (Hz) for the example "targets from a spike-rate file".

    python configs/examples/make_synthetic_psth.py OUT.h5 [--n-cells N] [--n-time T]
                                                   [--ntasks K] [--seed S]

The file holds one dataset ``rates`` of shape (n_time, n_cells, ntasks), float64, in Hz: for
every neuron and task a smooth positive rate between about 2 and 30 Hz built from a baseline, a
linear ramp, a Gaussian bump and a sinusoid of random phase.  Use it with

    [targets]
    plugin = "tsn_mpi.network.target_files:from_rate_file"
    file = "OUT.h5"
    dataset = "rates"

n_time must equal train_duration/learn_every (100 with the defaults) and n_cells the model's
network.n_cells.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np


def synthetic_rates(n_time: int, n_cells: int, ntasks: int, seed: int) -> np.ndarray:
    """Smooth positive rates (Hz), shape (n_time, n_cells, ntasks), within [2, 30]."""
    g = np.random.default_rng(seed)
    shape = (1, n_cells, ntasks)
    s = (np.arange(n_time, dtype=np.float64) / max(n_time - 1, 1))[:, None, None]  # 0..1
    base = g.uniform(4.0, 10.0, shape)
    ramp = g.uniform(-4.0, 4.0, shape) * s
    centre = g.uniform(0.15, 0.85, shape)
    width = g.uniform(0.05, 0.2, shape)
    bump = g.uniform(0.0, 12.0, shape) * np.exp(-0.5 * ((s - centre) / width) ** 2)
    cycles = g.integers(1, 4, shape)
    phase = g.uniform(0.0, 2.0 * np.pi, shape)
    wave = g.uniform(0.0, 4.0, shape) * np.sin(2.0 * np.pi * cycles * s + phase)
    return np.clip(base + ramp + bump + wave, 2.0, 30.0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output .h5 file")
    p.add_argument("--n-cells", type=int, default=4096, help="neurons (columns), default 4096")
    p.add_argument("--n-time", type=int, default=100, help="target times (rows), default 100")
    p.add_argument("--ntasks", type=int, default=1, help="tasks (last axis), default 1")
    p.add_argument("--seed", type=int, default=1, help="random seed, default 1")
    a = p.parse_args(argv)
    for name in ("n_cells", "n_time", "ntasks"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    rates = synthetic_rates(a.n_time, a.n_cells, a.ntasks, a.seed)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(a.out, "w") as fh:
        d = fh.create_dataset("rates", data=rates)
        d.attrs["units"] = "Hz"
        d.attrs["axes"] = "time (target rows), neuron, task"
    print(f"wrote {a.out}: rates {rates.shape} Hz, range {rates.min():.2f}-{rates.max():.2f}")


if __name__ == "__main__":
    main()
