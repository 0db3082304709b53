"""Single-process communicator: every collective is a copy."""

from __future__ import annotations

import os
import socket
from typing import Any, NoReturn

import numpy as np
from numba import njit
from numpy.typing import NDArray

from tsn_mpi.comm.base import NodeLayout


@njit(cache=True)
def serial_exchange(send, recv, count, timer):  # pragma: no cover - jitted
    """Allgather with one rank: copy the used part (send[0] ids + the count) into ``recv``."""
    for i in range(min(count, send[0] + 1)):
        recv[i] = send[i]
    return 0


class SerialComm:
    """The trivial communicator used when no MPI launcher started the process."""

    rank = 0
    size = 1
    kind = "serial"

    def allreduce_sum(self, x: NDArray) -> NDArray:
        return np.array(x, copy=True)

    def allreduce_max(self, x: NDArray) -> NDArray:
        return np.array(x, copy=True)

    def allgather_counts(self, count: int) -> NDArray[np.int64]:
        return np.array([count], dtype=np.int64)

    def allgatherv(self, send: NDArray, counts: NDArray[np.int64]) -> NDArray:
        return np.array(send, copy=True)

    def gatherv(self, send: NDArray, counts: NDArray[np.int64], root: int = 0) -> NDArray | None:
        return np.array(send, copy=True)

    def alltoallv(
        self, send: NDArray, send_counts: NDArray[np.int64]
    ) -> tuple[NDArray, NDArray[np.int64]]:
        return np.array(send, copy=True), np.array([len(send)], dtype=np.int64)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def allgather_obj(self, obj: Any) -> list[Any]:
        return [obj]

    def barrier(self) -> None:
        return None

    def abort(self, code: int = 1) -> NoReturn:
        os._exit(code)

    def ranks_on_node_hint(self) -> int:
        return 1

    def threads_may_call(self) -> bool:
        return True

    def node_size(self) -> int:
        """Ranks of this job on this node (one process: 1)."""
        return 1

    def node_layout(self) -> NodeLayout:
        """One process: node 0 of 1, local rank 0 of 1, on this host."""
        return NodeLayout(socket.gethostname(), 0, 1, 0, 1)

    def step_exchange(self) -> Any:
        return serial_exchange
