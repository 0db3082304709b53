"""Held-out trials: a deterministic split by seed, stratified by condition.

Each condition's trials are permuted by a numpy PCG64 generator seeded with
``(seed, condition index)``; the first ``round(fraction * n)`` (at least 1 when fraction > 0,
at most n - 1) are held out.  A second permutation deals every trial into two halves for the
data's split-half reliability.  The split depends only on the seed, the trial order of the file
and the condition labels, never on the machine or the number of ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tsn_mpi.errors import DataFileError


@dataclass
class Split:
    """heldout: (n_trials,) bool; half: (n_trials,) int8 in {0, 1}."""

    heldout: NDArray[np.bool_]
    half: NDArray[np.int8]

    def counts(self, cond: NDArray[np.int64], n_cond: int) -> tuple[NDArray, NDArray]:
        """(training trials, held-out trials) per condition."""
        held = np.bincount(cond[self.heldout], minlength=n_cond)
        total = np.bincount(cond, minlength=n_cond)
        return total - held, held


def split_trials(cond: NDArray[np.int64], names: list[str], fraction: float, seed: int,
                 source: str) -> Split:  # fmt: skip
    """Hold out ``fraction`` of each condition's trials (see the module docstring).

    cond: (n_trials,) condition index per trial; names: condition labels (for messages).
    A condition with a single trial cannot be split: DataFileError unless fraction is 0.
    """
    n = cond.size
    heldout = np.zeros(n, bool)
    half = np.zeros(n, np.int8)
    for c, name in enumerate(names):
        idx = np.flatnonzero(cond == c)
        if fraction > 0 and idx.size < 2:
            raise DataFileError(
                f"{source}: condition {name!r} has {idx.size} trial; holding out trials needs "
                "at least 2 per condition (or set data.heldout_fraction = 0)"
            )
        g = np.random.Generator(np.random.PCG64([int(seed), c]))
        perm = g.permutation(idx)
        if fraction > 0:
            k = min(max(int(round(fraction * idx.size)), 1), idx.size - 1)
            heldout[perm[:k]] = True
        half[g.permutation(idx)[1::2]] = 1
    return Split(heldout, half)
