"""Figures of a test run and of a learning curve, from fake files in the real layouts."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest

from tests.plot.make_fake_outputs import write_learning_curve, write_test_h5
from tsn_mpi.errors import DataFileError, TsnError
from tsn_mpi.plot import figures

PDF_MAGIC = b"%PDF"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_figure_file(path):
    head = path.read_bytes()[:8]
    if path.suffix == ".pdf":
        assert head.startswith(PDF_MAGIC), path
    elif path.suffix == ".png":
        assert head == PNG_MAGIC, path
    assert path.stat().st_size > 1000


def test_import_is_cheap():
    """Importing tsn_mpi.plot adds neither matplotlib nor h5py to what tsn_mpi imports."""
    code = (
        "import sys, tsn_mpi, tsn_mpi.errors; before = set(sys.modules); import tsn_mpi.plot; "
        "print(sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] in ('matplotlib', 'h5py')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_psth_hand_made_train():
    edges = [200.0, 210.0, 220.0, 230.0]  # ms, 10 ms bins
    dt = 0.1
    # trial 0: steps 2000 (=200.0 ms, left edge, bin 0), 2050 (205 ms, bin 0), 2100 (bin 1),
    # 1999 (before stim_off: ignored), 2300 (=230 ms, right edge: outside)
    # trial 1: 2299 (229.9 ms, bin 2), 2101 (bin 1)
    trials = [np.array([1999, 2000, 2050, 2100, 2300]), np.array([2101, 2299])]
    hz = figures.psth(trials, dt, edges, ntrials=2)
    np.testing.assert_allclose(hz, np.array([2, 2, 1]) / 2 / 0.010)
    # the divisor is ntrials, not the number of lists given (trials without spikes)
    np.testing.assert_allclose(figures.psth(trials, dt, edges, ntrials=4), hz / 2)
    # float rounding of step*dt must not move a spike across an edge: 3*0.1 ms = 0.3 ms
    hz = figures.psth([np.array([3])], 0.1, [0.0, 0.3, 0.6], 1)
    np.testing.assert_allclose(hz, [0, 1 / 0.0003])


def test_psth_rejects_bad_input():
    with pytest.raises(ValueError, match="increasing"):
        figures.psth([np.array([1])], 0.1, [1.0, 1.0, 2.0], 1)
    with pytest.raises(ValueError, match="ntrials"):
        figures.psth([np.array([1])], 0.1, [0.0, 1.0], 0)


def test_median_mad():
    x = np.array([[1.0], [2.0], [4.0]])
    med, mad = figures.median_mad(x)
    assert med[0] == 2.0
    assert mad[0] == pytest.approx(1.4826 * 1.0)


@pytest.mark.parametrize(("n", "shape"), [(1, (1, 1)), (3, (1, 3)), (5, (2, 3)), (16, (4, 4))])
def test_grid_shape(n, shape):
    assert figures.grid_shape(n) == shape


def test_select_neurons():
    recorded = list(range(100, 130))
    assert figures.select_neurons(recorded, None) == list(range(16))  # default capped at 16
    assert figures.select_neurons(recorded[:5], None) == list(range(5))
    assert figures.select_neurons(recorded, [120, 101, 120]) == [20, 1]
    with pytest.raises(ValueError, match=r"neurons 5, 999 were not recorded") as e:
        figures.select_neurons(recorded, [101, 5, 999])
    assert isinstance(e.value, TsnError)
    with pytest.raises(ValueError, match="no neurons"):
        figures.select_neurons(recorded, [])


def test_plot_test_writes_every_file(tmp_path):
    test_file = write_test_h5(tmp_path / "test.h5", ntasks=2)
    out = tmp_path / "figs"
    written = figures.plot_test(test_file, out_dir=out)
    expected = {
        f"test-{kind}-task{k}.{fmt}"
        for kind in ("syninput", "psth")
        for k in (0, 1)
        for fmt in ("pdf", "png")
    }
    assert {p.name for p in written} == expected
    for p in written:
        assert p.parent == out
        assert_figure_file(p)
    assert plt.get_fignums() == []


def test_plot_test_subset_rates_and_default_dir(tmp_path):
    test_file = write_test_h5(tmp_path / "test.h5", ntasks=1, cap=5)
    rates = np.full((20, 50), 3.0)
    written = figures.plot_test(test_file, neurons=[42, 3], formats=("png",), rates=rates)
    assert sorted(p.name for p in written) == ["test-psth-task0.png", "test-syninput-task0.png"]
    assert all(p.parent == tmp_path for p in written)
    with pytest.raises(ValueError, match="neurons 4 were not recorded"):
        figures.plot_test(test_file, neurons=[3, 4], formats=("png",))
    with pytest.raises(ValueError, match="rates must be"):
        figures.plot_test(test_file, formats=("png",), rates=np.ones((7, 50)))
    with pytest.raises(ValueError, match="unsupported figure format"):
        figures.plot_test(test_file, formats=("docx",))
    assert plt.get_fignums() == []


def test_read_test_selects_columns_and_spikes(tmp_path):
    spikes = {(0, 0, 1): [2001, 2500], (1, 0, 1): [3000], (0, 0, 0): [2100]}
    test_file = write_test_h5(
        tmp_path / "test.h5", neurons=(5, 9), ntrials=2, ntasks=1, spikes=spikes, cap=1
    )
    data = figures.read_test(test_file, [9])
    assert data.gids.tolist() == [9]
    assert data.utotal.shape == (2, 1, 20, 1)
    assert data.spike_steps[0][0][0].tolist() == [2001]  # capped at 1 stored spike
    assert data.spike_steps[1][0][0].tolist() == [3000]
    assert data.capped.tolist() == [True]
    np.testing.assert_allclose(data.edges_ms()[[0, -1]], [200.0, 400.0])
    np.testing.assert_allclose(data.times_s()[[0, -1]], [0.01, 0.2])


def test_incomplete_or_missing_test_file(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        figures.plot_test(tmp_path / "nope.h5")
    f = write_test_h5(tmp_path / "test.h5", complete=False)
    with pytest.raises(DataFileError, match="incomplete"):
        figures.plot_test(f)


def test_plot_learning_curve(tmp_path):
    cor = [np.nan, 0.2, np.nan, 0.5, 0.6, 0.7]
    curve = write_learning_curve(
        tmp_path / "learning-curve.h5", cor, task=[0, 1, 0, 1, 0, 1], n_nan=[0, 0, 0, 2, 0, 0]
    )
    written = figures.plot_learning_curve(curve)
    assert sorted(p.name for p in written) == ["learning-curve.pdf", "learning-curve.png"]
    for p in written:
        assert_figure_file(p)
    # a curve without any measured correlation still plots
    none = write_learning_curve(tmp_path / "none.h5", [np.nan, np.nan])
    assert figures.plot_learning_curve(none, out_dir=tmp_path / "x", formats=["png"])
    assert plt.get_fignums() == []


def test_learning_curve_errors(tmp_path):
    bad = write_learning_curve(tmp_path / "lc.h5", [0.1], complete=False)
    with pytest.raises(DataFileError, match="incomplete"):
        figures.read_learning_curve(bad)
    with pytest.raises(DataFileError, match="does not exist"):
        figures.read_learning_curve(tmp_path / "missing.h5")
