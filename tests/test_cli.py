"""The command line end to end on a tiny config, and its error behaviour."""

from __future__ import annotations

import h5py
import numpy as np

from tests.conftest import cli, write_tiny


def test_round_trip_new_init_train_test_plot(tmp_path):
    run = tmp_path / "run"
    r = cli("new", str(run))
    assert r.returncode == 0, r.stderr
    write_tiny(run)
    r = cli("init", str(run))
    assert r.returncode == 0, r.stderr
    assert "mean excitatory firing rate:" in r.stdout
    r = cli("train", str(run), "--nloops", "3", "--save-best-checkpoint")
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert len(rows) == 3 and "\x1b" not in r.stdout
    with h5py.File(run / "learning-curve.h5") as f:
        assert list(f["loop"][...]) == [1, 2, 3]
        assert np.all(np.isfinite(f["correlation"][...]))
    assert (run / "checkpoints" / "ckpt-3.h5").exists()
    r = cli("train", str(run), "--nloops", "1")
    assert r.returncode == 0 and "using checkpoint 3" in r.stdout
    r = cli("test", str(run), "--ntrials", "2", "--neurons", "0-3,200")
    assert r.returncode == 0, r.stderr
    with h5py.File(run / "test.h5") as f:
        assert list(f["neurons"][...]) == [0, 1, 2, 3, 200]
        assert f["utotal"].shape == (2, 1, 20, 5)
    for name in ("test-syninput-task0.pdf", "test-psth-task0.png", "learning-curve.png"):
        assert (run / name).exists()
    r = cli("plot", str(run / "test.h5"), "--neurons", "1,200")
    assert r.returncode == 0, r.stderr


def test_bad_config_key_is_one_line_and_exit_2(tmp_path):
    run = tmp_path / "run"
    write_tiny(run, "\n[learning]\npenlamda = 0.5\n")
    r = cli("init", str(run))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "learning.penlamda" in lines[0] and "Traceback" not in r.stderr
    assert not (run / "network.h5").exists()


def test_help_for_every_subcommand():
    for sub in ("new", "init", "train", "test", "plot", "run", "info"):
        r = cli(sub, "--help")
        assert r.returncode == 0 and "usage" in r.stdout


def test_info_runs():
    r = cli("info")
    assert r.returncode == 0, r.stderr
    assert "numba" in r.stdout and "parallel HDF5" in r.stdout
    gpus = [line for line in r.stdout.splitlines() if line.startswith("GPUs")]
    assert len(gpus) == 1 and "cupy" not in gpus[0]  # as numba.cuda (the GPU backend) sees them
