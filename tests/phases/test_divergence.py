"""A NaN in one neuron's P during training: exit 3, the culprit named, checkpoints untouched.

``tests/mpi/inject_nan.py`` patches the learner so that, before one RLS update on one rank, one
entry of one neuron's P becomes NaN.  The run must stop with exit code 3 and one message that
names the loop, the task, the step and the neuron's *global* id; the checkpoints written before
(ckpt-0 from init, ckpt-1 from a first training run) keep their bytes, and nothing is written
for the failing loop.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli, write_tiny
from tests.mpirun import MPI_DIR, mpi_env, requires_mpi, run_mpi_script

N_LEARN = 20  # RLS updates per loop of the tiny config (train_duration 200 / learn_every 10)
STIM_OFF_STEP = 3000  # stim_off 300 ms / dt 0.1 ms
LEARN_STEP = 100  # learn_every 10 ms / dt


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run initialised and trained for one loop: checkpoints ckpt-0 and ckpt-1."""
    run = tmp_path_factory.mktemp("divergence") / "base"
    write_tiny(run)
    for args in (["init", str(run)], ["train", str(run), "--nloops", "1"]):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-0.h5", "ckpt-1.h5"]
    return run


def _hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


# (ranks, rank whose neuron goes bad, its local id, the global id the message must name)
CASES = [
    pytest.param(1, 0, 133, 133, id="serial"),
    # rank 1's first neuron depends on the work-balanced partition: gid read from the output
    pytest.param(2, 1, 5, None, marks=[pytest.mark.mpi, requires_mpi], id="2ranks-rank1"),
    pytest.param(2, 0, 70, 70, marks=[pytest.mark.mpi, requires_mpi], id="2ranks-rank0"),
]


@pytest.mark.parametrize("ranks, bad_rank, lid, gid", CASES)
def test_nan_in_p_stops_training(trained, tmp_path, ranks, bad_rank, lid, gid):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ckdir = run / "checkpoints"
    before = _hashes(ckdir)
    # train loops 2 and 3; the 5th update of loop 3 (this process's update call 25) fails
    call = N_LEARN + 5
    step = STIM_OFF_STEP + 5 * LEARN_STEP
    args = [str(run), str(bad_rank), str(lid), str(call), "--nloops", "2"]
    if ranks == 1:  # the subprocess timeouts stand for "stops promptly, no rank hangs"
        r = subprocess.run(
            [sys.executable, str(MPI_DIR / "inject_nan.py"), "1", *args],
            capture_output=True,
            text=True,
            timeout=90,
            env=mpi_env(),
        )
    else:
        r = run_mpi_script(ranks, "inject_nan.py", *args, timeout=90)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # printed once (rank 0), no MPI_Abort banner
    msg = lines[0]
    expect = f"training diverged at loop 3, task 0, step {step}: "
    assert expect in msg, msg
    poisoned = [int(ln.split()[-1]) for ln in r.stdout.splitlines() if ln.startswith("poisoned")]
    assert len(poisoned) == 1, r.stdout
    if gid is not None:
        assert poisoned[0] == gid
    elif bad_rank == 1:
        assert poisoned[0] >= 128 - 8  # a rank-1 neuron near the middle of 256
    assert f"in neuron(s) {poisoned[0]}; the last checkpoint is unchanged" in msg, msg
    assert f"on {ranks} rank(s)" in r.stdout  # really one job of that many ranks
    # loop 2 finished (its row is printed), loop 3 did not
    rows = [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert rows == ["2"], r.stdout
    # ckpt-0 and ckpt-1 are byte-identical; nothing new (no ckpt-3*, no temporary files)
    assert _hashes(ckdir) == before
