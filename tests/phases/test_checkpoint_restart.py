"""Checkpoints: restart on another rank count, SIGKILL while writing, SIGTERM mid-training.

Run in CI with both h5py builds (serial PyPI wheel: rank-by-rank "turns"; parallel HDF5:
collective "mpio"), under mpiexec -n 2, 3 and 4.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from tests.conftest import ROOT, cli, write_tiny
from tests.mpirun import TSN, mpi_env, requires_mpi, run_mpi
from tsn_mpi.config import load_config
from tsn_mpi.plan import plan

SLOW = """
[network]
n_cells = 1024
p_ee = 0.2
"""


def _weights(run, label):
    with h5py.File(run / "checkpoints" / f"ckpt-{label}.h5") as f:
        return f["rows/w_in"][...], f["rows/P"][...]


def _curve(run):
    with h5py.File(run / "learning-curve.h5") as f:
        return f["correlation"][...], f["firing_rate_hz"][...]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    run = tmp_path_factory.mktemp("ckpt") / "base"
    write_tiny(run)
    r = cli("init", str(run))
    assert r.returncode == 0, r.stderr
    return run


@pytest.mark.mpi
@requires_mpi
def test_resume_on_another_rank_count_is_bitwise_identical(base, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    shutil.copytree(base, straight)
    shutil.copytree(base, split)
    r = run_mpi(2, [*TSN, "train", str(straight), "--nloops", "4"], timeout=300)
    assert r.returncode == 0 and "on 2 rank(s)" in r.stdout, r.stderr
    r = run_mpi(4, [*TSN, "train", str(split), "--nloops", "2"], timeout=300)
    assert r.returncode == 0 and "on 4 rank(s)" in r.stdout, r.stderr
    r = run_mpi(3, [*TSN, "train", str(split), "--nloops", "2"], timeout=300)
    assert r.returncode == 0 and "on 3 rank(s)" in r.stdout, r.stderr
    assert "using checkpoint 2" in r.stdout
    for a, b in zip(_weights(straight, 4), _weights(split, 4), strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(_curve(straight), _curve(split), strict=True):
        assert np.array_equal(a, b)


def _popen(args, pause_writes: float = 0.0):
    """``tsn-mpi args`` in the background; ``pause_writes``: HDF5 writers sleep that long
    before their 'complete' mark (tests/mpi/pause_writes.py)."""
    pre = ["-m", "tsn_mpi"] if not pause_writes else [
        str(ROOT / "tests" / "mpi" / "pause_writes.py"), str(pause_writes)]
    return subprocess.Popen([sys.executable, *pre, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=mpi_env(), cwd=ROOT)


def test_sigkill_while_writing_a_checkpoint_leaves_the_previous_one(base, tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "killed"
    shutil.copytree(base, ref)
    shutil.copytree(base, run)
    assert cli("train", str(ref), "--nloops", "1").returncode == 0
    p = _popen(["train", str(run), "--nloops", "1"], pause_writes=30)
    deadline = time.monotonic() + 120
    ckdir = run / "checkpoints"
    while time.monotonic() < deadline:  # wait until the writer sits inside the checkpoint
        if any(p.name.startswith(".ckpt-1") for p in ckdir.iterdir()):
            break
        time.sleep(0.1)
    else:
        p.kill()
        pytest.fail("checkpoint write never started")
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert not (ckdir / "ckpt-1.h5").exists()
    assert (ckdir / "ckpt-0.h5").exists()
    r = cli("train", str(run), "--nloops", "1")
    assert r.returncode == 0, r.stderr
    assert "using checkpoint 0" in r.stdout
    for a, b in zip(_weights(ref, 1), _weights(run, 1), strict=True):
        assert np.array_equal(a, b)
    assert not [p for p in ckdir.iterdir() if p.name.startswith(".")]


def test_sigterm_checkpoints_mid_loop_and_resume_is_exact(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    write_tiny(ref, "")
    (ref / "config.toml").write_text(SLOW)
    assert cli("init", str(ref)).returncode == 0
    shutil.copytree(ref, run)
    assert cli("train", str(ref), "--nloops", "6").returncode == 0
    p = _popen(["train", str(run), "--nloops", "6"])
    rows = 0
    while rows < 2:  # two loops done: interrupt the third
        line = p.stdout.readline()
        if not line:
            break
        if line.strip()[:1].isdigit():
            rows += 1
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 75, err
    assert len(err.strip().splitlines()) == 1 and "restore-from-checkpoint" in err
    labels = sorted(x.name for x in (run / "checkpoints").iterdir())
    inter = [x for x in labels if x.endswith("i.h5")]
    assert len(inter) == 1, labels
    r = cli("train", str(run), "--total-loops", "6")
    assert r.returncode == 0, r.stderr
    assert "using checkpoint " + inter[0][5:-3] in r.stdout
    for a, b in zip(_weights(ref, 6), _weights(run, 6), strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(_curve(ref), _curve(run), strict=True):
        assert np.array_equal(a, b)


def test_checkpoint_from_another_model_is_refused(base, tmp_path):
    run = tmp_path / "other"
    shutil.copytree(base, run)
    other = tmp_path / "other2"
    write_tiny(other, "\n[learning]\npenmu = 0.02\n")
    assert cli("init", str(other)).returncode == 0
    shutil.copy(other / "checkpoints" / "ckpt-0.h5", run / "checkpoints" / "ckpt-7.h5")
    r = cli("train", str(run), "--nloops", "1")
    assert r.returncode == 2
    assert "ckpt-7.h5" in r.stderr and "another model" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.mpi
@requires_mpi
def test_info_reports_the_write_strategy_of_this_build():
    import h5py

    r = run_mpi(2, [*TSN, "info"], timeout=120)
    assert r.returncode == 0, r.stderr
    expected = "mpio" if h5py.get_config().mpi else "turns"
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("checkpoint writes now"))
    assert line.split()[-1] == expected
    assert "size 2" in r.stdout


@pytest.mark.mpi
@requires_mpi
def test_periodic_checkpoints_keep_the_newest_and_resume_bitwise(base, tmp_path):
    """--checkpoint-every 2 keeps ckpt-0, the newest two and the best; resuming from a periodic
    one (on 2 ranks, with wall-time checkpoints after every loop) ends bitwise equal."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    shutil.copytree(base, ref)
    shutil.copytree(base, run)
    assert cli("train", str(ref), "--nloops", "6", "--checkpoint-minutes", "0").returncode == 0
    assert sorted(p.name for p in (ref / "checkpoints").iterdir()) == ["ckpt-0.h5", "ckpt-6.h5"]
    size = (ref / "checkpoints" / "ckpt-6.h5").stat().st_size  # what `tsn-mpi plan` shows
    assert 0.9 * size < plan(load_config(ref / "config.toml"), 1)["checkpoint_bytes"] < size
    r = cli("train", str(run), "--nloops", "6", "--checkpoint-every", "2",
            "--save-best-checkpoint")  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert [n for n in names if "cor" not in n] == ["ckpt-0.h5", "ckpt-4.h5", "ckpt-6.h5"]
    assert len([n for n in names if "cor" in n]) == 1, names
    for a, b in zip(_weights(ref, 6), _weights(run, 6), strict=True):  # checkpoints change nothing
        assert np.array_equal(a, b)
    (run / "checkpoints" / "ckpt-6.h5").unlink()
    r = run_mpi(2, [*TSN, "train", str(run), "--total-loops", "6", "--checkpoint-minutes",
                    "1e-6", "--checkpoint-keep", "0"], timeout=300)  # fmt: skip
    assert r.returncode == 0 and "on 2 rank(s)" in r.stdout, r.stderr
    assert "using checkpoint 4" in r.stdout
    have = {p.name for p in (run / "checkpoints").iterdir()}
    assert {"ckpt-4.h5", "ckpt-5.h5", "ckpt-6.h5"} <= have  # both ranks agreed on each loop
    for a, b in zip(_weights(ref, 6), _weights(run, 6), strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(_curve(ref), _curve(run), strict=True):
        assert np.array_equal(a, b)
