"""Faults while training: a rank killed, a full disk, a corrupted checkpoint, a full disk for
the figures.  Each ends in one line, an exit code, and nothing intact lost."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests import tmpfs
from tests.conftest import ROOT, cli, write_tiny
from tests.mpirun import TSN, mpi_env, mpiexec, requires_mpi, run_mpi
from tests.procs import descendants

small_fs = tmpfs.small_fs  # fixture: a size-limited tmpfs made by the test
HOOK = str(ROOT / "tests" / "mpi" / "skip_space_check.py")
ROW = ("w_in", "P")


def _rows(run: Path, label) -> tuple[np.ndarray, ...]:
    with h5py.File(run / "checkpoints" / f"ckpt-{label}.h5", "r") as f:
        return tuple(f[f"rows/{k}"][...] for k in ROW)


def _labels(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def _rank_pids(pid: int) -> list[int]:
    ranks = []
    for c in descendants(pid):
        try:
            cmd = Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tsn_mpi" in cmd:
            ranks.append(c)
    return ranks


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    run = tmp_path_factory.mktemp("faults") / "base"
    write_tiny(run)
    r = cli("init", str(run))
    assert r.returncode == 0, r.stderr
    return run


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory):
    """The same run trained 4 loops without interruption (checkpoints 1..4 all kept)."""
    ref = tmp_path_factory.mktemp("faults") / "ref"
    shutil.copytree(base, ref)
    r = cli("train", str(ref), "--nloops", "4", "--checkpoint-every", "1", "--checkpoint-keep",
            "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return ref


@pytest.mark.mpi
@requires_mpi
def test_sigkill_of_one_rank_loses_at_most_one_checkpoint_interval(base, reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base, run)
    p = subprocess.Popen([mpiexec(), "-n", "2", *TSN, "train", str(run), "--nloops", "4",
                          "--checkpoint-every", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=mpi_env(), cwd=ROOT)  # fmt: skip
    rows = 0
    while rows < 2:  # two loops done (and checkpointed): kill a rank inside the third
        line = p.stdout.readline()
        if not line:
            break
        rows += line.strip()[:1].isdigit()
    ranks = _rank_pids(p.pid)
    assert len(ranks) == 2, ranks
    os.kill(ranks[1], signal.SIGKILL)
    p.communicate(timeout=60)  # the job ends: no rank waits forever for the dead one
    assert p.returncode != 0
    have = [c for c in _labels(run) if not c.startswith(".")]
    newest = max(int(c[5:-3]) for c in have if c[5:-3].isdigit())
    assert newest >= 2, have  # at most the loop in progress is lost
    r = run_mpi(
        2, [*TSN, "train", str(run), "--total-loops", "4", "--checkpoint-every", "1"], timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert f"using checkpoint {newest}" in r.stdout and "on 2 rank(s)" in r.stdout
    for a, b in zip(_rows(reference, 4), _rows(run, 4), strict=True):
        assert np.array_equal(a, b)
    assert not [c for c in _labels(run) if c.startswith(".")]  # the killed writer's temp file


def _flip(path: Path, name: str, row: int) -> None:
    with h5py.File(path, "r") as f:
        d = f[name]
        i = d.id.get_offset() + row * d.dtype.itemsize * int(np.prod(d.shape[1:])) + 16
    raw = bytearray(path.read_bytes())
    raw[i : i + 8] = bytes(255 - x for x in raw[i : i + 8])
    path.write_bytes(bytes(raw))


def test_corrupted_checkpoint_is_refused_naming_the_intact_one(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    want = _rows(run, 4)
    _flip(run / "checkpoints" / "ckpt-4.h5", "rows/P", 37)
    r = cli("train", str(run), "--nloops", "1")
    assert r.returncode == 65, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    msg = lines[0]
    assert "ckpt-4.h5" in msg and "'rows/P' row 37 does not match its checksum" in msg
    assert "moved aside as ckpt-4.h5.corrupt" in msg
    assert "newest intact checkpoint is ckpt-3.h5" in msg
    assert "--restore-from-checkpoint 3" in msg
    assert (run / "checkpoints" / "ckpt-4.h5.corrupt").exists()
    _flip(run / "checkpoints" / "ckpt-3.h5", "rows/w_in", 5)  # damaged at rest, found by verify
    r = cli("verify", str(run))
    assert r.returncode == 65 and "CORRUPT" in r.stdout and "ckpt-3.h5" in r.stdout
    assert "newest intact checkpoint: 2" in r.stdout
    r = cli("train", str(run), "--total-loops", "4")  # meets ckpt-3, moves it aside too
    assert r.returncode == 65 and "ckpt-3.h5.corrupt" in r.stderr, r.stderr
    assert "newest intact checkpoint is ckpt-2.h5" in r.stderr
    r = cli("train", str(run), "--total-loops", "4")  # now the newest: ckpt-2
    assert r.returncode == 0, r.stderr
    assert "using checkpoint 2" in r.stdout
    for a, b in zip(want, _rows(run, 4), strict=True):  # loop 4 again: the same bytes
        assert np.array_equal(a, b)
    assert cli("verify", str(run)).returncode == 0


def _fs_for(base: Path, small_fs, spare: int) -> Path:
    """A tmpfs holding a copy of ``base`` with ``spare`` bytes left."""
    used = sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
    fs = small_fs(used + 64 * 1024 + spare)
    run = fs / "run"
    shutil.copytree(base, run)
    return run


@pytest.mark.mpi
@requires_mpi
def test_full_disk_stops_every_rank_with_one_line(base, small_fs):
    run = _fs_for(base, small_fs, 120_000)  # a checkpoint needs ~470 kB
    ck0 = (run / "checkpoints" / "ckpt-0.h5").read_bytes()
    r = run_mpi(2, [*TSN, "train", str(run), "--nloops", "1"], timeout=300)  # no rank hangs
    assert r.returncode == 74, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"tsn-mpi: error: not enough space for {run}/checkpoints/ckpt-1")
    assert "free in" in lines[0] and "nothing was written" in lines[0]
    assert "the older checkpoints are intact (newest: ckpt-0.h5)" in lines[0]
    # past the check (a hook), the write itself fails on a rank: same one line, temp removed
    r = run_mpi(2, [HOOK, "--no-reserve", "train", str(run), "--nloops", "1"], timeout=300)
    assert r.returncode == 74, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no space left on device (ENOSPC)" in lines[0], r.stderr
    assert "the temporary file was removed" in lines[0] and "ckpt-0.h5" in lines[0]
    assert _labels(run) == ["ckpt-0.h5"]
    assert (run / "checkpoints" / "ckpt-0.h5").read_bytes() == ck0
    tmpfs.remount(run.parent, "size=8m")  # room made: the same command now succeeds
    r = run_mpi(2, [*TSN, "train", str(run), "--nloops", "1"], timeout=300)
    assert r.returncode == 0 and "using checkpoint 0" in r.stdout, r.stderr


def test_full_disk_for_the_figures(small_fs):
    from tests.plot.make_fake_outputs import write_test_h5

    fs = small_fs(64 * 1024)
    write_test_h5(fs / "test.h5", ntrials=1)
    r = cli("plot", str(fs / "test.h5"))
    assert r.returncode == 74, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tsn-mpi: error: cannot write {fs}/test-")
    assert "no space left on device (ENOSPC)" in lines[0] and "was not created" in lines[0]
    assert not [p for p in os.listdir(fs) if p.startswith(".")]  # no partial figure left
