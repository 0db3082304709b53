"""Small fake ``test.h5``, ``learning-curve.h5`` and ``config.toml`` files in the real layouts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np


def write_test_h5(
    path: Path,
    *,
    neurons: Sequence[int] = (3, 7, 11, 20, 42),
    ntrials: int = 3,
    ntasks: int = 2,
    dt: float = 0.1,
    stim_off: float = 200.0,
    learn_every: float = 10.0,
    train_time: float = 400.0,
    spikes: dict[tuple[int, int, int], Sequence[int]] | None = None,
    cap: int | None = None,
    seed: int = 0,
    complete: bool = True,
) -> Path:
    """Write ``test.h5``; ``spikes[(trial, task, column)]`` = step numbers (random otherwise).

    cap: store at most this many steps per neuron (true counts go to ``spikes/count``).
    """
    rng = np.random.default_rng(seed)
    n_rec = len(neurons)
    n_learn = round((train_time - stim_off) / learn_every)
    n_steps = round(train_time / dt)
    t = np.arange(1, n_learn + 1) * learn_every / 1000
    phase = np.arange(n_rec) / max(n_rec, 1) * 2 * np.pi
    targets = np.stack([np.sin(2 * np.pi * (k + 1) * t[:, None] + phase) for k in range(ntasks)])
    utotal = targets[None] + 0.2 * rng.standard_normal((ntrials, ntasks, n_learn, n_rec))
    indptr = np.zeros((ntrials, ntasks, n_rec + 1), dtype=np.int64)
    count = np.zeros((ntrials, ntasks, n_rec), dtype=np.int64)
    chunks = []
    offset = 0
    for tr in range(ntrials):
        for k in range(ntasks):
            indptr[tr, k, 0] = offset
            for j in range(n_rec):
                if spikes is not None:
                    s = np.asarray(spikes.get((tr, k, j), ()), dtype=np.int32)
                else:
                    s = np.sort(rng.choice(np.arange(1, n_steps + 1), 40, replace=False))
                count[tr, k, j] = s.size
                if cap is not None:
                    s = s[:cap]
                chunks.append(s.astype(np.int32))
                offset += s.size
                indptr[tr, k, j + 1] = offset
    steps = np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
    with h5py.File(path, "w") as f:
        f.attrs.update(
            dict(
                dt=dt,
                stim_off=stim_off,
                learn_every=learn_every,
                train_time=train_time,
                n_learn=n_learn,
                ntrials=ntrials,
                ntasks=ntasks,
                checkpoint="10",
                complete=complete,
            )  # fmt: skip
        )
        f["neurons"] = np.asarray(neurons, dtype=np.int64)
        f["targets"] = targets.astype(np.float32)
        for name in ("utotal", "ubal_e", "ubal_i", "uplastic"):
            f[name] = utotal.astype(np.float32)
        f["spikes/indptr"] = indptr
        f["spikes/steps"] = steps
        f["spikes/count"] = count
    return path


def write_learning_curve(
    path: Path,
    correlation: Sequence[float],
    *,
    firing_rate_hz: Sequence[float] | None = None,
    elapsed_s: Sequence[float] | None = None,
    task: Sequence[int] | None = None,
    n_nan: Sequence[int] | None = None,
    complete: bool = True,
) -> Path:
    """Write ``learning-curve.h5`` with one entry per loop (NaN = correlation not measured)."""
    n = len(correlation)
    with h5py.File(path, "w") as f:
        f.attrs["complete"] = complete
        f["loop"] = np.arange(1, n + 1, dtype=np.int64)
        f["task"] = np.asarray(task if task is not None else np.zeros(n), dtype=np.int64)
        f["elapsed_s"] = np.asarray(elapsed_s if elapsed_s is not None else np.ones(n), float)
        rate = firing_rate_hz if firing_rate_hz is not None else np.full(n, 5.0)
        f["firing_rate_hz"] = np.asarray(rate, dtype=np.float64)
        f["correlation"] = np.asarray(correlation, dtype=np.float64)
        f["n_nan"] = np.asarray(n_nan if n_nan is not None else np.zeros(n), dtype=np.int64)
    return path


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


def write_config(path: Path, tables: dict[str, dict[str, Any]]) -> Path:
    """Write a TOML file of ``{table: {key: scalar}}``."""
    lines = []
    for table, keys in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines))
    return path
