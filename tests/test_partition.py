"""The partition of global neuron ids over ranks (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from tsn_mpi.errors import ConfigError
from tsn_mpi.partition import partition


@pytest.mark.parametrize("n, size", [(10, 3), (4096, 2), (7, 7), (1000, 64)])
def test_partition_covers_all_ids_contiguously(n, size):
    p = partition(n, size)
    counts = p.counts()
    assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert [r.start for r in (p.range_of(i) for i in range(size))] == list(p.starts[:-1])
    gids = np.arange(n)
    owners = p.owner_of(gids)
    for r in range(size):
        assert np.all(owners[p.range_of(r).start : p.range_of(r).stop] == r)


def test_partition_by_work_balances_cost():
    work = np.r_[np.full(50, 10.0), np.ones(50)]
    p = partition(100, 2, work)
    w0 = work[: p.starts[1]].sum()
    assert abs(w0 - work.sum() / 2) <= 10


def test_partition_rejects_more_ranks_than_neurons():
    with pytest.raises(ConfigError, match="smaller than the 8 ranks"):
        partition(4, 8)
