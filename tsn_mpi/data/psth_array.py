"""PSTH arrays: rates (Hz) already binned, units x conditions x bins.

``.npy``: the array alone; its bin width is ``data.bin_width``.  ``.h5``: dataset ``psth`` (or
the only dataset), attribute ``bin_width_ms`` (checked against ``data.bin_width`` when both
are given), and optionally ``psth_heldout`` (the same shape, from trials not in ``psth``: the
fit is then scored on it), ``conditions`` (labels) and ``unit_ids``.  A 2-D array is one
condition.  Without held-out PSTHs the fit can only be scored on the data it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tsn_mpi.errors import DataFileError


@dataclass
class PsthArray:
    """psth, heldout: (n_units, n_conditions, n_bins) float64 Hz (heldout may be None)."""

    source: str
    unit_ids: NDArray[np.int64]
    psth: NDArray[np.float64]
    heldout: NDArray[np.float64] | None
    bin_ms: float
    conditions: list[str]

    @property
    def n_units(self) -> int:
        return self.psth.shape[0]


def read_psth(path: str | Path, bin_ms: float | None) -> PsthArray:
    """Read a PSTH array (see the module docstring); ``bin_ms`` None = take the file's."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise DataFileError(f"{src}: PSTH file not found")
    suffix = path.suffix.lower()
    heldout = None
    conds = ids = None
    file_bin = None
    if suffix == ".npy":
        try:
            psth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataFileError(f"{src}: cannot be read as .npy ({exc})") from None
    elif suffix in (".h5", ".hdf5"):
        psth, heldout, conds, ids, file_bin = _read_h5(path, src)
    else:
        raise DataFileError(f"{src}: a PSTH array must be .npy or .h5, not {suffix!r}")
    psth = _check(psth, src, "psth")
    if heldout is not None:
        heldout = _check(heldout, src, "psth_heldout")
        if heldout.shape != psth.shape:
            raise DataFileError(f"{src}: psth_heldout {heldout.shape} and psth {psth.shape} "
                                "differ in shape")  # fmt: skip
    if file_bin is not None and bin_ms is not None and abs(file_bin - bin_ms) > 1e-9:
        raise DataFileError(f"{src}: bin_width_ms = {file_bin:g} in the file but data.bin_width "
                            f"= {bin_ms:g}")  # fmt: skip
    width = file_bin if file_bin is not None else bin_ms
    if width is None or not width > 0:
        raise DataFileError(f"{src}: the bin width is unknown: give --bin-width (ms)")
    n_units, n_cond = psth.shape[:2]
    conds = [str(c) for c in conds] if conds is not None else [f"c{k}" for k in range(n_cond)]
    if len(conds) != n_cond:
        raise DataFileError(f"{src}: {len(conds)} condition labels for {n_cond} conditions")
    ids = np.arange(n_units, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    if ids.shape != (n_units,):
        raise DataFileError(f"{src}: unit_ids has {ids.size} entries for {n_units} units")
    return PsthArray(src, ids, psth, heldout, float(width), conds)


def _read_h5(path: Path, src: str):
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataFileError(f"{src}: cannot be read as HDF5 ({exc})") from None
    with fh:
        names = [k for k, v in fh.items() if isinstance(v, h5py.Dataset)]
        name = "psth" if "psth" in fh else (names[0] if len(names) == 1 else None)
        if name is None:
            raise DataFileError(f"{src}: no dataset 'psth' (units x conditions x bins; "
                                f"datasets: {', '.join(names) or 'none'})")  # fmt: skip
        d = fh[name]
        psth = np.asarray(d[()])
        bw = d.attrs.get("bin_width_ms", fh.attrs.get("bin_width_ms"))
        held = np.asarray(fh["psth_heldout"][()]) if "psth_heldout" in fh else None
        conds = fh["conditions"].asstr()[()] if "conditions" in fh else None
        ids = np.asarray(fh["unit_ids"][()]) if "unit_ids" in fh else None
    return psth, held, conds, ids, None if bw is None else float(bw)


def _check(arr: NDArray, src: str, what: str) -> NDArray[np.float64]:
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iuf":
        raise DataFileError(f"{src}: {what} has dtype {arr.dtype}; expected numbers (Hz)")
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3 or 0 in arr.shape:
        raise DataFileError(f"{src}: {what} has shape {arr.shape}; expected units x conditions "
                            "x bins")  # fmt: skip
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        u, c, b = np.unravel_index(int(np.argmax(bad)), arr.shape)
        raise DataFileError(f"{src}: {what} holds {int(bad.sum())} NaN or infinite values; "
                            f"first at unit {u}, condition {c}, bin {b}")  # fmt: skip
    if (arr < 0).any():
        u, c, b = np.unravel_index(int(np.argmax(arr < 0)), arr.shape)
        raise DataFileError(f"{src}: {what} holds negative rates; first at unit {u}, "
                            f"condition {c}, bin {b}")  # fmt: skip
    return arr
