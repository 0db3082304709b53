"""Readers: NWB (pynwb), SONATA spikes with a CSV/TOML trials file, PSTH arrays."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data.recordings import nwb_file, psth_h5, requires_pynwb, small, sonata_files
from tsn_mpi.data.nwb import read_nwb
from tsn_mpi.data.psth_array import read_psth
from tsn_mpi.data.recording import check_recording
from tsn_mpi.data.sonata import read_sonata
from tsn_mpi.data.trials import read_trials
from tsn_mpi.errors import DataFileError


@requires_pynwb
def test_nwb_gives_back_the_written_spikes_and_trials(tmp_path):
    rec = small()
    got = read_nwb(nwb_file(tmp_path / "r.nwb", rec))
    assert got.n_units == rec.n_units and np.array_equal(got.indptr, rec.indptr)
    assert np.allclose(got.times, rec.times)
    assert np.allclose(got.trials.start, rec.start) and np.allclose(got.trials.align, rec.start)
    assert got.trials.condition.tolist() == rec.condition.tolist()
    check_recording(got)
    one = read_nwb(tmp_path / "r.nwb", condition="no_such_column")
    assert one.trials.conditions() == ["all"]
    with pytest.raises(DataFileError, match="no column 'cue_time'"):
        read_nwb(tmp_path / "r.nwb", align="cue_time")


def test_sonata_and_trials_csv_match_the_recording(tmp_path):
    rec = small()
    spikes, csv = sonata_files(tmp_path, rec)
    got = read_sonata(spikes, csv)
    assert np.array_equal(got.indptr, rec.indptr) and np.allclose(got.times, rec.times)
    assert got.trials.condition.tolist() == rec.condition.tolist()
    check_recording(got)
    with pytest.raises(DataFileError, match="no population 'v1'.*found cortex"):
        read_sonata(spikes, csv, population="v1")
    with pytest.raises(DataFileError, match="needs a trials file"):
        read_sonata(spikes, "")


def test_trials_toml_with_an_alignment_column(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text(
        '[[trials]]\nstart_time = 1.0\nstop_time = 2.0\ncue = 1.25\ncondition = "a"\n'
        '[[trials]]\nstart_time = 3\nstop_time = 4\ncue = 3.5\ncondition = "b"\n'
    )
    t = read_trials(p, align="cue")
    assert t.align.tolist() == [1.25, 3.5] and t.conditions() == ["a", "b"]
    assert read_trials(p, condition="stimulus").conditions() == ["all"]
    (tmp_path / "bad.csv").write_text("start,stop\n1,2\n")
    with pytest.raises(DataFileError, match="'start_time' column"):
        read_trials(tmp_path / "bad.csv")


def test_psth_arrays_npy_and_h5(tmp_path):
    x = np.random.default_rng(0).uniform(0, 20, size=(7, 2, 50))
    np.save(tmp_path / "p.npy", x)
    a = read_psth(tmp_path / "p.npy", 20.0)
    assert a.bin_ms == 20.0 and a.conditions == ["c0", "c1"] and a.heldout is None
    b = read_psth(psth_h5(tmp_path / "p.h5", x, 10.0, heldout=x * 0.5), None)
    assert b.bin_ms == 10.0 and np.allclose(b.heldout, x * 0.5)
    with pytest.raises(DataFileError, match="bin_width_ms = 10 in the file but data.bin_width"):
        read_psth(tmp_path / "p.h5", 20.0)
    np.save(tmp_path / "q.npy", x[:, 0])  # 2-D: one condition
    assert read_psth(tmp_path / "q.npy", 10.0).psth.shape == (7, 1, 50)
