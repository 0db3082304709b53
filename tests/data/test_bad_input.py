"""Bad recordings: one line naming the file and the problem, exit code 2, nothing written."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from tests.conftest import cli
from tests.data.recordings import psth_h5, requires_pynwb, small, sonata_files
from tsn_mpi.cli import main


def run_new(capsys, run, *args):
    code = main(["new", str(run), *args])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_refused(code, err, run, *words):
    assert code == 2
    assert "\n" not in err and err.startswith("tsn-mpi: error: "), err
    for w in words:
        assert w in err, err
    assert not run.exists() or not any(run.iterdir()), list(run.iterdir())


def _nwb(path, units: list | None, trials=((0.5, 1.0), (1.5, 2.0))):
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(
        session_description="t",
        identifier="t",
        session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    )
    for a, b in trials:
        nwb.add_trial(start_time=a, stop_time=b)
    for st in units or []:
        nwb.add_unit(spike_times=st)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@requires_pynwb
def test_nwb_without_units(tmp_path, capsys):
    f = _nwb(tmp_path / "e.nwb", None)
    assert_refused(
        *run_new(capsys, tmp_path / "run", "--data", str(f)),
        tmp_path / "run",
        "e.nwb",
        "has no units",
    )


@requires_pynwb
def test_nwb_units_without_spikes(tmp_path, capsys):
    f = _nwb(tmp_path / "s.nwb", [[], []])
    assert_refused(
        *run_new(capsys, tmp_path / "run", "--data", str(f)),
        tmp_path / "run",
        "s.nwb",
        "none of its 2 units has a spike",
    )


def _csv(tmp_path, rows):
    p = tmp_path / "trials.csv"
    p.write_text("start_time,stop_time,condition\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    return p


@pytest.mark.parametrize(
    "rows, words",
    [
        ([(1.0, 1.4, "a"), (1.3, 1.7, "a")], ["overlap"]),
        (
            [(1000.0, 1000.4, "a"), (2000.0, 2000.4, "a")],
            ["outside the recording", "spikes.h5", "seconds"],
        ),
        ([(1.0, 1.4, "a"), (2.0, 2.4, "a"), (3.0, 3.4, "b")], ["condition 'b' has 1 trial"]),
    ],
)
def test_bad_trials(tmp_path, capsys, rows, words):
    spikes, _ = sonata_files(tmp_path, small())
    csv = _csv(tmp_path, rows)
    code, err = run_new(capsys, tmp_path / "run", "--data", str(spikes), "--trials", str(csv))
    assert_refused(code, err, tmp_path / "run", "trials.csv", *words)


def test_nan_in_a_psth_array(tmp_path, capsys):
    x = np.ones((4, 2, 30))
    x[2, 1, 7] = np.nan
    f = psth_h5(tmp_path / "p.h5", x)
    assert_refused(
        *run_new(capsys, tmp_path / "run", "--data", str(f)),
        tmp_path / "run",
        "p.h5",
        "NaN",
        "unit 2, condition 1, bin 7",
    )


def test_bin_width_that_does_not_divide_the_trial(tmp_path, capsys):
    spikes, csv = sonata_files(tmp_path, small(trial_s=0.4))
    code, err = run_new(
        capsys, tmp_path / "run", "--data", str(spikes), "--trials", str(csv), "--bin-width", "30"
    )
    assert_refused(
        code,
        err,
        tmp_path / "run",
        "spikes.h5",
        "data.bin_width = 30 ms does not divide the trial window of 400 ms",
    )


def test_data_options_need_data_and_the_real_cli_says_so(tmp_path):
    r = cli("new", str(tmp_path / "run"), "--bin-width", "5")
    assert r.returncode == 2 and "--bin-width needs --data FILE" in r.stderr
    assert not (tmp_path / "run").exists()


def test_evaluate_needs_a_scored_test_run(tmp_path, capsys):
    spikes, csv = sonata_files(tmp_path, small(units=8, trials=4, trial_s=0.2))
    run = tmp_path / "run"
    assert main(["--quiet", "new", str(run), "--data", str(spikes), "--trials", str(csv)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tsn-mpi: error: ") and "test.h5: not found" in err and "\n" not in err
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "data-fit.h5: not found" in capsys.readouterr().err
