"""The phases as Python functions (the CLI subcommands call exactly these).

    tsn_mpi.new("run")            # run/config.toml with the reference defaults
    tsn_mpi.init("run")           # network.h5 + checkpoints/ckpt-0.h5
    tsn_mpi.train("run", nloops=100)
    tsn_mpi.test("run", ntrials=10)
    tsn_mpi.plot("run/test.h5")
    tsn_mpi.run("run")            # all of the above
    tsn_mpi.status("run")         # where a run stands, from its files (a dict)
    tsn_mpi.new("fit", data="rec.nwb")   # fit a recording: config + targets (docs/fitting.md)
    tsn_mpi.evaluate("fit")       # re-score test.h5 on the held-out trials, redraw the figures

Each phase accepts ``comm=`` (default: MPI when launched by mpiexec/srun, else serial);
init, train, test and run check the launch's memory first and accept ``force=True`` to start
anyway.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tsn_mpi.comm import Comm, make_comm
from tsn_mpi.config import dump_toml
from tsn_mpi.errors import ConfigError
from tsn_mpi.phases.common import CONFIG_NAME, CURVE_NAME, NETWORK_NAME, TEST_NAME
from tsn_mpi.phases.test import DEFAULT_TRIALS


def new(run_dir: str | Path, config: str | Path | None = None, force: bool = False,
        data: str | Path | None = None, data_options: dict[str, Any] | None = None,
        quiet: bool = False) -> Path:
    """Create ``run_dir/config.toml`` (the defaults, or a copy of ``config``) for editing.

    ``data``: a recording (NWB, SONATA spikes, PSTH array) to fit instead: one neuron per unit,
    one task per condition, the target files and defaults for data fits (``config`` then only
    supplies the model keys); ``data_options``: [data] keys such as ``bin_width``, ``trials``.
    Prints what was prepared unless ``quiet``."""
    run_dir = Path(run_dir)
    if data is not None:
        from tsn_mpi.data.fitconfig import new_fit

        path, lines = new_fit(run_dir, data, data_options, config, force)
        if not quiet:
            print("\n".join(lines))
        return path
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
         quiet: bool = False, force: bool = False) -> dict[str, Any]:
    """Build connectivity, run the spontaneous trial, build targets/stimulus/initial P.
    A data fit's target files are rebuilt first when its [data] settings changed."""
    from tsn_mpi.phases.init import run_init

    comm = comm or make_comm()
    _prepare_data(Path(run_dir), comm, quiet)
    return run_init(run_dir, itasks, comm, quiet, force)


def train(run_dir: str | Path, nloops: int | None = 1, correlation_interval: int = 1,
          save_best_checkpoint: bool = False, restore_from_checkpoint: str | int | None = None,
          total_loops: int | None = None, comm: Comm | None = None, quiet: bool = False,
          monitor_resources: float | None = None, backend: str | None = None,
          force: bool = False, checkpoint_every: int | None = None,
          checkpoint_minutes: float | None = None, checkpoint_keep: int | None = None):
    """Train ``nloops`` loops (or until loop ``total_loops``); returns the learning curve.
    ``checkpoint_*``: periodic checkpoints (None: the config's ``run.checkpoint_*``)."""
    from tsn_mpi.phases.train import run_train

    return run_train(run_dir, nloops, correlation_interval, save_best_checkpoint,
                     restore_from_checkpoint, total_loops, comm, quiet, monitor_resources,
                     backend, force, checkpoint_every, checkpoint_minutes, checkpoint_keep)


def test(run_dir: str | Path, ntrials: int = DEFAULT_TRIALS,
         neurons: str | list[int] | None = None,
         restore_from_checkpoint: str | int | None = None, no_plot: bool = False,
         comm: Comm | None = None, quiet: bool = False, backend: str | None = None,
         force: bool = False) -> Path:
    """Run test trials without learning, write test.h5, then plot (rank 0)."""
    from tsn_mpi.phases.test import run_test

    comm = comm or make_comm()
    path = run_test(run_dir, ntrials, neurons, restore_from_checkpoint, comm, quiet, backend,
                    force)  # fmt: skip
    if not no_plot:  # rank 0 draws; a storage error there stops every rank with one line
        from tsn_mpi.comm.agree import agree

        agree(comm, lambda: plot(path) if comm.rank == 0 else None)
    return path


