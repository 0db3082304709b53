"""What every network plugin receives: the config, derived values and the owned id range."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tsn_mpi import rng
from tsn_mpi.config import Config, Derived


@dataclass(frozen=True)
class PluginContext:
    """Arguments shared by all plugins.

    ``owned`` is the range of global neuron ids this rank builds (all of them in one process);
    plugins return arrays for those neurons only, so init scales with the rank count.
    ``init`` holds the statistics of the spontaneous init trial once it has run
    (``uavg`` (n_owned,), ``ustd`` float, ``ns`` (N,) spike counts of all neurons).
    """

    cfg: Config
    derived: Derived
    owned: range
    run_dir: Path
    init: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.cfg.run.seed

    def generator(self, purpose: int, gid: int, trial: int = 0) -> np.random.Generator:
        """A numpy Generator keyed by (seed, purpose, gid, trial): rank-count independent."""
        return rng.numpy_generator(self.seed, purpose, gid, trial)

    @property
    def owned_gids(self) -> np.ndarray:
        return np.arange(self.owned.start, self.owned.stop, dtype=np.int64)
