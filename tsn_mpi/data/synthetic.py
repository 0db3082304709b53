"""A synthetic recording for trying the data path: inhomogeneous Poisson units, not a tsn-mpi
network.

Unit u fires in condition c at ``rate_uc(t) = base_u * exp(a*z_uc(t) - a**2/2)`` (Hz): ``z`` is a
unit-variance mix of ``n_latents`` smooth latent time courses shared by all units (random
loadings; half of each latent is common to all conditions) and a private smooth component;
base rates are lognormal with the requested mean.  Trials follow each other with random
inter-trial intervals in which units fire at their base rate.  Spike times come from the
time-rescaling theorem (a Poisson count, then inverse-CDF times), so a 66,000-unit recording
is made in minutes.

Writers: :func:`write_nwb` (pynwb, the ``data`` extra: Units table, trials table with a
``condition`` column), :func:`write_sonata` (``/spikes/<population>/timestamps`` in ms and
``node_ids``, plus a trials CSV).  Command line::

    python -m tsn_mpi.data.synthetic rec.nwb --units 400 --conditions 2 --trials 16
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

BLOCK = 1024  # units generated at a time (rates of one block: BLOCK x trial ms floats)


@dataclass
class SyntheticRecording:
    """Spike times (s) per unit as CSR, trials, and the ground-truth rates.

    indptr: (n_units+1,) int64; times: (n_spikes,) float64 seconds, sorted per unit.
    start, stop: (n_trials,) s; condition: (n_trials,) str; rates: (n_units, n_conditions,
    trial ms) float32 Hz at 1-ms resolution (None when not kept).
    """

    indptr: NDArray[np.int64]
    times: NDArray[np.float64]
    start: NDArray[np.float64]
    stop: NDArray[np.float64]
    condition: NDArray[np.str_]
    conditions: list[str]
    rates: NDArray[np.float32] | None

    @property
    def n_units(self) -> int:
        return self.indptr.size - 1

    def unit(self, u: int) -> NDArray[np.float64]:
        return self.times[self.indptr[u] : self.indptr[u + 1]]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], tau_ms: float
                  ) -> NDArray[np.float64]:  # fmt: skip
    """White noise along the last axis (1-ms samples) filtered by a Gaussian of sd tau_ms,
    rescaled to zero mean and unit variance per row."""
    n = shape[-1]
    pad = int(4 * tau_ms)
    x = rng.standard_normal((*shape[:-1], n + 2 * pad))
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / tau_ms) ** 2)
    spec = np.fft.rfft(x, axis=-1) * np.fft.rfft(k, n=x.shape[-1])
    y = np.fft.irfft(spec, n=x.shape[-1], axis=-1)[..., 2 * pad : 2 * pad + n]
    y -= y.mean(axis=-1, keepdims=True)
    y /= np.maximum(y.std(axis=-1, keepdims=True), 1e-12)
    return y


def generate(n_units: int = 400, n_conditions: int = 2, trials_per_condition: int = 16,
             trial_s: float = 2.0, mean_rate: float = 13.0, modulation: float = 0.8,
             n_latents: int = 8, private: float = 0.3, tau_ms: float = 80.0,
             iti_s: tuple[float, float] = (0.5, 1.0), seed: int = 0,
             keep_rates: bool = True) -> SyntheticRecording:  # fmt: skip
    """Make a recording (see the module docstring).

    modulation: ``a``, the log-rate std (0.8: rates vary about 2.2-fold around the base).
    private: fraction of each unit's log-rate variance not shared with other units.
    tau_ms: time scale of the latent courses. Trials are interleaved condition by condition
    in a random order, starting 1 s into the recording.
    """
    rng = np.random.default_rng(seed)
    t_ms = int(round(trial_s * 1000))
    conds = [f"c{k}" for k in range(n_conditions)]
    shared = _smooth_noise(rng, (n_latents, t_ms), tau_ms)
    lat = np.sqrt(0.5) * shared[:, None, :] + np.sqrt(0.5) * _smooth_noise(
        rng, (n_latents, n_conditions, t_ms), tau_ms)  # fmt: skip
    sig = 1.0
    base = rng.lognormal(np.log(mean_rate) - sig**2 / 2, sig, n_units)
    base *= mean_rate / base.mean()
    loads = rng.standard_normal((n_units, n_latents))
    loads /= np.linalg.norm(loads, axis=1, keepdims=True)
    order = np.repeat(np.arange(n_conditions), trials_per_condition)
    rng.shuffle(order)
    n_trials = order.size
    gaps = rng.uniform(*iti_s, n_trials)
    start = 1.0 + np.concatenate(([0.0], np.cumsum(trial_s + gaps)[:-1]))
    stop = start + trial_s
    rates = np.zeros((n_units, n_conditions, t_ms), np.float32) if keep_rates else None
    per_unit: list[NDArray[np.float64]] = []
    for b0 in range(0, n_units, BLOCK):
        b1 = min(b0 + BLOCK, n_units)
        z = np.sqrt(1 - private) * np.einsum("uk,kct->uct", loads[b0:b1], lat)
        z += np.sqrt(private) * _smooth_noise(rng, (b1 - b0, n_conditions, t_ms), tau_ms)
        r = base[b0:b1, None, None] * np.exp(modulation * z - modulation**2 / 2)
        if rates is not None:
            rates[b0:b1] = r
        cum = np.cumsum(r, axis=-1) / 1000.0  # expected spikes up to each ms
        for j in range(b1 - b0):
            per_unit.append(_unit_spikes(rng, cum[j], order, start, stop, base[b0 + j]))
    counts = np.array([s.size for s in per_unit], np.int64)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    times = np.concatenate(per_unit) if per_unit else np.zeros(0)
    return SyntheticRecording(indptr, times, start, stop, np.array(conds)[order], conds, rates)


def _unit_spikes(rng, cum: NDArray[np.float64], order, start, stop, base: float
                 ) -> NDArray[np.float64]:  # fmt: skip
    """One unit's spike times (s): trials by time rescaling, gaps at the base rate."""
    out = []
    t_ms = cum.shape[-1]
    edges = np.concatenate(([0.0], start, [stop[-1] + 1.0]))
    ends = np.concatenate(([0.0], stop))
    for i in range(order.size + 1):  # the gap before trial i (and after the last)
        a, b = ends[i], edges[i + 1]
        n = rng.poisson(base * max(b - a, 0.0))
        out.append(np.sort(rng.uniform(a, b, n)))
        if i == order.size:
            break
        c = cum[order[i]]
        n = rng.poisson(c[-1])
        u = np.sort(rng.uniform(0.0, c[-1], n))
        k = np.minimum(np.searchsorted(c, u, side="right"), t_ms - 1)  # its ms bin
        prev = np.where(k > 0, c[np.maximum(k - 1, 0)], 0.0)
        frac = (u - prev) / np.maximum(c[k] - prev, 1e-300)
        out.append(start[i] + (k + np.clip(frac, 0.0, 1.0)) / 1000.0)
    return np.concatenate(out)


