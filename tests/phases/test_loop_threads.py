"""Threads in the time loop change no bit: init and training on 1 and 2 threads, and on 1, 2 and
3 ranks of 2 threads each, write identical network files, checkpoints and learning curves."""

from __future__ import annotations

import shutil
import subprocess

import h5py
import numpy as np
import pytest

from tests.conftest import cli, write_tiny
from tests.mpirun import TSN, mpi_env, mpiexec, requires_mpi

TWO = "\n[run]\nloop_threads = 2\n"
TIMING = ("elapsed", "_s")  # wall-clock columns of the learning curve


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not name.endswith(TIMING):
            out[name] = obj[()]

    with h5py.File(path) as f:
        f.visititems(visit)
    return out


def _assert_same_files(ref, run) -> None:
    names = ["network.h5", "learning-curve.h5", "checkpoints/ckpt-0.h5", "checkpoints/ckpt-2.h5"]
    for name in names:
        a, b = _datasets(ref / name), _datasets(run / name)
        assert a.keys() == b.keys(), name
        bad = [k for k in a if not np.array_equal(a[k], b[k])]
        assert not bad, f"{name}: {bad} differ"
    assert "rows/P" in _datasets(run / "checkpoints/ckpt-2.h5")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """init + 2 training loops on one thread (NUMBA_NUM_THREADS=1: 'auto' gives one)."""
    run = tmp_path_factory.mktemp("threads") / "ref"
    write_tiny(run)
    for args in (["init", str(run)], ["train", str(run), "--nloops", "2"]):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
    return run


def test_two_threads_in_one_process(reference, tmp_path):
    run = tmp_path / "two"
    write_tiny(run, TWO)
    for args in (["init", str(run)], ["train", str(run), "--nloops", "2"]):
        r = cli(*args, env={"NUMBA_NUM_THREADS": "2"})
        assert r.returncode == 0, r.stderr
    assert "time loop 2 thread(s)" in r.stdout, r.stdout
    _assert_same_files(reference, run)


@pytest.mark.mpi
@requires_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_of_two_threads_each(reference, tmp_path, ranks):
    """Training under MPI with 2 threads per rank (init's threaded loop is the one-process
    test's; its MPI twin compiles the same body, so init is copied to keep this short)."""
    run = tmp_path / f"r{ranks}"
    write_tiny(run, TWO)
    (run / "checkpoints").mkdir()
    shutil.copy(reference / "network.h5", run / "network.h5")
    shutil.copy(reference / "checkpoints" / "ckpt-0.h5", run / "checkpoints" / "ckpt-0.h5")
    env = mpi_env()
    env["NUMBA_NUM_THREADS"] = "2"
    r = subprocess.run([mpiexec(), "-n", str(ranks), *TSN, "train", str(run), "--nloops", "2"],
                       capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"on {ranks} rank(s)" in r.stdout and "time loop 2 thread(s)" in r.stdout, r.stdout
    _assert_same_files(reference, run)


def test_the_comparison_sees_one_changed_bit(reference, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(reference, run)
    _assert_same_files(reference, run)
    with h5py.File(run / "checkpoints/ckpt-2.h5", "r+") as f:
        p = f["rows/P"]
        row = p[3]
        row.view(np.uint32)[5] ^= 1
        p[3] = row
    with pytest.raises(AssertionError, match="rows/P"):
        _assert_same_files(reference, run)
