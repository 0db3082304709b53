"""A data fit's held-out evaluation does not depend on the number of ranks."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import tsn_mpi
from tests.conftest import cli
from tests.data.recordings import small, sonata_files
from tests.mpirun import TSN, requires_mpi, run_mpi

pytestmark = [pytest.mark.mpi, requires_mpi]


def test_heldout_scores_are_the_same_on_1_and_2_ranks(tmp_path):
    spikes, csv = sonata_files(tmp_path, small(units=24, trials=4, trial_s=0.2))
    one = tmp_path / "one"
    tsn_mpi.new(one, data=spikes, data_options={"trials": str(csv)}, quiet=True)
    for args in (("init", str(one)), ("train", str(one), "--nloops", "2")):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
    two = tmp_path / "two"
    shutil.copytree(one, two)
    r = cli("test", str(one), "--ntrials", "2", "--no-plot")
    assert r.returncode == 0, r.stderr
    r2 = run_mpi(2, [*TSN, "test", str(two), "--ntrials", "2", "--no-plot"], timeout=300)
    assert r2.returncode == 0, r2.stderr
    assert "held-out PSTH r = " in r.stdout and "held-out PSTH r = " in r2.stdout
    with h5py.File(one / "test.h5") as a, h5py.File(two / "test.h5") as b:
        for name in ("model_counts", "r", "current_r", "current_offset"):
            assert np.array_equal(
                a[f"heldout/{name}"][()], b[f"heldout/{name}"][()], equal_nan=True
            ), name