def write_nwb(rec: SyntheticRecording, path: str | Path, session: str = "synthetic") -> Path:
    """Write ``rec`` as NWB with pynwb: Units (spike_times), trials (start/stop, condition)."""
    import datetime

    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(
        session_description=f"{session}: inhomogeneous Poisson units (tsn_mpi.data.synthetic)",
        identifier=f"{session}-{rec.n_units}",
        session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    )
    nwb.add_trial_column(name="condition", description="condition label")
    for a, b, c in zip(rec.start, rec.stop, rec.condition, strict=True):
        nwb.add_trial(start_time=float(a), stop_time=float(b), condition=str(c))
    nwb.units = _units_table(rec)
    path = Path(path)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _units_table(rec: SyntheticRecording):
    """The Units table with its ragged spike_times column built from the CSR arrays at once
    (``add_unit`` per unit takes minutes for 10,000 units)."""
    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
    from pynwb.misc import Units

    st = VectorData(name="spike_times", description="the spike times for each unit in seconds",
                    data=rec.times)  # fmt: skip
    idx = VectorIndex(name="spike_times_index", data=rec.indptr[1:], target=st)
    ids = ElementIdentifiers(name="id", data=np.arange(rec.n_units))
    return Units(name="units", description="synthetic units", id=ids, columns=[st, idx])


def write_sonata(rec: SyntheticRecording, path: str | Path, trials_csv: str | Path,
                 population: str = "cortex") -> tuple[Path, Path]:  # fmt: skip
    """Write SONATA-style spikes (timestamps in ms, sorted by time) and a trials CSV (s)."""
    import h5py

    node = np.repeat(np.arange(rec.n_units, dtype=np.uint64), np.diff(rec.indptr))
    t_ms = rec.times * 1000.0
    order = np.argsort(t_ms, kind="stable")
    path = Path(path)
    with h5py.File(path, "w") as fh:
        g = fh.create_group(f"spikes/{population}")
        g.attrs["sorting"] = "by_time"
        ts = g.create_dataset("timestamps", data=t_ms[order])
        ts.attrs["units"] = "ms"
        g.create_dataset("node_ids", data=node[order])
    csv = Path(trials_csv)
    lines = ["start_time,stop_time,condition"]
    lines += [
        f"{float(a)!r},{float(b)!r},{c}"
        for a, b, c in zip(rec.start, rec.stop, rec.condition, strict=True)
    ]
    csv.write_text("\n".join(lines) + "\n")
    return path, csv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tsn_mpi.data.synthetic",
        description="write a synthetic recording (NWB, or SONATA + CSV)",
    )
    p.add_argument("out", type=Path, help="output .nwb, or .h5 for SONATA spikes")
    p.add_argument("--units", type=int, default=400)
    p.add_argument("--conditions", type=int, default=2)
    p.add_argument("--trials", type=int, default=16, help="trials per condition")
    p.add_argument("--trial-s", type=float, default=2.0)
    p.add_argument("--rate", type=float, default=13.0, help="mean rate (Hz)")
    p.add_argument("--modulation", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rec = generate(
        a.units,
        a.conditions,
        a.trials,
        a.trial_s,
        a.rate,
        a.modulation,
        seed=a.seed,
        keep_rates=False,
    )
    if a.out.suffix == ".nwb":
        print(f"wrote {write_nwb(rec, a.out)}")
    else:
        spikes, csv = write_sonata(rec, a.out, a.out.with_suffix(".trials.csv"))
        print(f"wrote {spikes} and {csv}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
