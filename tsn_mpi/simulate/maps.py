"""Host-side set-up of a rank's time loop, shared by both backends.

The network files hold *incoming* connections (per postsynaptic neuron); the time loop delivers
a spike along *outgoing* ones (per presynaptic gid).  :func:`outgoing_maps` inverts both the
static and the plastic lists once, :func:`balanced_drive` gives the constant drive x_bal of the
owned neurons, and :func:`trace_constants` the presynaptic trace decay (spec §3.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsn_mpi.network.csr import invert_incoming, invert_incoming_codes


def slot_dtype(m: int) -> np.dtype:
    """The narrowest type holding a slot index of a weight row with ``m`` plastic inputs."""
    return np.dtype(np.uint8 if m <= 256 else (np.uint16 if m <= 65536 else np.int32))


@dataclass
class OutgoingMaps:
    """Outgoing connections of every presynaptic gid into this rank's neurons (CSR over gids).

    static: ``st_indptr`` (N+1,), ``st_post`` local post ids, ``st_code`` weight code per synapse
    (empty when the weights depend only on the populations: the loop derives them);
    plastic: ``pl_indptr`` (N+1,), ``pl_post`` local post ids, ``pl_slot`` position in the
    post's weight row (:func:`slot_dtype`); ``needed``: the gids whose traces RLS reads.
    """

    st_indptr: np.ndarray
    st_post: np.ndarray
    st_code: np.ndarray
    pl_indptr: np.ndarray
    pl_post: np.ndarray
    pl_slot: np.ndarray
    needed: np.ndarray


def outgoing_maps(net, n_cells: int, all_traces: bool = False, static: bool = True
                  ) -> OutgoingMaps:  # fmt: skip
    """Invert ``net``'s incoming static and plastic lists.  ``all_traces``: every gid is
    needed (small mode checkpoints whole trace vectors); ``static=False`` skips the static
    inversion (a caller that brings its own outgoing static map)."""
    if static:
        st_indptr, st_post, st_code = invert_incoming_codes(
            net.st_indptr, net.st_pre, net.st_code, n_cells)
    else:
        st_indptr = np.zeros(n_cells + 1, np.int64)
        st_post, st_code = np.zeros(0, np.int32), np.zeros(0, np.uint8)
    n, m = net.pl_pre.shape
    flat = net.pl_pre.ravel()
    valid = flat >= 0
    pl_indptr_in = np.zeros(n + 1, dtype=np.int64)
    if n:
        pl_indptr_in[1:] = np.cumsum(valid.reshape(n, m).sum(axis=1))
    pos_valid = np.nonzero(valid)[0]
    pl_indptr, pl_post, pl_pos = invert_incoming(pl_indptr_in, flat[valid].astype(np.int32),
                                                 n_cells)  # fmt: skip
    pl_slot = (pos_valid[pl_pos] % max(m, 1)).astype(slot_dtype(m))
    del pl_pos, pos_valid
    if all_traces:
        needed = np.arange(n_cells, dtype=np.int64)
    else:
        needed = np.unique(flat[valid]).astype(np.int64)
    return OutgoingMaps(st_indptr, st_post, st_code, pl_indptr, pl_post, pl_slot, needed)


def balanced_drive(owned: range, d) -> np.ndarray:
    """x_bal of the owned neurons (float32): x_bal_e for excitatory gids, else x_bal_i."""
    exc = np.arange(owned.start, owned.stop) < d.n_exc
    return np.where(exc, d.x_bal_e, d.x_bal_i).astype(np.float32)


def trace_constants(tau_plas, dt: float, owned: range
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``(a_pre, inc_pre, inv_tau_post)`` float64: per-step decay 1 - dt/tau and increment
    1/tau of the presynaptic traces (length 1 for a scalar tau_plas, else one per gid), and
    1/tau of the owned neurons' plastic current filter (length 1 or one per owned neuron)."""
    tau = np.atleast_1d(np.asarray(tau_plas, dtype=np.float64))
    a_pre = 1.0 - dt / tau
    inc_pre = 1.0 / tau
    inv_tau_post = inc_pre if tau.size == 1 else 1.0 / tau[owned.start : owned.stop]
    return a_pre, inc_pre, np.asarray(inv_tau_post, np.float64)
