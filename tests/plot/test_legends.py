"""Figure legends list only what is drawn: one trial gives one model line, several give the
median, its MAD band and trial 0."""

from __future__ import annotations

import numpy as np
import pytest

from tests.plot.make_fake_outputs import write_test_h5
from tsn_mpi.plot import figures


def _legends(monkeypatch, tmp_path, ntrials: int) -> dict[str, list[tuple[str, object]]]:
    """Legend labels of the first panel of each figure, with the artist each one names."""
    seen: dict[str, list[tuple[str, object]]] = {}
    save = figures.save_figure

    def capture(fig, stem, fmts):
        ax = fig.axes[0]
        handles, labels = ax.get_legend_handles_labels()
        assert ax.get_legend() is not None
        shown = [t.get_text() for t in ax.get_legend().get_texts()]
        assert shown == labels
        seen[stem.name] = list(zip(labels, handles, strict=True))
        return save(fig, stem, fmts)

    monkeypatch.setattr(figures, "save_figure", capture)
    path = write_test_h5(tmp_path / "test.h5", ntrials=ntrials, ntasks=1)
    figures.plot_test(path, formats=("png",))
    return seen


def _drawn(artist) -> bool:
    """True when the artist puts something visible on the axes."""
    if hasattr(artist, "get_ydata"):
        y = np.asarray(artist.get_ydata(), dtype=float)
        return y.size > 1 and bool(np.isfinite(y).any())
    paths = artist.get_paths()  # the MAD band
    return any(np.ptp(p.vertices[:, 1]) > 0 for p in paths)


@pytest.mark.parametrize("ntrials", [1, 10])
def test_every_legend_entry_is_drawn(monkeypatch, tmp_path, ntrials):
    seen = _legends(monkeypatch, tmp_path, ntrials)
    syn = seen["test-syninput-task0"]
    for label, artist in syn + seen["test-psth-task0"]:
        assert _drawn(artist), label
    labels = [label for label, _ in syn]
    if ntrials == 1:
        assert labels == ["data", "model (1 trial)"]
    else:
        assert labels == ["data", "model ± MAD", "model (median of 10 trials)", "model, trial 0"]


def test_no_band_where_trials_agree(monkeypatch, tmp_path):
    """Identical trials: the MAD is zero, so no band and no legend entry for it."""
    import h5py

    seen = {}
    path = write_test_h5(tmp_path / "test.h5", ntrials=3, ntasks=1)
    with h5py.File(path, "a") as f:
        u = f["utotal"][()]
        f["utotal"][...] = np.broadcast_to(u[:1], u.shape)
    save = figures.save_figure

    def capture(fig, stem, fmts):
        seen[stem.name] = fig.axes[0].get_legend_handles_labels()[1]
        return save(fig, stem, fmts)

    monkeypatch.setattr(figures, "save_figure", capture)
    figures.plot_test(path, formats=("png",))
    assert seen["test-syninput-task0"] == ["data", "model (median of 3 trials)", "model, trial 0"]
