"""Training under real mpiexec: rank-count independence and failure on one rank.

Each launch asserts the communicator size (the train header prints it, and MpiComm checks the
size the launcher announced), so a wrong mpiexec cannot pass as N singletons.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from tests.conftest import cli, write_tiny
from tests.mpirun import TSN, requires_mpi, run_mpi, run_mpi_script

pytestmark = [pytest.mark.mpi, requires_mpi]


def _read(run, loop):
    with h5py.File(run / "checkpoints" / f"ckpt-{loop}.h5") as f:
        out = {k: f[f"rows/{k}"][...] for k in ("w_in", "P")}
    with h5py.File(run / "learning-curve.h5") as f:
        out["cor"] = f["correlation"][...]
        out["rate"] = f["firing_rate_hz"][...]
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    run = tmp_path_factory.mktemp("mpi") / "base"
    write_tiny(run)
    r = cli("init", str(run))
    assert r.returncode == 0, r.stderr
    return run


def test_init_is_rank_count_independent(base, tmp_path):
    run = tmp_path / "r3"
    write_tiny(run)
    r = run_mpi(3, [*TSN, "init", str(run)], timeout=240)
    assert r.returncode == 0, r.stderr
    with h5py.File(base / "network.h5") as a, h5py.File(run / "network.h5") as b:
        for name in ("static/indptr", "static/pre", "static_by_population", "plastic/pre",
                     "targets", "init/ns"):
            assert np.array_equal(a[name][...], b[name][...]), name
    with h5py.File(base / "checkpoints/ckpt-0.h5") as a, h5py.File(
            run / "checkpoints/ckpt-0.h5") as b:
        assert np.array_equal(a["rows/P"][...], b["rows/P"][...])


def test_training_is_bitwise_identical_for_1_to_4_ranks(base, tmp_path):
    results = {}
    for ranks in (1, 2, 3, 4):
        run = tmp_path / f"r{ranks}"
        shutil.copytree(base, run)
        if ranks == 1:
            r = cli("train", str(run), "--nloops", "2")
        else:
            r = run_mpi(ranks, [*TSN, "train", str(run), "--nloops", "2"], timeout=400)
        assert r.returncode == 0, r.stderr
        assert f"on {ranks} rank(s)" in r.stdout
        results[ranks] = _read(run, 2)
    for ranks in (2, 3, 4):
        for key, val in results[1].items():
            assert np.array_equal(val, results[ranks][key], equal_nan=True), (ranks, key)


@pytest.mark.parametrize("kind, code", [("bug", 1), ("input", 2)])
def test_failure_on_one_rank_stops_all_ranks(base, tmp_path, kind, code):
    """A bug (exit 1) or bad input (exit 2) on rank 1 of 3 ends the whole job with that code
    within the subprocess timeout (a hang raises TimeoutExpired)."""
    run = tmp_path / "fail"
    shutil.copytree(base, run)
    r = run_mpi_script(3, "raise_on_rank.py", str(run), "1", kind, timeout=60)
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "injected" in r.stderr
    assert not (run / "checkpoints" / "ckpt-3.h5").exists()
