"""What a person reads: init's stages with their times, rates with at most 3 decimals, the
training table rounded, no control characters in a log (stdout is a pipe here)."""

from __future__ import annotations

import re

from tests.conftest import cli, write_tiny
from tsn_mpi.io.heartbeat import read_heartbeat

STAGES = (
    "static connectivity",
    "init trial (spontaneous activity)",
    "plastic partners",
    "targets and stimulus",
    "writing network.h5",
    "initial P",
    "writing ckpt-0.h5 (initial weights and P)",
)
TIME = r"(\d+\.\d{1,2} s|\d+ min \d\d s|\d+ h \d\d min)"


def test_init_and_train_output(tmp_path):
    run = tmp_path / "run"
    write_tiny(run)
    r = cli("init", str(run))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert lines[0] == "init: 256 neurons on 1 rank(s), K = 51, 28 plastic inputs per neuron"
    done = [ln for ln in lines if not ln.split(":")[-1].strip().endswith("%)")]
    for stage in STAGES:
        assert any(re.fullmatch(re.escape(stage) + ": " + TIME, ln) for ln in done), stage
    for pop in ("excitatory", "inhibitory"):
        assert any(re.fullmatch(rf"mean {pop} firing rate: \d+\.\d{{3}} Hz", ln) for ln in lines)
    assert re.search(r"^init done in " + TIME + ": ", out, re.M)
    assert read_heartbeat(run)["phase"] == "init" and read_heartbeat(run)["state"] == "finished"

    r = cli("train", str(run), "--nloops", "3")
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert len(rows) == 3
    for row in rows:
        # loop, task, elapsed (3 decimals), rate (3 decimals), correlation (4), eta ...
        assert re.fullmatch(r"\d+\.\d{3}", row[2]) and re.fullmatch(r"\d+\.\d{3}", row[3])
        assert re.fullmatch(r"-?\d\.\d{4}", row[4]) and row[5] == "eta"
    assert rows[-1][5:] == ["eta", "0.00", "s"]
    hb = read_heartbeat(run)
    assert (hb["phase"], hb["state"], hb["loop"], hb["first_loop"], hb["last_loop"]) == (
        "train",
        "finished",
        3,
        1,
        3,
    )
