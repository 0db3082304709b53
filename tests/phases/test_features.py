"""Reference features beyond the core: benchmark mode, tasks, correlation interval,
per-neuron tau_plas, noise and feed-forward inputs (rank-count independent), resource monitor."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import tsn_mpi
from tests.conftest import TINY, cli
from tests.mpirun import TSN, requires_mpi, run_mpi
from tsn_mpi.comm import SerialComm


def _init(run, extra=""):
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.toml").write_text(TINY + extra)
    tsn_mpi.init(run, comm=SerialComm(), quiet=True)


def _ckpt(run, label):
    with h5py.File(run / "checkpoints" / f"ckpt-{label}.h5") as f:
        return f["rows/w_in"][...], f["rows/P"][...]


def test_benchmark_mode_updates_p_but_not_weights(tmp_path):
    run = tmp_path / "b"
    _init(run, "\n[learning]\nbenchmark = true\n")
    tsn_mpi.train(run, nloops=1, comm=SerialComm(), quiet=True)
    w0, p0 = _ckpt(run, 0)
    w1, p1 = _ckpt(run, 1)
    assert np.array_equal(w0, w1) and not np.array_equal(p0, p1)


def test_tasks_round_robin_and_correlation_interval(tmp_path):
    run = tmp_path / "t"
    _init(run, "\n[targets]\nntasks = 2\n")
    curve = tsn_mpi.train(run, nloops=4, correlation_interval=2, comm=SerialComm(), quiet=True)
    assert list(curve["task"]) == [1, 0, 1, 0]  # the reference's iloop % ntasks + 1
    cor = curve["correlation"]
    assert np.isnan(cor[0]) and np.isnan(cor[2]) and np.isfinite(cor[1]) and np.isfinite(cor[3])


def test_per_neuron_tau_plas(tmp_path):
    run = tmp_path / "tau"
    run.mkdir()
    np.save(run / "tau.npy", np.linspace(100.0, 200.0, 256))
    _init(run, '\n[neuron]\ntau_plas_file = "tau.npy"\n')
    curve = tsn_mpi.train(run, nloops=2, comm=SerialComm(), quiet=True)
    assert np.all(np.isfinite(curve["correlation"]))
    other = tmp_path / "tau2"
    _init(other)
    tsn_mpi.train(other, nloops=2, comm=SerialComm(), quiet=True)
    assert not np.array_equal(_ckpt(run, 2)[0], _ckpt(other, 2)[0])


def test_monitor_resources_prints_every_rank(tmp_path):
    run = tmp_path / "m"
    _init(run)
    r = cli("train", str(run), "--nloops", "1", "--monitor-resources", "0.05")
    assert r.returncode == 0, r.stderr
    assert "resources rank 0: CPU" in r.stdout and "RSS" in r.stdout


@pytest.mark.mpi
@requires_mpi
def test_noise_ff_and_tasks_are_rank_count_independent(tmp_path):
    extra = ("\n[neuron]\nnoise_model = \"current\"\nnoise_sigma = 0.3\n"
             "\n[plastic]\nl_ff = 6\nw_ff = 0.1\n\n[targets]\nntasks = 2\n")
    base = tmp_path / "base"
    _init(base, extra)
    one, three = tmp_path / "one", tmp_path / "three"
    shutil.copytree(base, one)
    shutil.copytree(base, three)
    assert cli("train", str(one), "--nloops", "2").returncode == 0
    r = run_mpi(3, [*TSN, "train", str(three), "--nloops", "2"], timeout=300)
    assert r.returncode == 0 and "on 3 rank(s)" in r.stdout, r.stderr
    for a, b in zip(_ckpt(one, 2), _ckpt(three, 2), strict=True):
        assert np.array_equal(a, b)
    with h5py.File(one / "checkpoints/ckpt-2.h5") as a, h5py.File(
            three / "checkpoints/ckpt-2.h5") as b:
        assert np.array_equal(a["rows/w_ff"][...], b["rows/w_ff"][...])
