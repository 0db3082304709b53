"""Collective error agreement: a failure on any rank becomes the same clean error on all.

``agree(comm, fn)`` runs ``fn`` on every rank, then one small allgather tells every rank
whether any failed; if so all raise the same :class:`TsnError` (the lowest failing rank's
message), so the CLI can print it once (rank 0) and every rank exits promptly with the same code
— no rank is left waiting in a later collective, and no MPI_Abort noise is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tsn_mpi.errors import TsnError

T = TypeVar("T")


class AgreedError(TsnError):
    """Raised on every rank after some rank failed inside :func:`agree`."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def agree(comm, fn: Callable[[], T]) -> T:
    if comm.size == 1:
        return fn()
    result = None
    failure = None
    try:
        result = fn()
    except TsnError as exc:
        failure = (str(exc), exc.exit_code, type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - a bug on one rank must not hang the others
        failure = (f"rank {comm.rank}: {type(exc).__name__}: {exc}", 1, "internal")
        import traceback

        traceback.print_exc()
    failures = comm.allgather_obj(failure)
    for f in failures:
        if f is not None:
            raise AgreedError(f[0], f[1])
    return result  # type: ignore[return-value]
