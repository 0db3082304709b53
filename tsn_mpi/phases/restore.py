"""Bring a run back to life from its files: network, checkpoint, cell, time loop and learner.

``train`` resumes this way, and so do the benchmarks that need a trained rank's live objects
(one code path, so a benchmark measures what training holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsn_mpi.errors import CheckpointError
from tsn_mpi.io.checkpoint import read_checkpoint
from tsn_mpi.io.names import checkpoint_dir, find_checkpoint
from tsn_mpi.io.network_file import read_network
from tsn_mpi.phases.common import NETWORK_NAME, Run, build_cell, make_learner, make_simulator


@dataclass
class Restored:
    """A rank's state as a checkpoint left it."""

    attrs: dict
    rows: dict
    globs: dict
    cell: object
    sim: object
    learner: object


def read_run_files(run: Run, checkpoint: str | int | None = None):
    """``(net, init, ck)``: this rank's network and init statistics, and the checkpoint to
    resume from (the newest when ``checkpoint`` is None)."""
    net, init = read_network(run.run_dir / NETWORK_NAME, run.cfg, run.d, run.owned)
    return net, init, find_checkpoint(checkpoint_dir(run.run_dir), checkpoint)


def restore_state(run: Run, net, init: dict, ck, expect: dict | None = None,
                  lazy: tuple[str, ...] = ("P",), with_learner: bool = True
                  ) -> Restored:  # fmt: skip
    """Weights, cell state, time loop and (``with_learner``: training) learner of this rank
    from checkpoint ``ck`` (no collective: callers agree on errors).  ``expect``: attributes
    the checkpoint must match."""
    cfg = run.cfg
    attrs, rows, globs = read_checkpoint(ck.path, run.owned, expect or {}, lazy=lazy)
    net.w_in = np.ascontiguousarray(rows["w_in"], dtype=np.float32)
    net.w_ff = np.ascontiguousarray(rows["w_ff"], dtype=np.float32)
    cell = build_cell(run.ctx(init))
    if "cell_state" in rows:
        cell.state[:] = rows["cell_state"]
    same_p = attrs.get("p_storage") == cfg.learning.p_storage and attrs.get("mode") == "fast"
    if with_learner and cfg.learning.mode == "fast" and not same_p:
        raise CheckpointError(
            f"{ck.path}: P stored as {attrs.get('mode')}/{attrs.get('p_storage')}, config "
            f"asks for fast/{cfg.learning.p_storage}"
        )
    # the simulator first: it releases the incoming static lists before P is allocated
    sim = make_simulator(run, net, cell)
    learner = None
    if with_learner:
        learner = make_learner(run, net, p_rows=rows.pop("P", None),
                               history=globs.get("history"),
                               hist_count=int(attrs.get("hist_count", 0)))  # fmt: skip
    return Restored(attrs, rows, globs, cell, sim, learner)
