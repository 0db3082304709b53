"""Figures drawn from output files only (spec §7.3): test runs, learning curves, sweeps.

Cheap to import: matplotlib and h5py are imported when a figure is drawn.
"""

from __future__ import annotations

from tsn_mpi.plot.figures import (
    NeuronSelectionError,
    plot_learning_curve,
    plot_test,
    psth,
    read_learning_curve,
    read_test,
)
from tsn_mpi.plot.sweep import format_table, gather, plot_sweep

__all__ = [
    "NeuronSelectionError",
    "format_table",
    "gather",
    "plot_learning_curve",
    "plot_sweep",
    "plot_test",
    "psth",
    "read_learning_curve",
    "read_test",
]
