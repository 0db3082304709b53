"""The communicator protocol every phase talks through (serial or MPI)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

T = TypeVar("T")


@dataclass(frozen=True)
class NodeLayout:
    """Where one rank runs: its node and its place among the job's ranks on that node.

    ``host``: the node's name (MPI_Get_processor_name); ``node``: the node's index in the job
    (0-based, nodes ordered by their lowest world rank); ``n_nodes``: nodes of the job;
    ``local_rank``/``local_size``: this rank's index among / the number of the job's ranks on
    its node (MPI_COMM_TYPE_SHARED, i.e. what shares memory with it).
    """

    host: str
    node: int
    n_nodes: int
    local_rank: int
    local_size: int


class Comm(Protocol):
    """Collectives used by tsn-mpi; implemented by SerialComm and MpiComm.

    All array methods use buffers (no pickling) except ``bcast``/``allgather_obj``, which are
    for small Python objects exchanged once per phase.
    """

    rank: int
    size: int

    def allreduce_sum(self, x: NDArray) -> NDArray: ...
    def allreduce_max(self, x: NDArray) -> NDArray: ...
    def allgather_counts(self, count: int) -> NDArray[np.int64]: ...
    def allgatherv(self, send: NDArray, counts: NDArray[np.int64]) -> NDArray: ...
    def gatherv(
        self, send: NDArray, counts: NDArray[np.int64], root: int = 0
    ) -> NDArray | None: ...
    def alltoallv(
        self, send: NDArray, send_counts: NDArray[np.int64]
    ) -> tuple[NDArray, NDArray[np.int64]]:
        """Send rows send[displ[r]:displ[r]+send_counts[r]] to rank r; returns (rows received
        in source-rank order, counts received from each rank)."""
        ...

    def bcast(self, obj: T, root: int = 0) -> T: ...
    def allgather_obj(self, obj: Any) -> list[Any]: ...
    def barrier(self) -> None: ...
    def abort(self, code: int = 1) -> NoReturn: ...
    def node_size(self) -> int:
        """Ranks of this job on this node (collective)."""
        ...

    def node_layout(self) -> NodeLayout:
        """This rank's node and node-local rank (collective)."""
        ...

    def ranks_on_node_hint(self) -> int:
        """Ranks of this job on this node from the launcher's environment, without meeting
        (not collective: a rank may ask while another has failed); all ranks if unknown."""
        ...

    def threads_may_call(self) -> bool:
        """Whether a thread other than the one that initialised it may call the communicator
        (MPI_THREAD_SERIALIZED or more); True without MPI."""
        ...

    def step_exchange(self) -> Any:
        """A jitted ``exchange(send, recv, count, timer)`` (allgather of ``count`` int32 per
        rank; adds its wall time to ``timer[0]``) for the compiled time loop."""
        ...
