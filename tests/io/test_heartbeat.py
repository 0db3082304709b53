"""tsn_mpi.io.heartbeat: rank 0's record of a running phase, and how status judges it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tsn_mpi.errors import DivergenceError, Interrupted, RunInUseError
from tsn_mpi.io.heartbeat import (
    Heartbeat,
    check_not_in_use,
    liveness,
    read_heartbeat,
    stale_after,
)


def test_written_at_start_updates_and_end(tmp_path):
    with Heartbeat(tmp_path, "train", ranks=2, interval=60) as hb:
        first = read_heartbeat(tmp_path)
        assert first["state"] == "running" and first["phase"] == "train"
        assert first["pid"] == os.getpid() and first["host"] == socket.gethostname()
        assert first["ranks"] == 2
        assert liveness(first) == (True, "running")
        hb.update(loop=3, force=True)
        assert read_heartbeat(tmp_path)["loop"] == 3
        hb.update(loop=4)  # under a second after the last write: the thread writes it soon
        assert read_heartbeat(tmp_path)["loop"] == 3
        time.sleep(2.5)
        assert read_heartbeat(tmp_path)["loop"] == 4
        hb.stage("writing network.h5", 0.25)
    last = read_heartbeat(tmp_path)
    assert last["state"] == "finished" and last["loop"] == 4 and last["progress"] == 0.25
    assert last["ended"] >= last["started"]
    assert liveness(last) == (False, "finished")
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat.json"]  # no temporary left


def test_the_thread_keeps_it_fresh(tmp_path):
    with Heartbeat(tmp_path, "init", interval=0.05):
        t0 = read_heartbeat(tmp_path)["updated"]
        time.sleep(0.5)
        assert read_heartbeat(tmp_path)["updated"] > t0


@pytest.mark.parametrize(
    ("exc", "state"),
    [
        (Interrupted("stopped by signal 15"), "interrupted"),
        (KeyboardInterrupt(), "interrupted"),
        (DivergenceError("training diverged at loop 3"), "diverged"),
        (OSError("disk full"), "failed"),
    ],
)
def test_how_a_phase_ended(tmp_path, exc, state):
    with pytest.raises(type(exc)), Heartbeat(tmp_path, "train"):
        raise exc
    hb = read_heartbeat(tmp_path)
    assert hb["state"] == state
    if state == "failed":
        assert hb["error"] == "OSError: disk full"


def test_other_ranks_write_nothing(tmp_path):
    with Heartbeat(tmp_path, "train", active=False) as hb:
        hb.update(loop=1, force=True)
    assert read_heartbeat(tmp_path) is None


def test_a_killed_job_is_not_running(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that existed and is gone
    now = time.time()
    hb = {"state": "running", "pid": proc.pid, "host": socket.gethostname(), "updated": now}
    running, why = liveness(hb, now)
    assert not running and f"process {proc.pid} is gone" in why
    # on another node the pid cannot be checked: the age decides
    far = {**hb, "host": "node-elsewhere", "interval_s": 15.0}
    assert liveness(far, now + 60) == (True, "running")
    running, why = liveness(far, now + stale_after(far) + 1)
    assert not running and "no heartbeat for" in why


def test_unreadable_heartbeat_is_none(tmp_path):
    (tmp_path / "heartbeat.json").write_text("{not json")
    assert read_heartbeat(tmp_path) is None
    (tmp_path / "heartbeat.json").write_text(json.dumps([1, 2]))
    assert read_heartbeat(tmp_path) is None


def test_a_read_only_folder_does_not_stop_the_run(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with Heartbeat(ro, "train") as hb:
            hb.update(loop=1, force=True)
        writable = os.access(ro, os.W_OK)  # root writes anyway
        assert hb.failed_writes == (0 if writable else 3)
    finally:
        ro.chmod(0o700)


def test_a_live_job_keeps_its_run_directory(tmp_path, monkeypatch):
    """A phase refuses a run directory whose heartbeat belongs to another live job, naming
    it; a dead, finished or stale job's heartbeat, its own, or its SLURM job's do not stop it."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    check_not_in_use(tmp_path, "train")  # no heartbeat at all
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        now = time.time()
        hb = {"state": "running", "phase": "train", "pid": proc.pid, "interval_s": 15.0,
              "host": socket.gethostname(), "updated": now, "slurm_job": "41"}  # fmt: skip
        (tmp_path / "heartbeat.json").write_text(json.dumps(hb))
        with pytest.raises(RunInUseError, match=rf"in use by train \(pid {proc.pid} on "):
            check_not_in_use(tmp_path, "test")
        monkeypatch.setenv("SLURM_JOB_ID", "41")  # the same (requeued) SLURM job
        check_not_in_use(tmp_path, "train")
        monkeypatch.setenv("SLURM_JOB_ID", "42")
        with pytest.raises(RunInUseError):
            check_not_in_use(tmp_path, "train")
        for other in ({"state": "finished"}, {"updated": now - 3600},
                      {"pid": os.getpid()}):  # fmt: skip
            (tmp_path / "heartbeat.json").write_text(json.dumps({**hb, **other}))
            check_not_in_use(tmp_path, "train")
    finally:
        proc.kill()
        proc.wait()
    (tmp_path / "heartbeat.json").write_text(json.dumps(hb))  # its process is gone now
    check_not_in_use(tmp_path, "train")
