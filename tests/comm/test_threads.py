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


class _Eight:
    """An mpi4py-like communicator of 8 ranks (MpiComm only asks rank and size here)."""

    def Get_rank(self) -> int:  # noqa: N802 - mpi4py's name
        return 0

    def Get_size(self) -> int:  # noqa: N802 - mpi4py's name
        return 8


def test_ranks_on_node_hint_reads_the_launcher_without_meeting(monkeypatch):
    from tsn_mpi.comm.mpi import MpiComm

    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(name, raising=False)
    comm = MpiComm(_Eight())
    assert comm.ranks_on_node_hint() == 8  # unknown: all ranks
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    assert comm.ranks_on_node_hint() == 4
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")  # hydra's own variable goes first
    assert comm.ranks_on_node_hint() == 2
    monkeypatch.setenv("MPI_LOCALNRANKS", "64")  # never more than the job
    assert comm.ranks_on_node_hint() == 8
    monkeypatch.setenv("MPI_LOCALNRANKS", "x")  # unreadable: the next one
    assert comm.ranks_on_node_hint() == 4
    assert SerialComm().ranks_on_node_hint() == 1 and SerialComm().threads_may_call()
