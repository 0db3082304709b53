"""numba threads per rank share the node's cores among its ranks unless the user set them."""

from __future__ import annotations

import numba

from tsn_mpi.comm import threads
from tsn_mpi.comm.serial import SerialComm


class _FourOnANode(SerialComm):
    size = 8

    def node_size(self) -> int:
        return 4


def test_ranks_on_a_node_share_its_cores(monkeypatch):
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "cores_available", lambda: 16)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 16)
    monkeypatch.setattr(numba, "set_num_threads", lambda n: setattr(threads, "_set", n))
    assert threads.share_cores(_FourOnANode()) == 4 and threads._set == 4
    monkeypatch.setattr(threads, "cores_available", lambda: 2)
    assert threads.share_cores(_FourOnANode()) == 1  # never fewer than one
    assert threads.share_cores(SerialComm()) == 2  # one process: every core


def test_user_choice_is_kept(monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")
    assert threads.share_cores(_FourOnANode()) is None
