"""Where each rank runs: node, node-local rank and threads (``tsn-mpi info`` prints them).

Ranks on several nodes are tested on the emulated cluster (tests/cluster); here one process and
two ranks sharing this machine.
"""

from __future__ import annotations

import re
import socket

import pytest

from tests.mpirun import TSN, requires_mpi, run_mpi
from tsn_mpi.comm.base import NodeLayout
from tsn_mpi.comm.serial import SerialComm
from tsn_mpi.info import placement


def test_one_process_is_alone_on_its_node(monkeypatch) -> None:
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    lay = SerialComm().node_layout()
    assert lay == NodeLayout(socket.gethostname(), 0, 1, 0, 1)
    text = placement(SerialComm())
    assert text.startswith(f"{socket.gethostname()}: node 1 of 1, node-local rank 0 of 1")


@pytest.mark.mpi
@requires_mpi
def test_two_ranks_on_one_node_share_its_cores(monkeypatch) -> None:
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)  # mpi_env then sets 1 per rank
    r = run_mpi(2, [*TSN, "info"], timeout=300)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^communicator +mpi, size 2$", r.stdout, re.M), r.stdout
    rows = re.findall(
        r"^rank (\d) +(\S+): node 1 of 1, node-local rank (\d) of 2 on the node, "
        r"(\d+) numba thread",
        r.stdout,
        re.M,
    )
    assert [(int(a), int(b)) for a, _, b, _ in rows] == [(0, 0), (1, 1)], r.stdout
    assert len({host for _, host, _, _ in rows}) == 1
    assert {int(t) for *_, t in rows} == {1}
