"""What every phase sets up: config, communicator, partition, cell model, noise, traces."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsn_mpi.backends import Backend, get_backend
from tsn_mpi.comm import Comm, make_comm
from tsn_mpi.comm.threads import share_cores
from tsn_mpi.config import Config, Derived, derive, load_config, load_plugin
from tsn_mpi.errors import ConfigError, DataFileError
from tsn_mpi.io import h5_strategy
from tsn_mpi.log import Reporter
from tsn_mpi.models.base import CellModel
from tsn_mpi.network.context import PluginContext
from tsn_mpi.partition import Partition, partition

CONFIG_NAME = "config.toml"
NETWORK_NAME = "network.h5"
CURVE_NAME = "learning-curve.h5"
TEST_NAME = "test.h5"


@dataclass
class Run:
    """A run directory opened by one phase on one rank."""

    run_dir: Path
    cfg: Config
    d: Derived
    comm: Comm
    part: Partition
    out: Reporter
    backend: Backend

    @property
    def owned(self) -> range:
        return self.part.range_of(self.comm.rank)

    def ctx(self, init: dict | None = None) -> PluginContext:
        return PluginContext(self.cfg, self.d, self.owned, self.run_dir, init or {})


def open_run(run_dir: str | Path, comm: Comm | None = None, quiet: bool = False,
             backend: str | None = None) -> Run:
    run_dir = Path(run_dir)
    comm = comm or make_comm()
    cfg_path = run_dir / CONFIG_NAME
    if not cfg_path.is_file():
        raise ConfigError(f"{cfg_path}: not found (create it with 'tsn-mpi new {run_dir}')")
    cfg = load_config(cfg_path)
    if backend is not None and backend != cfg.run.backend:
        cfg = cfg.replace(run__backend=backend)  # not part of the model hash
    d = derive(cfg)
    part = partition(d.n_cells, comm.size)
    share_cores(comm)  # numba threads = this node's cores / its ranks, unless the user set them
    h5_strategy.set_strategy(cfg.run.h5_writes)
    return Run(run_dir, cfg, d, comm, part, Reporter(comm.rank, quiet),
               get_backend(cfg.run.backend))


def check_not_in_use(run: Run, phase: str, force: bool = False) -> None:
    """Stop every rank with one line when another live job works on this run directory
    (rank 0 reads its heartbeat; collective).  ``force``: start anyway."""
    from tsn_mpi.comm.agree import agree
    from tsn_mpi.io.heartbeat import check_not_in_use as check

    if force:
        return
    agree(run.comm, lambda: check(run.run_dir, phase) if run.comm.rank == 0 else None)


def check_memory(run: Run, phase: str, force: bool = False) -> None:
    """The memory gate (:mod:`tsn_mpi.phases.memory`) for this run's launch; collective.
    Call it before the phase allocates (for the GPU, after :func:`start_backend`)."""
    from tsn_mpi.phases.memory import memory_gate
    from tsn_mpi.plan import on_gpu

    # init: the host side of the training that follows
    memory_gate(run.cfg, run.comm, phase, run.run_dir, gpu=on_gpu(run.cfg), force=force,
                out=run.out)  # fmt: skip


def build_cell(ctx: PluginContext) -> CellModel:
    from tsn_mpi.network.build import call_plugin

    fn = load_plugin(ctx.cfg.neuron.model, "neuron.model", ctx.run_dir)
    cell = call_plugin(fn, "neuron.model", ctx.cfg.neuron.model, ctx)
    if not isinstance(cell, CellModel):
        from tsn_mpi.errors import PluginError

        raise PluginError(f"neuron.model = {ctx.cfg.neuron.model!r} did not return a CellModel")
    cell.check(len(ctx.owned))
    return cell


def _per_neuron_file(path_str: str, key: str, run_dir: Path, n_cells: int) -> np.ndarray:
    path = Path(path_str)
    if not path.is_absolute():
        path = run_dir / path
    if not path.is_file():
        raise DataFileError(f"{key} = {path_str!r}: file {path} not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any numpy load error
        raise DataFileError(f"{key}: {path} is not a readable .npy file ({exc})") from None
    if arr.dtype.kind not in "fiu" or arr.shape != (n_cells,):
        raise DataFileError(
            f"{key}: {path} has shape {arr.shape} and dtype {arr.dtype}, expected ({n_cells},) "
            "numbers"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DataFileError(f"{key}: {path} has negative or non-finite values")
    return arr.astype(np.float64)


def noise_sigma(run: Run) -> np.ndarray:
    """Per-neuron noise amplitude of the owned neurons, scaled as the reference (spec §1.9)."""
    neu, dt = run.cfg.neuron, run.cfg.simulation.dt
    if neu.noise_sigma_file:
        sig = _per_neuron_file(neu.noise_sigma_file, "neuron.noise_sigma_file", run.run_dir,
                               run.d.n_cells)[run.owned.start : run.owned.stop]
    else:
        sig = np.array([neu.noise_sigma], dtype=np.float64)
    if neu.noise_model == "voltage":
        return sig * math.sqrt(dt) / math.sqrt(neu.tau_mem_e)
    return sig * math.sqrt(neu.tau_mem_e) / math.sqrt(dt)


def tau_plas(run: Run) -> float | np.ndarray:
    """Scalar tau_plas, or one per neuron (all N: presynaptic traces need every neuron's)."""
    neu = run.cfg.neuron
    if neu.tau_plas_file:
        tau = _per_neuron_file(neu.tau_plas_file, "neuron.tau_plas_file", run.run_dir,
                               run.d.n_cells)
        if np.any(tau <= 0):
            raise DataFileError("neuron.tau_plas_file: every tau_plas must be > 0")
        return tau
    return float(neu.tau_plas)


def choose_task(run: Run):
    """The task chooser f(loop, ntasks) -> 0-based task, checked on every call."""
    from tsn_mpi.errors import PluginError
    from tsn_mpi.network.build import call_plugin

    spec = run.cfg.learning.choose_task
    fn = load_plugin(spec, "learning.choose_task", run.run_dir)

    def chooser(loop: int, ntasks: int) -> int:
        task = call_plugin(fn, "learning.choose_task", spec, loop, ntasks)
        if not isinstance(task, (int, np.integer)) or not 0 <= int(task) < ntasks:
            raise PluginError(
                f"learning.choose_task = {spec!r} returned {task!r} for loop {loop}; expected "
                f"an integer task in [0, {ntasks})"
            )
        return int(task)

    return chooser


def start_backend(run: Run) -> None:
    """Bind this rank to its device (GPU: node-local rank % GPUs) before any device work; a
    clear one-line error when there is none.  Nothing to do on the CPU."""
    run.backend.start(run.comm)


def make_simulator(run: Run, net, cell):
    """The time loop of this rank on the run's backend (same interface on every backend)."""
    sim = run.backend.simulator(run.cfg, run.d, net, cell, run.comm, tau_plas(run),
                                noise_sigma(run))  # fmt: skip
    release_incoming(net)
    return sim


def release_incoming(net) -> None:
    """Drop the incoming static lists (4-5 bytes per synapse) once the time loop has built its
    outgoing copy: train and test never read them again."""
    net.st_indptr = net.st_indptr[:1].copy()
    net.st_pre = net.st_pre[:0].copy()
    net.st_code = net.st_code[:0].copy()


def make_learner(run: Run, net, **state):
    """The RLS learner of this rank on the run's backend (P on the GPU there)."""
    return run.backend.learner(run.cfg, run.d, net, **state)


def balance_by_work(run: Run) -> None:
    """Re-partition ``run`` so every rank gets about the same work, not the same neuron count.

    Work of a neuron per loop comes from the cost model of :mod:`tsn_mpi.plan`
    (:func:`~tsn_mpi.plan.neuron_work`: updates, received synaptic events, RLS); results do
    not depend on the partition, only the time does.  Keeps the equal split when the network
    file cannot be read (the phase then reports that file properly).
    """
    if run.comm.size == 1:
        return
    from tsn_mpi.errors import TsnError
    from tsn_mpi.io.network_file import static_in_degree
    from tsn_mpi.plan import neuron_work

    d = run.d
    try:
        indeg = static_in_degree(run.run_dir / NETWORK_NAME).astype(np.float64)
    except (TsnError, OSError, KeyError):
        return
    if indeg.shape != (d.n_cells,):
        return
    run.part = partition(d.n_cells, run.comm.size, neuron_work(d, indeg))
