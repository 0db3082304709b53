"""Reading ``data-fit.h5`` (written by :mod:`tsn_mpi.data.prepare`; layout in docs/fitting.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tsn_mpi.errors import DataFileError


def read_attrs(path: str | Path) -> dict:
    """The file's attributes (settings, bins, window, conditions...)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: not found; prepare the recording with 'tsn-mpi init' "
                            "(data.file set) or 'tsn-mpi new DIR --data FILE'")  # fmt: skip
    try:
        with h5py.File(path, "r") as fh:
            return dict(fh.attrs)
    except OSError as exc:
        raise DataFileError(f"{path}: cannot be read ({exc})") from None


@dataclass
class FitData:
    """What evaluation needs: PSTHs (n_cond, n_bins, n_units) Hz and how they were made."""

    path: Path
    conditions: list[str]
    bin_ms: float
    window_ms: float
    n_bins: int
    smooth_kernel: str
    smooth_width: float
    n_units: int
    n_train: NDArray[np.int64]
    train: NDArray[np.float32]
    heldout: NDArray[np.float32] | None

    @property
    def reference(self) -> NDArray[np.float32]:
        """The PSTH the model is scored on: held-out trials, else the training PSTH."""
        return self.heldout if self.heldout is not None else self.train


def read_fit(path: str | Path) -> FitData:
    """Read the PSTHs and binning of ``data-fit.h5``."""
    import h5py

    path = Path(path)
    a = read_attrs(path)
    try:
        with h5py.File(path, "r") as fh:
            train = np.asarray(fh["psth_train"][()], dtype=np.float32)
            held = (np.asarray(fh["psth_heldout"][()], dtype=np.float32)
                    if "psth_heldout" in fh else None)  # fmt: skip
            n_train = np.asarray(fh["n_train"][()], dtype=np.int64)
    except KeyError as exc:
        raise DataFileError(f"{path}: lacks {exc.args[0] if exc.args else 'a dataset'}") from None
    return FitData(
        path,
        json.loads(a["conditions"]),
        float(a["bin_width"]),
        float(a["window_ms"]),
        int(a["n_bins"]),
        str(a["smooth_kernel"]),
        float(a["smooth_width"]),
        int(a["n_units"]),
        n_train,
        train,
        held,
    )
