"""``tsn-mpi status DIR``: a finished run, a running one, a killed one, and files in the way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import pytest

from tests.conftest import ROOT, cli, write_tiny
from tsn_mpi.status import format_status, run_status


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny run: init, 3 loops with the best checkpoint kept, 2 test trials."""
    run = tmp_path_factory.mktemp("status") / "run"
    write_tiny(run)
    for args in (
        ("init", str(run)),
        ("train", str(run), "--nloops", "3", "--save-best-checkpoint"),
        ("test", str(run), "--ntrials", "2", "--no-plot"),
    ):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
    return run


def test_finished_run(finished):
    r = cli("status", str(finished))
    assert r.returncode == 0, r.stderr
    text = r.stdout
    lines = text.splitlines()
    assert len(lines) <= 24  # one screen
    assert "N = 256, K = 51, 28 plastic inputs, fast mode, packed float32 P" in text
    assert "job         test finished at" in text and "command: tsn-mpi test" in text
    assert "loops       3 done" in text
    assert "newest ckpt-3.h5 (loop 3" in text and "best ckpt-" in text
    assert "init        network.h5: E " in text
    assert "test        test.h5: 2 trial(s) from checkpoint 3" in text
    assert "writing" not in text
    s = json.loads(cli("status", str(finished), "--json").stdout)
    assert s["job"]["phase"] == "test" and s["job"]["running"] is False
    assert s["loops"]["done"] == 3 and s["checkpoints"]["newest"]["loop"] == 3
    assert 0 < s["progress"]["rate_hz"] < 100 and -1 <= s["progress"]["correlation"] <= 1
    assert s["disk"]["total"] >= s["disk"]["checkpoints"] > 0


def test_running_then_killed(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    env = dict(os.environ, NUMBA_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsn_mpi", "train", str(run), "--nloops", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.time() + 240
        s = run_status(run)
        while not (s["job"]["phase"] == "train" and (s["job"].get("loop") or 0) >= 5):
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
            time.sleep(0.2)
            s = run_status(run)
        assert s["job"]["running"] and s["job"]["pid"] == proc.pid
        assert s["loops"]["planned"] == 100003 and s["loops"]["first_of_job"] == 4
        assert s["progress"]["s_per_loop"] > 0 and s["progress"]["eta_s"] > 0
        text = format_status(s)
        assert "train RUNNING (pid" in text and "of 100003 done (this job: 4..100003)" in text
        assert "ETA" in text
        r = cli("status", str(run), "--json")  # another process, while the job writes
        assert r.returncode == 0 and json.loads(r.stdout)["job"]["running"] is True
        # a second job on the same run directory stops with one line, the heartbeat untouched
        r = cli("train", str(run), "--nloops", "1")
        assert r.returncode == 2, r.stderr
        assert f"is in use by train (pid {proc.pid} on" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert run_status(run)["job"]["pid"] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    s = run_status(run)
    assert not s["job"]["running"] and f"process {proc.pid} is gone" in s["job"]["why"]
    assert "train NOT RUNNING: process" in format_status(s)


def test_files_in_the_way(finished, tmp_path):
    """A checkpoint being written, an incomplete learning curve and a test.h5 held open for
    writing by another process are reported, not fatal; no heartbeat is said plainly."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "heartbeat.json").unlink()
    (run / "checkpoints" / ".ckpt-4.h5.tmp-123").write_bytes(b"x" * 5000)
    with h5py.File(run / "learning-curve.h5", "a") as f:
        f.attrs["complete"] = False
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import h5py, sys, time\n"
            f"f = h5py.File({str(run / 'test.h5')!r}, 'a')\nprint('open', flush=True)\n"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        r = cli("status", str(run))
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 0, r.stderr
    assert "writing     checkpoints/.ckpt-4.h5.tmp-123" in r.stdout
    assert "learning-curve.h5" in r.stdout and "incomplete" in r.stdout
    assert "no heartbeat.json" in r.stdout
    assert "test        " in r.stdout  # read, or reported as unreadable


def test_bad_dir_is_one_line(tmp_path):
    r = cli("status", str(tmp_path / "nope"))
    assert r.returncode == 2 and r.stderr.strip() == (
        f"tsn-mpi: error: {tmp_path / 'nope'}: no such run directory"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("status", str(empty))
    assert r.returncode == 0 and "config.toml not found" in r.stdout
    assert "init        not done" in r.stdout


def test_cli_trial_defaults_and_help():
    """`run` and `test` run enough trials for the figures' median and band by default."""
    from tsn_mpi import cli as cli_mod
    from tsn_mpi.phases.test import DEFAULT_TRIALS

    assert cli_mod.DEFAULT_TRIALS == DEFAULT_TRIALS >= 10
    parser = cli_mod._parser()
    for sub in ("run", "test"):
        args = parser.parse_args([sub, "somedir"])
        assert args.ntrials == DEFAULT_TRIALS and args.force is False
    assert parser.parse_args(["init", "d", "--force"]).force
    r = cli("status", "--help")
    assert r.returncode == 0 and "--json" in r.stdout
