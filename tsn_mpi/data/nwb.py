"""NWB reader (pynwb, the ``data`` extra): the Units table's spike times and the trials table.

What is read: ``units.spike_times`` (ragged through ``spike_times_index``, seconds) and
``units.id``; ``units.obs_intervals`` when present (the recording's extent); the trials table's
``start_time``, ``stop_time``, the condition column and the alignment column named by the
config (``data.condition``, ``data.align``).  The ragged column is read as two flat arrays, not
unit by unit, so 66,000 units load in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsn_mpi.data.recording import Recording, make_trials, sort_units, spike_span
from tsn_mpi.errors import DataFileError


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def read_nwb(path: str | Path, condition: str = "condition", align: str = "start_time"
             ) -> Recording:  # fmt: skip
    """Read an NWB file's units and trials (see the module docstring).

    A trials table without the ``condition`` column gives one condition.  Raises
    DataFileError (one line naming the file) when pynwb is missing, the file is not NWB, or it
    lacks units, spike times or trials.
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise DataFileError(f"{src}: recording not found")
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise DataFileError(
            f"{src}: reading NWB needs pynwb: pip install 'tsn-mpi[data]' (or pip install pynwb)"
        ) from None
    try:
        io = NWBHDF5IO(str(path), "r", load_namespaces=True)
        nwb = io.read()
    except Exception as exc:  # noqa: BLE001 - pynwb/hdmf/h5py raise many types
        raise DataFileError(f"{src}: cannot be read as NWB ({_one_line(exc)})") from None
    try:
        return _read(nwb, src, condition, align)
    finally:
        io.close()


def _read(nwb, src: str, condition: str, align: str) -> Recording:
    units = nwb.units
    if units is None or len(units.id) == 0:
        raise DataFileError(f"{src}: the file has no units (no Units table, or an empty one)")
    if "spike_times" not in units.colnames:
        raise DataFileError(f"{src}: the Units table has no spike_times column")
    times = np.asarray(units.spike_times.data[:], dtype=np.float64)
    ends = np.asarray(units.spike_times_index.data[:], dtype=np.int64)
    indptr = np.concatenate(([0], ends)).astype(np.int64)
    if indptr[-1] != times.size or np.any(np.diff(indptr) < 0):
        raise DataFileError(f"{src}: spike_times_index does not match spike_times")
    ids = np.asarray(units.id.data[:], dtype=np.int64)
    span = spike_span(times)
    if "obs_intervals" in units.colnames:
        obs = np.asarray(units.obs_intervals.data[:], dtype=np.float64).reshape(-1, 2)
        if obs.size:
            span = (float(obs[:, 0].min()), float(obs[:, 1].max()))
    trials = nwb.trials
    if trials is None or len(trials.id) == 0:
        raise DataFileError(
            f"{src}: the file has no trials table (intervals/trials with start_time and "
            "stop_time); tsn-mpi fits trial-averaged activity"
        )
    cols = list(trials.colnames)
    start = np.asarray(trials.start_time.data[:], dtype=np.float64)
    stop = np.asarray(trials.stop_time.data[:], dtype=np.float64)
    cond = np.asarray(trials[condition].data[:]) if condition in cols else None
    if align in ("", "start_time"):
        t_align = None
    elif align in cols:
        t_align = np.asarray(trials[align].data[:], dtype=np.float64)
    else:
        raise DataFileError(
            f"{src}: the trials table has no column {align!r} (data.align); columns: "
            f"start_time, stop_time, {', '.join(cols)}"
        )
    tr = make_trials(start, stop, t_align, cond, src)
    return Recording(src, ids, indptr, sort_units(indptr, times), tr, span)