def plot(test_file: str | Path, neurons: list[int] | None = None) -> list[Path]:
    """Figures from test output (and the learning curve beside it): PDF and PNG.  A full
    disk (or another storage error) is a one-line OutputError naming the figure."""
    from tsn_mpi.io import space
    from tsn_mpi.plot import figures

    test_file = Path(test_file)
    try:
        out = figures.plot_test(test_file, neurons=neurons)
        curve = test_file.parent / CURVE_NAME
        if curve.exists():
            out += figures.plot_learning_curve(curve)
        if _has_heldout(test_file):  # a data fit: its summary and raster figures
            from tsn_mpi.plot.fit import plot_fit

            out += plot_fit(test_file.parent)
    except OSError as exc:
        if exc.filename and space.is_io_error(exc):
            raise space.output_error(exc, Path(exc.filename)) from None
        raise
    return out


def run(run_dir: str | Path, nloops: int = 100, ntrials: int = DEFAULT_TRIALS,
        comm: Comm | None = None, correlation_interval: int = 1, backend: str | None = None,
        force: bool = False) -> dict[str, Any]:
    """new (if needed) -> init (if needed) -> train -> test (``ntrials`` trials, default 10:
    the figures draw their median and spread) -> plot, in one go."""
    run_dir = Path(run_dir)
    comm = comm or make_comm()
    if comm.rank == 0 and not (run_dir / CONFIG_NAME).exists():
        new(run_dir)
    comm.barrier()
    if not (run_dir / NETWORK_NAME).exists():
        init(run_dir, comm=comm, force=force)
    curve = train(run_dir, nloops=nloops, correlation_interval=correlation_interval, comm=comm,
                  backend=backend, force=force)
    test(run_dir, ntrials=ntrials, comm=comm, backend=backend, force=force)
    return {"curve": curve, "test": run_dir / TEST_NAME}


def status(run_dir: str | Path) -> dict[str, Any]:
    """Where the run in ``run_dir`` stands, from its files alone (no MPI, safe while a job
    writes): see :func:`tsn_mpi.status.run_status`."""
    from tsn_mpi.status import run_status

    return run_status(run_dir)


def evaluate(run_dir: str | Path, units: list[int] | None = None, no_plot: bool = False,
             quiet: bool = False) -> dict[str, Any]:
    """Re-score a data fit's ``test.h5`` against its held-out trials (no simulation): print
    the summary, rewrite ``fit-metrics.json`` and the fit figures (``units``: the neurons whose
    PSTHs are drawn).  Returns the summary numbers."""
    from tsn_mpi.phases.heldout import evaluate_run

    lines, summ = evaluate_run(run_dir)
    if not quiet:
        print("\n".join(lines))
    if not no_plot:
        from tsn_mpi.plot.fit import plot_fit

        paths = plot_fit(run_dir, units=units)
        if not quiet:
            print("wrote " + ", ".join(str(p) for p in paths))
    return summ


def _prepare_data(run_dir: Path, comm: Comm, quiet: bool) -> None:
    """Rank 0 rebuilds a data fit's target files when stale; every rank checks the config."""
    from tsn_mpi.comm.agree import agree
    from tsn_mpi.config import load_config

    cfg_path = run_dir / CONFIG_NAME
    if not cfg_path.is_file():
        return  # run_init reports it
    cfg = load_config(cfg_path)
    if not cfg.data.file:
        return
    from tsn_mpi.data import prepare

    def rebuild() -> None:
        if comm.rank != 0:
            return
        why = prepare.stale_reason(cfg, run_dir)
        if why:
            if not quiet:
                print(f"preparing {cfg.data.file} ({why})", flush=True)
            prepare.prepare(cfg, run_dir)

    agree(comm, rebuild)
    agree(comm, lambda: prepare.check_config(cfg, run_dir))


def _has_heldout(test_file: Path) -> bool:
    import h5py

    try:
        with h5py.File(test_file, "r") as fh:
            return "heldout" in fh and (test_file.parent / "data-fit.h5").is_file()
    except OSError:
        return False
