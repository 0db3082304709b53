"""The phases as Python functions (the CLI subcommands call exactly these).

    tsn_mpi.new("run")            # run/config.toml with the reference defaults
    tsn_mpi.init("run")           # network.h5 + checkpoints/ckpt-0.h5
    tsn_mpi.train("run", nloops=100)
    tsn_mpi.test("run", ntrials=10)
    tsn_mpi.plot("run/test.h5")
    tsn_mpi.run("run")            # all of the above

Each accepts ``comm=`` (default: MPI when launched by mpiexec/srun, else serial).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tsn_mpi.comm import Comm, make_comm
from tsn_mpi.config import dump_toml
from tsn_mpi.errors import ConfigError
from tsn_mpi.phases.common import CONFIG_NAME, CURVE_NAME, NETWORK_NAME, TEST_NAME


def new(run_dir: str | Path, config: str | Path | None = None, force: bool = False) -> Path:
    """Create ``run_dir/config.toml`` (the defaults, or a copy of ``config``) for editing."""
    run_dir = Path(run_dir)
    target = run_dir / CONFIG_NAME
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists (use --force to overwrite)")
    run_dir.mkdir(parents=True, exist_ok=True)
    if config is None:
        target.write_text(dump_toml())
    else:
        from tsn_mpi.config import load_config

        load_config(config)  # validate before copying
        shutil.copyfile(config, target)
    return target


def init(run_dir: str | Path, itasks: list[int] | None = None, comm: Comm | None = None,
         quiet: bool = False) -> dict[str, Any]:
    """Build connectivity, run the spontaneous trial, build targets/stimulus/initial P."""
    from tsn_mpi.phases.init import run_init

    return run_init(run_dir, itasks, comm, quiet)


def train(run_dir: str | Path, nloops: int | None = 1, correlation_interval: int = 1,
          save_best_checkpoint: bool = False, restore_from_checkpoint: str | int | None = None,
          total_loops: int | None = None, comm: Comm | None = None, quiet: bool = False,
          monitor_resources: float | None = None, backend: str | None = None):
    """Train ``nloops`` loops (or until loop ``total_loops``); returns the learning curve."""
    from tsn_mpi.phases.train import run_train

    return run_train(run_dir, nloops, correlation_interval, save_best_checkpoint,
                     restore_from_checkpoint, total_loops, comm, quiet, monitor_resources,
                     backend)


def test(run_dir: str | Path, ntrials: int = 1, neurons: str | list[int] | None = None,
         restore_from_checkpoint: str | int | None = None, no_plot: bool = False,
         comm: Comm | None = None, quiet: bool = False, backend: str | None = None) -> Path:
    """Run test trials without learning, write test.h5, then plot (rank 0)."""
    from tsn_mpi.phases.test import run_test

    comm = comm or make_comm()
    path = run_test(run_dir, ntrials, neurons, restore_from_checkpoint, comm, quiet, backend)
    if not no_plot and comm.rank == 0:
        plot(path)
    return path


def plot(test_file: str | Path, neurons: list[int] | None = None) -> list[Path]:
    """Figures from test output (and the learning curve beside it): PDF and PNG."""
    from tsn_mpi.plot import figures

    test_file = Path(test_file)
    out = figures.plot_test(test_file, neurons=neurons)
    curve = test_file.parent / CURVE_NAME
    if curve.exists():
        out += figures.plot_learning_curve(curve)
    return out


def run(run_dir: str | Path, nloops: int = 100, ntrials: int = 1, comm: Comm | None = None,
        correlation_interval: int = 1, backend: str | None = None) -> dict[str, Any]:
    """new (if needed) -> init (if needed) -> train -> test -> plot, in one go."""
    run_dir = Path(run_dir)
    comm = comm or make_comm()
    if comm.rank == 0 and not (run_dir / CONFIG_NAME).exists():
        new(run_dir)
    comm.barrier()
    if not (run_dir / NETWORK_NAME).exists():
        init(run_dir, comm=comm)
    curve = train(run_dir, nloops=nloops, correlation_interval=correlation_interval, comm=comm,
                  backend=backend)
    test(run_dir, ntrials=ntrials, comm=comm, backend=backend)
    return {"curve": curve, "test": run_dir / TEST_NAME}
