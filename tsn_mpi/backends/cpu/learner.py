"""The CPU learner of a rank: owns P (or the small-mode history) and applies RLS updates.

P lives in memory as AoSoA tiles (n_tiles, L, TILE_W) so the numba kernel streams 32 neurons'
matrices side by side; files hold one row per neuron (``p_rows``/``from_rows``).
float16 storage is carried as uint16 bit patterns (numba has no CPU float16 arithmetic).
"""

from __future__ import annotations

import numpy as np

from tsn_mpi.backends.cpu.rls_fast import rls_fast, rls_fast_full
from tsn_mpi.backends.cpu.rls_small import push_history, rls_small
from tsn_mpi.errors import ConfigError
from tsn_mpi.io.rows import LazyRows
from tsn_mpi.learn.initial_p import initial_p_rows
from tsn_mpi.learn.packed import TILE_W, rows_to_tiles, tile_rows

STORAGE_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
INTEGER_PRECISIONS = ("int16", "int32")


def integer_p_message(precision: str) -> str:
    """The one-line error for integer P storage on the CPU backend."""
    return (f"learning.p_precision = {precision!r}: integer P storage needs --gpu "
            "(run.backend = 'gpu'); the CPU backend stores P as float64, float32 or float16")


def small_history(
    window: int, width: int, mean: bool, history: np.ndarray | None = None
) -> np.ndarray:
    """Small mode's trace history (float64): ``window`` rows of [x_ff; r], then, if ``mean``,
    the running mean of every trace vector seen (see ``rls_small.push_history``); zeros, or a copy
    of ``history`` from a checkpoint, whose shape must match."""
    shape = (window + int(mean), width)
    if history is None:
        return np.zeros(shape, np.float64)
    if np.shape(history) != shape:
        raise ValueError(
            f"checkpointed small-mode history has shape {np.shape(history)}, expected {shape} "
            "(learning.history / learning.history_mean changed?)"
        )
    return np.array(history, dtype=np.float64, order="C")


class CpuLearner:
    """RLS state of the owned neurons (spec §4) and the update at each learning step."""

    def __init__(
        self,
        cfg,
        d,
        net,
        p_rows: np.ndarray | None = None,
        history: np.ndarray | None = None,
        hist_count: int = 0,
    ) -> None:
        lr = cfg.learning
        self.cfg, self.d, self.net = cfg, d, net
        self.mode = lr.mode
        self.storage = lr.p_storage
        self.precision = lr.p_precision
        self.textbook = lr.gain == "textbook"
        self.apply = not lr.benchmark
        n = net.n_owned
        self.bad = np.zeros(n, np.uint8)
        if self.mode == "fast" and self.precision in INTEGER_PRECISIONS:
            # integer P lives on the GPU only (GpuLearner builds P0 itself): init writes no P
            if p_rows is not None:
                raise ConfigError(integer_p_message(self.precision))
            self.P = None
            self.hist = None
            self.hist_count = 0
        elif self.mode == "fast":
            if p_rows is None:
                p_rows = self._initial_rows()
            self.P = self._to_tiles(p_rows)
            self.hist = None
            self.hist_count = 0
        else:
            self.P = None
            self.hist_mean = bool(lr.history_mean)
            self.hist = small_history(d.history, d.l_ff + d.n_cells, self.hist_mean, history)
            self.hist_count = int(hist_count)

    def _initial_rows(self) -> LazyRows:
        """P0 of the owned neurons (spec §4.2), computed block by block while tiling."""
        net, lr, l_ff = self.net, self.cfg.learning, self.d.l_ff
        n = l_ff + net.pl_pre.shape[1]
        length = n * n if self.storage == "full" else n * (n + 1) // 2

        def rows(lo: int, hi: int) -> np.ndarray:
            return initial_p_rows(net.w_in[lo:hi], net.pl_pre[lo:hi] >= 0, l_ff, lr.penlambda,
                                  lr.penlam_ff, lr.penmu, storage=self.storage)  # fmt: skip

        return LazyRows(net.n_owned, length, np.float64, rows)

    def _to_tiles(self, rows: np.ndarray | LazyRows) -> np.ndarray:
        dt = STORAGE_DTYPES[self.precision]
        tiles = rows_to_tiles(rows, TILE_W, dtype=dt)
        return tiles.view(np.uint16) if dt == np.float16 else tiles

    def p_rows(self) -> np.ndarray | None:
        """P of the owned neurons, one row per neuron, in the storage precision."""
        lazy = self.p_rows_lazy()
        return None if lazy is None else np.asarray(lazy)

    def p_rows_lazy(self) -> LazyRows | None:
        """:meth:`p_rows` converted from the tiles block by block as it is read (checkpoints
        of large models never hold P twice)."""
        if self.P is None:
            return None
        tiles = self.P.view(np.float16) if self.P.dtype == np.uint16 else self.P
        return tile_rows(tiles, self.net.n_owned)

    def update(
        self, r_now: np.ndarray, x_ff: np.ndarray, u_bal: np.ndarray, target_row: np.ndarray
    ) -> int:
        """One RLS step for every owned neuron; returns the number of non-finite neurons."""
        net, lr = self.net, self.cfg.learning
        x_ff = np.ascontiguousarray(x_ff, dtype=np.float64)
        target_row = np.ascontiguousarray(target_row, dtype=np.float32)
        if self.mode == "fast" and self.P is None:
            raise ConfigError(integer_p_message(self.precision))
        if self.mode == "fast":
            kernel = rls_fast if self.storage == "packed" else rls_fast_full
            return int(
                kernel(
                    self.P,
                    net.pl_pre,
                    net.w_in,
                    r_now,
                    x_ff,
                    net.w_ff,
                    u_bal,
                    target_row,
                    self.textbook,
                    self.apply,
                    self.bad,
                )
            )
        window = self.hist.shape[0] - self.hist_mean  # the last row is the running mean
        nbad = rls_small(
            net.pl_pre,
            net.w_in,
            r_now,
            x_ff,
            net.w_ff,
            u_bal,
            target_row,
            self.hist,
            min(self.hist_count, window),
            lr.penlambda,
            lr.penlam_ff,
            lr.penmu,
            self.textbook,
            self.apply,
            self.bad,
            mean_row=window if self.hist_mean else -1,
            mean_weight=float(self.hist_count) if self.hist_mean else 0.0,
        )
        self.hist_count = push_history(
            self.hist, x_ff, r_now, self.hist_count, mean=self.hist_mean
        )
        return int(nbad)

    def bad_lids(self) -> np.ndarray:
        return np.nonzero(self.bad)[0]

    def sync_to_host(self) -> None:
        """Nothing to do: the CPU learner updates ``net.w_in`` / ``net.w_ff`` in place (the GPU
        learner copies its device weights back here before checkpoints)."""

    def nbytes(self) -> int:
        return 0 if self.P is None else int(self.P.nbytes)
