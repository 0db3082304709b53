"""SONATA-style spike files: ``/spikes/<population>/timestamps`` and ``node_ids``.

Timestamps are in ms unless the dataset's ``units`` attribute says ``s``; ``gids`` is accepted
for ``node_ids`` (older files), as is a single population stored directly under ``/spikes``.
A unit is a node id with at least one spike.  SONATA files carry no trials: they come from a
CSV or TOML file (``data.trials``, :mod:`tsn_mpi.data.trials`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsn_mpi.data.recording import Recording, spike_span
from tsn_mpi.data.trials import read_trials
from tsn_mpi.errors import DataFileError


def populations(fh) -> dict[str, object]:
    """Population name -> its group (the ``/spikes`` group itself when it holds the data)."""
    import h5py

    spikes = fh.get("spikes")
    if not isinstance(spikes, h5py.Group):
        return {}
    if "timestamps" in spikes:
        return {"": spikes}
    return {k: g for k, g in spikes.items() if isinstance(g, h5py.Group) and "timestamps" in g}


def read_sonata(
    path: str | Path,
    trials_path: str | Path,
    population: str = "",
    condition: str = "condition",
    align: str = "start_time",
) -> Recording:
    """Read the spikes of one population and the trials file (see the module docstring)."""
    import h5py

    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise DataFileError(f"{src}: recording not found")
    if not str(trials_path):
        raise DataFileError(f"{src}: a SONATA spike file needs a trials file (data.trials, "
                            "'tsn-mpi new DIR --data FILE --trials trials.csv')")  # fmt: skip
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataFileError(f"{src}: cannot be read as HDF5 ({exc})") from None
    with fh:
        pops = populations(fh)
        if not pops:
            raise DataFileError(f"{src}: no /spikes/<population>/timestamps (SONATA spikes)")
        if population:
            if population not in pops:
                raise DataFileError(
                    f"{src}: no population {population!r} under /spikes "
                    f"(data.population; found {', '.join(pops)})"
                )
            g = pops[population]
        elif len(pops) == 1:
            g = next(iter(pops.values()))
        else:
            raise DataFileError(f"{src}: several populations ({', '.join(pops)}); choose one "
                                "with data.population (--population)")  # fmt: skip
        ids_name = "node_ids" if "node_ids" in g else "gids" if "gids" in g else None
        if ids_name is None:
            raise DataFileError(f"{src}: {g.name} has timestamps but no node_ids")
        ts = g["timestamps"]
        unit = ts.attrs.get("units", "ms")
        unit = unit.decode() if isinstance(unit, bytes) else str(unit)
        t = np.asarray(ts[()], dtype=np.float64)
        node = np.asarray(g[ids_name][()], dtype=np.int64)
    if t.shape != node.shape or t.ndim != 1:
        raise DataFileError(f"{src}: timestamps {t.shape} and {ids_name} {node.shape} differ")
    if unit not in ("ms", "s"):
        raise DataFileError(f"{src}: timestamps units {unit!r}: expected 'ms' or 's'")
    t_s = t / 1000.0 if unit == "ms" else t
    order = np.lexsort((t_s, node))
    node, t_s = node[order], t_s[order]
    ids, counts = np.unique(node, return_counts=True)
    indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    trials = read_trials(trials_path, condition, align)
    return Recording(src, ids, indptr, t_s, trials, spike_span(t_s))
