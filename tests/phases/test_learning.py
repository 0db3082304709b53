"""Learning works: on a small network the correlation rises substantially in a few loops.

Calibration (measured while writing this test, 1024 neurons, p_ee 0.2, penlambda 0.1 for a
faster learning rate): the mean correlation went 0.04 (loop 2) -> 0.40 (loop 10) -> 0.56-0.62
(loops 13-15). The bound below leaves a margin for other machines and seeds.
"""

from __future__ import annotations

import numpy as np

import tsn_mpi
from tests.conftest import write_tiny
from tsn_mpi.comm import SerialComm


def test_correlation_rises_substantially(tmp_path):
    run = tmp_path / "learn"
    write_tiny(run)
    (run / "config.toml").write_text(
        "[network]\nn_cells = 1024\np_ee = 0.2\n[learning]\npenlambda = 0.1\n"
    )
    tsn_mpi.init(run, comm=SerialComm(), quiet=True)
    curve = tsn_mpi.train(run, nloops=15, comm=SerialComm(), quiet=True)
    cor = curve["correlation"]
    assert cor[0] < 0.15
    assert np.mean(cor[-3:]) > 0.4
    assert np.all(curve["firing_rate_hz"] > 0)
