"""Global neuron ids <-> ranks: contiguous, work-balanced ranges (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Partition:
    """Contiguous ranges of global neuron ids: rank r owns [starts[r], starts[r+1])."""

    starts: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.starts) - 1

    @property
    def n_cells(self) -> int:
        return self.starts[-1]

    def range_of(self, rank: int) -> range:
        return range(self.starts[rank], self.starts[rank + 1])

    def counts(self) -> NDArray[np.int64]:
        return np.diff(np.asarray(self.starts, dtype=np.int64))

    def owner_of(self, gids: NDArray) -> NDArray[np.int64]:
        """Rank owning each global id."""
        return np.searchsorted(np.asarray(self.starts[1:]), gids, side="right").astype(np.int64)


def partition(n_cells: int, size: int, work: NDArray | None = None) -> Partition:
    """Split ``n_cells`` neurons into ``size`` contiguous ranges.

    Without ``work`` the ranges differ by at most one neuron.  With ``work`` (per-neuron cost,
    e.g. 1 + incoming connections / 64) the cut points balance the cumulative work.
    """
    if size < 1:
        raise ValueError("size must be >= 1")
    if n_cells < size:
        from tsn_mpi.errors import ConfigError

        raise ConfigError(
            f"network.n_cells = {n_cells} is smaller than the {size} ranks launched"
        )
    if work is None:
        base, extra = divmod(n_cells, size)
        starts = [0]
        for r in range(size):
            starts.append(starts[-1] + base + (1 if r < extra else 0))
        return Partition(tuple(starts))
    cum = np.concatenate(([0.0], np.cumsum(np.asarray(work, dtype=np.float64))))
    targets = cum[-1] * np.arange(1, size) / size
    cuts = np.searchsorted(cum, targets, side="left")
    starts = [0]
    for r, c in enumerate(cuts, start=1):
        lo = starts[-1] + 1
        hi = n_cells - (size - r)
        starts.append(int(min(max(c, lo), hi)))
    starts.append(n_cells)
    return Partition(tuple(starts))
