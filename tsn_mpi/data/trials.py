"""Trials tables for spike files without one: a small CSV or TOML file.

CSV: a header row, then one trial per row::

    start_time,stop_time,condition
    1.0,3.0,left
    3.8,5.8,right

TOML: an array of tables::

    [[trials]]
    start_time = 1.0
    stop_time = 3.0
    condition = "left"

Times are in seconds (as in NWB).  ``condition`` (name set by ``data.condition``) is optional
(one condition without it); an alignment column (``data.align``) may give each trial's time zero.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from tsn_mpi.data.recording import Trials, make_trials
from tsn_mpi.errors import DataFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_trials(path: str | Path, condition: str = "condition", align: str = "start_time"
                ) -> Trials:  # fmt: skip
    """Read a trials CSV or TOML file (see the module docstring)."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise DataFileError(f"{src}: trials file not found (data.trials)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, src)
    elif suffix == ".toml":
        rows = _toml_rows(path, src)
    else:
        raise DataFileError(f"{src}: trials file must be .csv or .toml, not {suffix!r}")
    if not rows:
        raise DataFileError(f"{src}: the trials table has no trials")
    cols = set(rows[0])
    for need in ("start_time", "stop_time"):
        if need not in cols:
            raise DataFileError(f"{src}: trials need a {need!r} column (seconds); columns: "
                                f"{', '.join(sorted(cols))}")  # fmt: skip
    if align not in ("", "start_time") and align not in cols:
        raise DataFileError(f"{src}: no column {align!r} (data.align); columns: "
                            f"{', '.join(sorted(cols))}")  # fmt: skip

    def column(name: str, numeric: bool) -> list:
        out = []
        for i, row in enumerate(rows):
            if name not in row:
                raise DataFileError(f"{src}: trial {i} has no {name!r}")
            v = row[name]
            if numeric:
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    raise DataFileError(f"{src}: trial {i}: {name} = {v!r} is not a number "
                                        "(seconds)") from None  # fmt: skip
            out.append(v)
        return out

    start = column("start_time", True)
    stop = column("stop_time", True)
    t_align = column(align, True) if align not in ("", "start_time") else None
    cond = column(condition, False) if condition in cols else None
    return make_trials(start, stop, t_align, cond, src)


def _csv_rows(path: Path, src: str) -> list[dict]:
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"{src}: cannot be read as CSV ({exc})") from None
    return rows


def _toml_rows(path: Path, src: str) -> list[dict]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataFileError(f"{src}: not valid TOML ({exc})") from None
    rows = data.get("trials")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataFileError(f"{src}: expected an array of tables [[trials]]")
    return rows
