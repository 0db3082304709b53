"""CPU backend: numba kernels (``@njit(cache=True)``, parallel over numba threads).

- :mod:`~tsn_mpi.backends.cpu.simulator`: ``CpuSimulator``, the time loop of a rank;
- :mod:`~tsn_mpi.backends.cpu.learner`: ``CpuLearner``, P as AoSoA tiles and the RLS update;
- :mod:`~tsn_mpi.backends.cpu.loop`: the compiled time loop; the RLS kernel modules.
"""

from __future__ import annotations

from tsn_mpi.backends import Backend
from tsn_mpi.backends.cpu.learner import INTEGER_PRECISIONS, CpuLearner, integer_p_message
from tsn_mpi.backends.cpu.simulator import CpuSimulator
from tsn_mpi.errors import ConfigError


def learner_for_training(cfg, d, net, **state) -> CpuLearner:
    """The CPU learner; integer P storage (GPU only) is refused with one line."""
    lr = cfg.learning
    if lr.mode == "fast" and lr.p_precision in INTEGER_PRECISIONS:
        raise ConfigError(integer_p_message(lr.p_precision))
    return CpuLearner(cfg, d, net, **state)


def describe() -> str:
    import numba

    from tsn_mpi.backends.cpu.simulator import LOOP_THREADS

    nt, why = LOOP_THREADS
    loop = f"; time loop {nt} thread(s)" + (f" ({why})" if why else "")
    return f"cpu (numba, {numba.get_num_threads()} thread(s) per rank{loop})"


BACKEND = Backend("cpu", lambda comm: None, CpuSimulator, learner_for_training, describe)

__all__ = ["BACKEND", "CpuLearner", "CpuSimulator", "learner_for_training"]
