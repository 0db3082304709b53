"""Run the network plugins for the owned neurons and assemble this rank's :class:`Network`.

Data flow of ``init``: static lists are generated for the *presynaptic* neurons each rank owns
(fixed out-degree, spec §9.1) and sent with one Alltoallv per block to the ranks owning the
postsynaptic neurons, which keep them as incoming CSR sorted by presynaptic id (8 bytes per
synapse in flight, 4 kept when weights follow the populations).  Plastic
partners, targets and stimulus are generated directly for the owned postsynaptic neurons.
Nothing of size O(N × anything) is ever held by one rank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba.typed import List

from tsn_mpi.comm.agree import agree
from tsn_mpi.config import load_plugin
from tsn_mpi.errors import PluginError, TsnError
from tsn_mpi.network.csr import (
    counting_order,
    incoming_from_chunks,
    population_rule,
    remap_codes,
    small_codebook,
)
from tsn_mpi.network.stimulus import OnlineOU

STATIC_BLOCK = 8192  # presynaptic neurons generated per Alltoallv round


@dataclass
class Network:
    """Everything the owned neurons need, indexed by local id (lid = gid - owned.start)."""

    n_cells: int
    owned: range
    st_indptr: np.ndarray          # (n_owned+1,) int64 incoming static CSR
    st_pre: np.ndarray             # (nnz,) int32 presynaptic gids, increasing per post
    st_code: np.ndarray            # (nnz,) uint8 index into st_table, int32 arange, or empty
    st_table: np.ndarray           # (n_codes,) float32 distinct static weights, or by population
    pl_pre: np.ndarray             # (n_owned, m) int32 plastic presynaptic gids, -1 = none
    w_in: np.ndarray               # (n_owned, m) float32 plastic weights
    w_ff: np.ndarray               # (n_owned, l_ff) float32 feed-forward plastic weights
    targets: np.ndarray            # (ntasks, n_learn, n_owned) float32
    stimulus: Any                  # OnlineOU or (ntasks, n_stim_steps, n_owned) float32
    ff_rates: np.ndarray           # (n_ff_steps, l_ff) float64, same on every rank
    extra: dict[str, Any] = field(default_factory=dict)
    # True: no per-synapse codes; st_table = weights [E->E, E->I, I->E, I->I] by population
    st_by_population: bool = False

    @property
    def n_owned(self) -> int:
        return len(self.owned)


def call_plugin(fn, key: str, spec: str, *args: Any) -> Any:
    """``fn(*args)``; an exception raised by a user's plugin becomes a one-line PluginError
    naming the setting and the plugin's line (bugs in tsn_mpi's own plugins stay bugs)."""
    try:
        return fn(*args)
    except TsnError:
        raise
    except Exception as exc:
        if str(getattr(fn, "__module__", "")).startswith("tsn_mpi."):
            raise
        import traceback

        frame = traceback.extract_tb(exc.__traceback__)[-1]
        text = " ".join(str(exc).split())
        raise PluginError(
            f"{key} = {spec!r} raised {type(exc).__name__}: {text} "
            f"({frame.filename}:{frame.lineno})"
        ) from exc


def _check_array(name: str, arr: Any, shape: tuple[int, ...], key: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise PluginError(f"{key}: {name} has shape {arr.shape}, expected {shape}")
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        raise PluginError(f"{key}: {name} contains non-finite values")
    return arr


def build_static(ctx, comm, part, progress: Callable[[int, int], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:  # fmt: skip
    """Incoming static CSR of the owned neurons: (indptr, pre gids, codes, weight table,
    by_population).  ``progress(done, total)``, if given, is called after each block of
    presynaptic neurons (``total`` = blocks + 1: the last step sorts the incoming lists).

    When every weight depends only on the populations of its pre and post neuron (the default
    plugin), no weight or code is stored per synapse: ``codes`` is empty and ``table`` holds
    the four weights ``[E->E, E->I, I->E, I->I]`` (``by_population`` True); 4 bytes per
    synapse instead of 5.  Otherwise codes index a table of the distinct weights (uint8) or,
    with more than 256 of them, the weights are kept per synapse.
    """
    key, spec = "network.static_plugin", ctx.cfg.network.static_plugin
    fn = agree(comm, lambda: load_plugin(spec, key, ctx.run_dir))
    owned, n, n_exc = ctx.owned, ctx.derived.n_cells, ctx.derived.n_exc
    n_blocks = int(comm.allreduce_max(np.array([-(-len(owned) // STATIC_BLOCK)]))[0])
    received: list[list[np.ndarray]] = [[] for _ in range(comm.size)]
    rule = np.zeros(4, np.float32)  # weights by population agreed so far
    rule_seen = np.zeros(4, bool)
    by_population = True
    for b in range(n_blocks):
        pres = range(
            min(owned.start + b * STATIC_BLOCK, owned.stop),
            min(owned.start + (b + 1) * STATIC_BLOCK, owned.stop),
        )
        # agreed: a plugin failing on one rank must not leave the others in the Alltoallv
        indptr, post, w = agree(comm, lambda pres=pres: _static_block(fn, ctx, pres, key, n))
        pre_ids = np.repeat(np.arange(pres.start, pres.stop, dtype=np.int32), np.diff(indptr))
        ok, table, seen = population_rule(pre_ids, post, w, n_exc)
        # every rank's block must follow one common rule, consistent with earlier blocks
        for r_ok, r_table, r_seen in comm.allgather_obj((bool(ok), table, seen)):
            both = rule_seen & r_seen
            ok_r = r_ok and bool(np.all(rule[both] == r_table[both]))
            rule = np.where(rule_seen, rule, r_table).astype(np.float32)
            rule_seen = rule_seen | r_seen
            by_population = by_population and ok_r
        block_rule = by_population
        dest = part.owner_of(post) if comm.size > 1 else np.zeros(post.size, np.int64)
        order, dptr = counting_order(dest, comm.size)
        send = np.empty((post.size, 2 if block_rule else 3), dtype=np.int32)
        send[:, 0] = pre_ids[order]
        send[:, 1] = post[order]
        if not block_rule:
            send[:, 2] = w[order].view(np.int32)
        del pre_ids, post, w, order
        recv, rcounts = comm.alltoallv(send, np.diff(dptr))
        offs = np.concatenate(([0], np.cumsum(rcounts)))
        for r in range(comm.size):
            received[r].append(recv[offs[r] : offs[r + 1]])
        del send, recv
        if progress is not None:
            progress(b + 1, n_blocks + 1)
    chunks = List()
    for per_rank in received:  # rank-major = increasing presynaptic id
        for c in per_rank:
            chunks.append(np.ascontiguousarray(c))
    if len(chunks) == 0:
        chunks.append(np.zeros((0, 2), np.int32))
    del received
    indptr, pre, wbits = incoming_from_chunks(chunks, owned.start, len(owned), n_exc,
                                              rule.view(np.int32))  # fmt: skip
    del chunks
    if by_population:
        return indptr, pre, np.zeros(0, np.uint8), rule, True
    w = wbits.view(np.float32)
    codes, table, ok = small_codebook(w, 256)
    ok_all = bool(comm.allreduce_max(np.array([0 if ok else 1]))[0] == 0)
    if ok_all:
        tables = comm.allgather_obj(np.asarray(table))
        gtable = np.unique(np.concatenate(tables)).astype(np.float32)
        if gtable.size <= 256:
            mapping = np.searchsorted(gtable, table).astype(np.int64)
            return indptr, pre, remap_codes(codes, mapping), gtable, False
    # many distinct weights: store them directly (code = position)
    return indptr, pre, np.arange(w.size, dtype=np.int32), w.copy(), False


def _static_block(fn, ctx, pres: range, key: str, n: int):
    indptr, post, w = call_plugin(fn, key, ctx.cfg.network.static_plugin, ctx, pres)
    indptr = np.asarray(indptr, dtype=np.int64)
    if indptr.shape != (len(pres) + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise PluginError(f"{key}: indptr must be non-decreasing of length {len(pres) + 1}")
    post = np.asarray(post).astype(np.int32, copy=False)
    w = np.asarray(w, dtype=np.float32)
    if post.shape != (indptr[-1],) or w.shape != post.shape:
        raise PluginError(f"{key}: post ids and weights must have indptr[-1] entries")
    if post.size and (post.min() < 0 or post.max() >= n):
        raise PluginError(f"{key}: postsynaptic ids out of range [0, {n})")
    return indptr, post, w


def build_plastic(ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    key = "plastic.plugin"
    fn = load_plugin(ctx.cfg.plastic.plugin, key, ctx.run_dir)
    d, n_owned = ctx.derived, len(ctx.owned)
    pre, w, w_ff = call_plugin(fn, key, ctx.cfg.plastic.plugin, ctx)
    pre = _check_array("pre", pre, (n_owned, d.n_plastic), key).astype(np.int32)
    w = _check_array("weights", w, (n_owned, d.n_plastic), key).astype(np.float32)
    w_ff = _check_array("ff weights", w_ff, (n_owned, d.l_ff), key).astype(np.float32)
    if pre.size and (pre.min() < -1 or pre.max() >= d.n_cells):
        raise PluginError(f"{key}: presynaptic ids out of range [0, {d.n_cells}) (-1 = none)")
    w[pre < 0] = 0.0
    return pre, w, w_ff


def build_targets(ctx) -> np.ndarray:
    key = "targets.plugin"
    fn = load_plugin(ctx.cfg.targets.plugin, key, ctx.run_dir)
    d, n_owned = ctx.derived, len(ctx.owned)
    tasks = ctx.init.get("itasks", list(range(d.ntasks)))
    out = np.empty((len(tasks), d.n_learn, n_owned), dtype=np.float32)
    for q, task in enumerate(tasks):
        r = call_plugin(fn, key, ctx.cfg.targets.plugin, ctx, task)
        out[q] = _check_array(f"task {task}", r, (d.n_learn, n_owned), key)
    return out


def build_stimulus(ctx) -> Any:
    key = "stimulus.plugin"
    fn = load_plugin(ctx.cfg.stimulus.plugin, key, ctx.run_dir)
    d, n_owned = ctx.derived, len(ctx.owned)
    tasks = ctx.init.get("itasks", list(range(d.ntasks)))
    results = [call_plugin(fn, key, ctx.cfg.stimulus.plugin, ctx, task) for task in tasks]
    if all(isinstance(r, OnlineOU) for r in results):
        if len(set(results)) != 1:
            raise PluginError(f"{key}: online OU parameters must be the same for every task")
        return results[0]
    out = np.empty((len(tasks), d.n_stim_steps, n_owned), dtype=np.float32)
    for q, r in enumerate(results):
        out[q] = _check_array(f"task {tasks[q]}", r, (d.n_stim_steps, n_owned), key)
    return out


def build_ff_rates(ctx) -> np.ndarray:
    d = ctx.derived
    n_ff_steps = d.n_steps - d.stim_off_step
    if d.l_ff == 0:
        return np.zeros((n_ff_steps, 0), dtype=np.float64)
    key = "feedforward.plugin"
    fn = load_plugin(ctx.cfg.feedforward.plugin, key, ctx.run_dir)
    rates = call_plugin(fn, key, ctx.cfg.feedforward.plugin, ctx)
    return _check_array("rates", rates, (n_ff_steps, d.l_ff), key).astype(np.float64)
