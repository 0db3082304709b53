"""``tsn-mpi info``: what this installation and launch will use, printed once (rank 0), with one
row per rank saying where it runs (host, node, node-local rank, numba threads)."""

from __future__ import annotations

import os
import platform
import sys


def collect(comm) -> dict[str, str]:
    import h5py
    import numba
    import numpy

    from tsn_mpi._version import __version__
    from tsn_mpi.io import h5_strategy

    rows: dict[str, str] = {
        "tsn-mpi": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "h5py": f"{h5py.__version__} (HDF5 {h5py.version.hdf5_version})",
    }
    d = h5_strategy.describe()
    rows["parallel HDF5"] = (
        f"{'yes' if d['h5py_mpi'] else 'no'}; multi-rank writes use '{d['strategy_multi_rank']}'"
    )
    rows["checkpoint writes now"] = h5_strategy.strategy(comm)
    try:
        import mpi4py

        rows["mpi4py"] = mpi4py.__version__
    except ImportError:
        rows["mpi4py"] = "not installed (pip install 'tsn-mpi[mpi]')"
    rows["communicator"] = f"{getattr(comm, 'kind', 'serial')}, size {comm.size}"
    if getattr(comm, "kind", "") == "mpi":
        rows["MPI library"] = comm.library_version().splitlines()[0].strip()
    rows["numba threading layer"] = _threading_layer()
    # the threads a run would use: the node's cores shared by the job's ranks on it
    from tsn_mpi.comm.threads import cores_available, share_cores

    chosen = share_cores(comm)
    env = os.environ.get("NUMBA_NUM_THREADS", "unset")
    how = (
        f"NUMBA_NUM_THREADS={env}"
        if chosen is None
        else "cores available to the rank / its node's ranks"
    )
    rows["numba threads"] = f"{numba.get_num_threads()} per rank ({how}), "
    rows["numba threads"] += f"cpus {os.cpu_count()}, available to this rank {cores_available()}"
    rows["time-loop threads"] = _loop_threads(numba.get_num_threads())
    rows["GPUs"] = _gpus()
    return rows


def placement(comm) -> str:
    """This rank's node, node-local rank and numba threads, as one phrase (collective)."""
    import numba

    lay = comm.node_layout()
    return (
        f"{lay.host}: node {lay.node + 1} of {lay.n_nodes}, node-local rank "
        f"{lay.local_rank} of {lay.local_size} on the node, {numba.get_num_threads()} "
        "numba thread(s)"
    )


def _loop_threads(rank_threads: int) -> str:
    """What run.loop_threads = 'auto' gives a rank here (the CPU backend's time loop)."""
    from tsn_mpi.backends.cpu.threads import MIN_NEURONS_PER_THREAD, layer_problem

    why = layer_problem() if rank_threads > 1 else None
    if why is not None:
        return f"1 per rank ({why})"
    return (f"'auto': up to {rank_threads} per rank (the numba threads), at least "
            f"{MIN_NEURONS_PER_THREAD} owned neurons each, one while that measures faster "
            "(cores shared with other jobs); run.loop_threads sets a number")  # fmt: skip


def _threading_layer() -> str:
    from tsn_mpi.backends.cpu.threads import threading_layer

    layer, why = threading_layer()
    return layer if layer is not None else f"unavailable ({why})"


def _gpus() -> str:
    """CUDA devices as the GPU backend (numba.cuda) sees them, or why there are none."""
    try:
        from tsn_mpi.backends.gpu import device
    except Exception as exc:  # noqa: BLE001 - numba built without CUDA support
        return f"numba.cuda unavailable ({str(exc).splitlines()[0]}; pip install 'tsn-mpi[gpu]')"
    if device.simulated():
        return "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): kernels run on the CPU"
    why = device.driver_problem()
    if why is not None:
        return why
    names = [g.name.decode() if isinstance(g.name, bytes) else str(g.name)
             for g in device.cuda.gpus]  # fmt: skip
    return f"{len(names)}: " + ", ".join(names)


def print_info(comm) -> None:
    """Print the rows of :func:`collect` on rank 0, then one placement row per rank (its host,
    node, node-local rank and threads) and, with several ranks, each rank's GPUs."""
    rows = collect(comm)
    places = comm.allgather_obj(placement(comm))
    gpus = comm.allgather_obj(rows["GPUs"])
    if comm.rank != 0:
        return
    width = max(len(k) for k in rows)
    for k, v in rows.items():
        print(f"{k:<{width}}  {v}")
    for r, where in enumerate(places):
        print(f"{'rank ' + str(r):<{width}}  {where}")
    if comm.size > 1:
        for r, g in enumerate(gpus):
            print(f"{'GPUs rank ' + str(r):<{width}}  {g}")
