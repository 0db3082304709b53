"""Every example config runs `tsn-mpi run` end to end at a reduced size, serially and on 2 ranks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli
from tests.mpirun import TSN, requires_mpi, run_mpi
from tsn_mpi.config import dump_toml, from_dict
from tsn_mpi.config.load import tomllib

EXAMPLES = sorted((ROOT / "configs" / "examples").glob("*.toml"))
REDUCED = {
    "network": {"n_cells": 256, "p_ee": 0.4},
    "simulation": {"stim_on": 200.0, "stim_off": 300.0, "train_duration": 200.0,
                   "u0_skip_time": 100.0},
}


def _reduced(example: Path, run: Path) -> None:
    data = tomllib.loads(example.read_text())
    for section, values in REDUCED.items():
        data.setdefault(section, {}).update(values)
    run.mkdir(parents=True)
    (run / "config.toml").write_text(dump_toml(from_dict(data, str(example))))
    if data.get("targets", {}).get("file") == "psth.h5":
        import subprocess

        subprocess.run([sys.executable, str(ROOT / "configs/examples/make_synthetic_psth.py"),
                        str(run / "psth.h5"), "--n-cells", "256", "--n-time", "20"], check=True)


def test_every_example_is_valid():
    from tsn_mpi.config import load_config

    assert len(EXAMPLES) >= 5
    for ex in EXAMPLES:
        load_config(ex)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_serially(example, tmp_path):
    run = tmp_path / example.stem
    _reduced(example, run)
    r = cli("run", str(run), "--nloops", "2")
    assert r.returncode == 0, r.stderr
    assert (run / "test.h5").exists() and (run / "learning-curve.png").exists()


@pytest.mark.mpi
@requires_mpi
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_on_two_ranks(example, tmp_path):
    run = tmp_path / example.stem
    _reduced(example, run)
    r = run_mpi(2, [*TSN, "run", str(run), "--nloops", "2"], timeout=400)
    assert r.returncode == 0, r.stderr
    assert "on 2 rank(s)" in r.stdout
    assert (run / "test.h5").exists()
