"""Small mode end to end: the running-mean history row, checkpoints and exact resume."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import tsn_mpi
from tests.conftest import write_tiny
from tsn_mpi.backends.cpu.learner import small_history


def _state(run: Path, label: str) -> tuple[np.ndarray, np.ndarray, int]:
    with h5py.File(run / "checkpoints" / f"ckpt-{label}.h5") as f:
        return f["rows/w_in"][...], f["global/history"][...], int(f.attrs["hist_count"])


@pytest.mark.parametrize("mean", [True, False])
def test_small_mode_resume_is_exact_and_keeps_the_mean_row(tmp_path: Path, mean: bool) -> None:
    extra = f'[learning]\nmode = "small"\nhistory_mean = {"true" if mean else "false"}\n'
    runs = []
    for name in ("straight", "resumed"):
        run = tmp_path / name
        write_tiny(run, extra)
        tsn_mpi.init(run, quiet=True)
        runs.append(run)
    tsn_mpi.train(runs[0], nloops=2, quiet=True)
    tsn_mpi.train(runs[1], nloops=1, quiet=True)
    tsn_mpi.train(runs[1], nloops=1, quiet=True)
    w0, h0, c0 = _state(runs[0], "2")
    w1, h1, c1 = _state(runs[1], "2")
    np.testing.assert_array_equal(w0, w1)
    np.testing.assert_array_equal(h0, h1)
    assert c0 == c1 == 2 * 20  # 200 ms of learning every 10 ms, two loops
    window = 10  # history 100 ms / learn_every 10 ms
    assert h0.shape[0] == window + mean
    if mean:  # the last row is the mean of every pushed vector: here of r >= 0, not all zero
        assert (h0[-1] >= 0).all() and h0[-1].any()
        assert not np.array_equal(h0[-1], h0[:window].mean(axis=0))


def test_small_history_shape_is_checked() -> None:
    assert small_history(10, 5, True).shape == (11, 5)
    assert small_history(10, 5, False).shape == (10, 5)
    h = np.arange(55.0).reshape(11, 5)
    got = small_history(10, 5, True, h)
    np.testing.assert_array_equal(got, h)
    assert got is not h and got.flags.c_contiguous
    with pytest.raises(ValueError, match="history_mean"):
        small_history(10, 5, False, h)
