"""Small recordings for the data tests, written in every supported format."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tsn_mpi.data.synthetic import SyntheticRecording, generate, write_sonata

try:
    import pynwb  # noqa: F401

    HAVE_PYNWB = True
except ImportError:  # pragma: no cover - the test extra installs it
    HAVE_PYNWB = False

requires_pynwb = pytest.mark.skipif(not HAVE_PYNWB, reason="pynwb not installed (pip install "
                                    "'tsn-mpi[data]')")  # fmt: skip


def small(units: int = 30, trials: int = 6, trial_s: float = 0.4, seed: int = 0,
          modulation: float = 1.2) -> SyntheticRecording:  # fmt: skip
    return generate(units, 2, trials, trial_s, 13.0, modulation=modulation, seed=seed)


def nwb_file(path: Path, rec: SyntheticRecording | None = None, **kw) -> Path:
    from tsn_mpi.data.synthetic import write_nwb

    return write_nwb(rec or small(**kw), path)


def sonata_files(tmp: Path, rec: SyntheticRecording | None = None) -> tuple[Path, Path]:
    return write_sonata(rec or small(), tmp / "spikes.h5", tmp / "trials.csv")


def psth_h5(path: Path, psth: np.ndarray, bin_ms: float | None = 10.0, heldout=None) -> Path:
    with h5py.File(path, "w") as fh:
        d = fh.create_dataset("psth", data=psth)
        if bin_ms is not None:
            d.attrs["bin_width_ms"] = bin_ms
        if heldout is not None:
            fh["psth_heldout"] = heldout
    return path
