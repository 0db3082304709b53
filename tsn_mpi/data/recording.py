"""What every reader returns: spike trains as CSR plus a trials table, and the checks that make a
recording usable for a fit (one-line :class:`~tsn_mpi.errors.DataFileError` naming the file).

Times are in seconds, as in NWB; tsn-mpi's own times (bin width, window) are in ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tsn_mpi.errors import DataFileError

#: a trial may end this long after the last spike of the whole recording (s) before it counts
#: as outside the recording (a silent tail is fine; trial times in ms instead of s are not)
SPAN_SLACK_S = 1.0


@dataclass
class Trials:
    """The trials table: start, stop and alignment time (s) and a condition label per trial."""

    start: NDArray[np.float64]
    stop: NDArray[np.float64]
    align: NDArray[np.float64]
    condition: NDArray[np.str_]
    source: str = ""  # the file the table came from (the recording, or a trials file)

    @property
    def n(self) -> int:
        return self.start.size

    def conditions(self) -> list[str]:
        """Condition labels in order of first appearance (the task order of the fit)."""
        return list(dict.fromkeys(self.condition.tolist()))

    def condition_index(self) -> NDArray[np.int64]:
        names = {c: k for k, c in enumerate(self.conditions())}
        return np.array([names[c] for c in self.condition.tolist()], dtype=np.int64)


@dataclass
class Recording:
    """Sorted spike times (s) of every unit as CSR, the unit ids of the file, and its trials.

    indptr: (n_units+1,) int64; times: (n_spikes,) float64, sorted within each unit.
    span: (first, last) time (s) the recording covers (observation intervals when the file
    has them, else its spikes).
    """

    source: str
    unit_ids: NDArray[np.int64]
    indptr: NDArray[np.int64]
    times: NDArray[np.float64]
    trials: Trials
    span: tuple[float, float]

    @property
    def n_units(self) -> int:
        return self.unit_ids.size


def make_trials(start, stop, align, condition, source: str) -> Trials:
    """Validated :class:`Trials` from columns (s); condition None = one condition."""
    start = np.asarray(start, dtype=np.float64).ravel()
    stop = np.asarray(stop, dtype=np.float64).ravel()
    align = start.copy() if align is None else np.asarray(align, dtype=np.float64).ravel()
    if condition is None:
        cond = np.full(start.size, "all")
    else:
        cond = np.array([_label(c) for c in np.asarray(condition).ravel()])
    if start.size == 0:
        raise DataFileError(f"{source}: the trials table has no trials")
    if not (stop.size == start.size == align.size == cond.size):
        raise DataFileError(f"{source}: trial columns differ in length")
    for name, col in (("start_time", start), ("stop_time", stop), ("alignment", align)):
        if not np.all(np.isfinite(col)):
            i = int(np.argmax(~np.isfinite(col)))
            raise DataFileError(f"{source}: trial {i} has a non-finite {name} ({col[i]})")
    bad = np.flatnonzero(stop <= start)
    if bad.size:
        i = int(bad[0])
        raise DataFileError(
            f"{source}: trial {i} stops at {stop[i]} s, not after its start {start[i]} s"
        )
    return Trials(start, stop, align, cond, source)


def _label(c) -> str:
    if isinstance(c, bytes):
        return c.decode()
    if isinstance(c, (float, np.floating)) and float(c).is_integer():
        return str(int(c))
    return str(c)


def check_recording(rec: Recording) -> None:
    """Units exist, some spike, spike times are finite, trials do not overlap and lie inside
    the recording."""
    if rec.n_units == 0:
        raise DataFileError(f"{rec.source}: the file has no units")
    if rec.times.size == 0:
        raise DataFileError(f"{rec.source}: none of its {rec.n_units} units has a spike")
    if not np.all(np.isfinite(rec.times)):
        raise DataFileError(f"{rec.source}: spike times include non-finite values")
    tr = rec.trials
    order = np.argsort(tr.start, kind="stable")
    s, e = tr.start[order], tr.stop[order]
    over = np.flatnonzero(s[1:] < e[:-1])
    if over.size:
        a, b = int(order[over[0]]), int(order[over[0] + 1])
        raise DataFileError(
            f"{tr.source or rec.source}: trials {a} [{tr.start[a]}, {tr.stop[a]}] s and {b} "
            f"[{tr.start[b]}, {tr.stop[b]}] s overlap"
        )
    first, last = rec.span
    out = np.flatnonzero((tr.start < min(first, 0.0)) | (tr.stop > last + SPAN_SLACK_S))
    if out.size:
        i = int(out[0])
        where = "" if tr.source in ("", rec.source) else f" {rec.source}"
        raise DataFileError(
            f"{tr.source or rec.source}: trial {i} [{tr.start[i]}, {tr.stop[i]}] s lies outside "
            f"the recording{where} [{first:.6g}, {last:.6g}] s ({out.size} such trials; trial "
            "times must be in seconds, like the spike times)"
        )


def spike_span(times: NDArray[np.float64]) -> tuple[float, float]:
    """(min, max) of the spike times, (0, 0) if there are none."""
    if times.size == 0:
        return 0.0, 0.0
    return float(np.min(times)), float(np.max(times))


def sort_units(indptr: NDArray[np.int64], times: NDArray[np.float64]) -> NDArray[np.float64]:
    """The times with each unit's spikes sorted (a copy only when some unit is unsorted)."""
    if times.size < 2:
        return times
    d = np.diff(times) < 0
    cut = indptr[1:-1] - 1
    d[cut[(cut >= 0) & (cut < d.size)]] = False  # unit boundaries may decrease
    if not d.any():
        return times
    out = times.copy()
    for u in range(indptr.size - 1):
        a, b = indptr[u], indptr[u + 1]
        out[a:b] = np.sort(out[a:b])
    return out
