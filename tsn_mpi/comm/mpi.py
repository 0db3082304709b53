"""MPI communicator: the only module that imports mpi4py and names COMM_WORLD."""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from tsn_mpi.comm.base import NodeLayout
from tsn_mpi.errors import LaunchError


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise LaunchError(
            "this process was started by an MPI launcher but mpi4py is not installed: "
            "pip install 'tsn-mpi[mpi]'"
        ) from exc
    except RuntimeError as exc:  # pragma: no cover - "cannot load MPI library"
        raise LaunchError(f"mpi4py cannot load an MPI library ({exc}): pip install mpich") from exc
    return MPI


_EXCHANGE = None


def _jitted_exchange():
    """Build (once) the jitted allgather used inside the compiled time loop (numba-mpi)."""
    global _EXCHANGE
    if _EXCHANGE is None:
        import numba_mpi
        from numba import njit

        @njit
        def mpi_exchange(send, recv, count, timer):  # pragma: no cover - jitted
            t0 = numba_mpi.wtime()
            status = numba_mpi.allgather(send[:count], recv, count)
            timer[0] += numba_mpi.wtime() - t0  # exchange incl. waiting for the slowest rank
            return status

        _EXCHANGE = mpi_exchange
    return _EXCHANGE


def _jitted_clock():
    import numba_mpi

    return numba_mpi.wtime


class MpiComm:
    """Wraps an mpi4py communicator; upper-case (buffer) methods only on the hot paths."""

    kind = "mpi"

    def __init__(self, comm: Any) -> None:
        self._c = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    @classmethod
    def world(cls, expected: int | None = None) -> MpiComm:
        """COMM_WORLD, checked against the rank count the launcher announced."""
        MPI = _mpi()
        comm = cls(MPI.COMM_WORLD)
        from tsn_mpi.comm import launcher_size

        claimed = launcher_size()
        if expected is None and claimed is not None:
            expected, var = claimed
        else:
            var = "the caller"
        if expected is not None and expected != comm.size:
            raise LaunchError(
                f"{var}={expected} but MPI gives this process a communicator of size "
                f"{comm.size}: {expected} independent copies were started instead of one "
                f"{expected}-rank job. Launch with the mpiexec that belongs to mpi4py's MPI "
                f"({MPI.Get_library_version().splitlines()[0].strip()}), or with "
                "'srun --mpi=pmi2'."
            )
        return comm

    @property
    def mpi_comm(self) -> Any:
        """The wrapped mpi4py communicator (for h5py's mpio driver)."""
        return self._c

    def library_version(self) -> str:
        return _mpi().Get_library_version().strip()

    def allreduce_sum(self, x: NDArray) -> NDArray:
        x = np.ascontiguousarray(x)
        out = np.empty_like(x)
        self._c.Allreduce(x, out, op=_mpi().SUM)
        return out

    def allreduce_max(self, x: NDArray) -> NDArray:
        x = np.ascontiguousarray(x)
        out = np.empty_like(x)
        self._c.Allreduce(x, out, op=_mpi().MAX)
        return out

    def allgather_counts(self, count: int) -> NDArray[np.int64]:
        send = np.array([count], dtype=np.int64)
        out = np.empty(self.size, dtype=np.int64)
        self._c.Allgather(send, out)
        return out

    def allgatherv(self, send: NDArray, counts: NDArray[np.int64]) -> NDArray:
        send = np.ascontiguousarray(send)
        row = int(np.prod(send.shape[1:])) if send.ndim > 1 else 1
        total = int(np.sum(counts))
        out = np.empty((total,) + send.shape[1:], dtype=send.dtype)
        c = np.asarray(counts, dtype=np.int64) * row
        d = np.concatenate(([0], np.cumsum(c)[:-1]))
        self._c.Allgatherv(send, [out, (c, d), _mpi()._typedict[send.dtype.char]])
        return out

    def gatherv(self, send: NDArray, counts: NDArray[np.int64], root: int = 0) -> NDArray | None:
        send = np.ascontiguousarray(send)
        row = int(np.prod(send.shape[1:])) if send.ndim > 1 else 1
        c = np.asarray(counts, dtype=np.int64) * row
        d = np.concatenate(([0], np.cumsum(c)[:-1]))
        if self.rank == root:
            out = np.empty((int(np.sum(counts)),) + send.shape[1:], dtype=send.dtype)
            self._c.Gatherv(send, [out, (c, d), _mpi()._typedict[send.dtype.char]], root=root)
            return out
        self._c.Gatherv(send, None, root=root)
        return None

    def alltoallv(
        self, send: NDArray, send_counts: NDArray[np.int64]
    ) -> tuple[NDArray, NDArray[np.int64]]:
        send = np.ascontiguousarray(send)
        row = int(np.prod(send.shape[1:])) if send.ndim > 1 else 1
        sc = np.asarray(send_counts, dtype=np.int64)
        rc = np.empty(self.size, dtype=np.int64)
        self._c.Alltoall(sc, rc)
        out = np.empty((int(rc.sum()),) + send.shape[1:], dtype=send.dtype)
        sd = np.concatenate(([0], np.cumsum(sc)[:-1])) * row
        rd = np.concatenate(([0], np.cumsum(rc)[:-1])) * row
        t = _mpi()._typedict[send.dtype.char]
        self._c.Alltoallv([send, (sc * row, sd), t], [out, (rc * row, rd), t])
        return out, rc

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return self._c.bcast(obj, root=root)

    def allgather_obj(self, obj: Any) -> list[Any]:
        return self._c.allgather(obj)

    def barrier(self) -> None:
        self._c.Barrier()

    def abort(self, code: int = 1) -> NoReturn:
        sys.stdout.flush()
        sys.stderr.flush()
        self._c.Abort(code)
        raise SystemExit(code)  # pragma: no cover

    def step_exchange(self) -> Any:
        return _jitted_exchange()

    def ranks_on_node_hint(self) -> int:
        """From MPICH/Hydra, Open MPI or SLURM's environment; all ranks if none is set."""
        for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"):
            try:
                return max(1, min(int(os.environ[name]), self.size))
            except (KeyError, ValueError):
                continue
        return self.size

    def threads_may_call(self) -> bool:
        """A read-only query of the running MPI's thread level."""
        MPI = _mpi()
        return MPI.Query_thread() >= MPI.THREAD_SERIALIZED

    def node_size(self) -> int:
        """Ranks of this job on this node (MPI_COMM_TYPE_SHARED; collective)."""
        from mpi4py import MPI

        node = self._c.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return int(node.Get_size())
        finally:
            node.Free()

    def node_layout(self) -> NodeLayout:
        """This rank's node, node index and node-local rank (collective).

        Nodes are what MPI_COMM_TYPE_SHARED groups (ranks that can share memory), named by
        MPI_Get_processor_name and numbered in the order of their lowest world rank."""
        MPI = _mpi()
        node = self._c.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            local_rank, local_size = int(node.Get_rank()), int(node.Get_size())
            leader = int(node.bcast(self.rank, root=0))  # lowest world rank on this node
        finally:
            node.Free()
        leaders = sorted(set(self._c.allgather(leader)))
        return NodeLayout(
            MPI.Get_processor_name(), leaders.index(leader), len(leaders), local_rank, local_size
        )

    def step_clock(self) -> Any:
        """A jitted wall clock for timing phases inside the compiled loop (MPI_Wtime)."""
        return _jitted_clock()
