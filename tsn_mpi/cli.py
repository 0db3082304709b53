"""Command line: ``tsn-mpi <new|init|train|test|plot|run|evaluate|status|verify|info|gather|plan>
...``.

Exit codes: 0 success, 2 bad input (one line on stderr, printed by rank 0), 3 divergence,
65 a file is corrupted (fails its checksums; the line names the file, dataset, rows and the
newest intact checkpoint), 74 an output cannot be written (disk full, quota, read-only, I/O
error, permission: the line names the file, bytes needed and free, what is intact),
75 interrupted with a checkpoint written (resume with --restore-from-checkpoint), 1 internal
error (traceback on the failing rank, all ranks stopped).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from tsn_mpi.errors import TsnError

DEFAULT_TRIALS = 10  # test trials per task (tsn_mpi.phases.test.DEFAULT_TRIALS, checked by tests)

RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")


def env_rank() -> int:
    """This process's rank as the launcher announced it (before MPI is initialised)."""
    for var in RANK_VARS:
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tsn-mpi",
        description="Train spiking recurrent networks with RLS, on one process or many MPI "
        "ranks (launch with mpiexec/srun for more than one).",
    )
    p.add_argument("--quiet", action="store_true", help="print only errors")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("new", help="write DIR/config.toml with the default configuration, or "
                       "(--data FILE) a fit of a recording")
    s.add_argument("dir", type=Path)
    s.add_argument("--from", dest="config", type=Path, help="copy this config instead")
    s.add_argument("--force", action="store_true", help="overwrite an existing config.toml")
    _data_options(s)

    s = sub.add_parser("init", help="build connectivity, targets, stimulus and initial P")
    s.add_argument("dir", type=Path)
    s.add_argument("--itasks", help="tasks of the target file to use, e.g. 0,1 (default all)")
    _force(s)

    s = sub.add_parser("train", help="train with RLS; one table row per loop")
    s.add_argument("dir", type=Path)
    g = s.add_mutually_exclusive_group()
    g.add_argument("--nloops", type=int, default=1, help="loops to train (default 1)")
    g.add_argument("--total-loops", type=int, help="train until this loop number is done")
    s.add_argument("--correlation-interval", type=int, default=1,
                   help="measure the correlation every C loops (default 1)")
    s.add_argument("--save-best-checkpoint", action="store_true",
                   help="keep a checkpoint of the best correlation so far")
    s.add_argument("--restore-from-checkpoint", metavar="K",
                   help="start from checkpoint K (e.g. 10, 10i, 7-cor0.712; default newest)")
    s.add_argument("--monitor-resources", type=float, metavar="S",
                   help="sample CPU %%, RSS and GPU memory of every rank every S seconds")
    s.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="also checkpoint after every loop that is a multiple of N (0: off; "
                   "default run.checkpoint_every = 0)")
    s.add_argument("--checkpoint-minutes", type=float, metavar="M",
                   help="also checkpoint at the first loop end M minutes of wall time after the "
                   "last checkpoint (0: off; default run.checkpoint_minutes = 30)")
    s.add_argument("--checkpoint-keep", type=int, metavar="K",
                   help="keep the newest K periodic/interrupt checkpoints (0: all; default "
                   "run.checkpoint_keep = 2); ckpt-0 and the best are always kept")
    s.add_argument("--gpu", action="store_true",
                   help="run on GPUs (one per rank; same as run.backend = \"gpu\")")
    _force(s)

    s = sub.add_parser("test", help="run trials without learning, record, and plot")
    s.add_argument("dir", type=Path)
    s.add_argument("--ntrials", type=int, default=DEFAULT_TRIALS,
                   help=f"trials per task (default {DEFAULT_TRIALS})")
    s.add_argument("--neurons", help="global ids to record, e.g. 0-15 or 1,5,9")
    s.add_argument("--restore-from-checkpoint", metavar="K")
    s.add_argument("--no-plot", action="store_true")
    s.add_argument("--gpu", action="store_true",
                   help="run on GPUs (one per rank; same as run.backend = \"gpu\")")
    _force(s)

    s = sub.add_parser("plot", help="figures from a test.h5 file")
    s.add_argument("test_file", type=Path)
    s.add_argument("--neurons", help="subset of the recorded ids, e.g. 1,5,9,13")

    s = sub.add_parser("run", help="new (if needed), init, train, test and plot in one go")
    s.add_argument("dir", type=Path)
    s.add_argument("--nloops", type=int, default=100)
    s.add_argument("--ntrials", type=int, default=DEFAULT_TRIALS,
                   help=f"test trials per task (default {DEFAULT_TRIALS})")
    s.add_argument("--correlation-interval", type=int, default=1)
    s.add_argument("--gpu", action="store_true",
                   help="run on GPUs (one per rank; same as run.backend = \"gpu\")")
    _force(s)

    s = sub.add_parser("status", help="where a run stands (DIR [--json]), from its files",
                       add_help=False)
    s.add_argument("rest", nargs=argparse.REMAINDER)

    s = sub.add_parser("verify", help="check files against their checksums (DIR|FILE...); "
                       "exit 65 when one is damaged",
                       description="Read every dataset of the files in 64 MB blocks and compare "
                       "it with the CRC-32 checksums its writers stored; no training, no MPI. "
                       "Prints one line per file and the newest intact checkpoint. Exit code 0 "
                       "when all are intact, 65 when one is corrupted, incomplete or unreadable, "
                       "2 when a path does not exist.")
    s.add_argument("paths", nargs="+", type=Path, metavar="DIR|FILE",
                   help="run directories (their *.h5 and checkpoints/) or HDF5 files")

    s = sub.add_parser("evaluate", help="re-score a data fit's test.h5 on its held-out trials "
                       "and redraw the fit figures (no simulation)")
    s.add_argument("dir", type=Path)
    s.add_argument("--units", help="neurons whose PSTHs are drawn, e.g. 0,5,9")
    s.add_argument("--no-plot", action="store_true")

    sub.add_parser("info", help="versions, MPI, parallel HDF5, threads, GPUs")
    s = sub.add_parser("gather", help="compare the learning curves of several run dirs",
                       add_help=False)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s = sub.add_parser("plan", help="predict memory per rank and s/loop for DIR|CONFIG --ranks R",
                       add_help=False)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    return p


# new --data options -> [data] keys (docs/fitting.md; None = the default)
DATA_OPTIONS = (
    ("--trials", "trials", str, "SONATA input: trials file (.csv or .toml), times in s"),
    ("--population", "population", str, "SONATA input: population under /spikes"),
    ("--condition", "condition", str, "trials column with the condition (default 'condition')"),
    ("--align", "align", str, "trials column that is each trial's time zero (default "
     "start_time)"),
    ("--window-start", "window_start", float, "window start after the alignment (ms, default 0)"),
    ("--window-stop", "window_stop", float, "window end after the alignment (ms; default the "
     "shortest trial)"),
    ("--bin-width", "bin_width", float, "PSTH bin width (ms, default 10)"),
    ("--smooth-kernel", "smooth_kernel", str, "gaussian (default), boxcar or none"),
    ("--smooth-width", "smooth_width", float, "Gaussian sd or boxcar width (ms, default 20)"),
    ("--min-rate", "min_rate", float, "leave out units below this rate (Hz, default 0.5)"),
    ("--max-units", "max_units", int, "fit only the first N units kept (default all)"),
    ("--heldout-fraction", "heldout_fraction", float, "trials held out per condition (default "
     "0.25)"),
    ("--split-seed", "split_seed", int, "seed of the held-out split (default 1)"),
    ("--hidden", "hidden", int, "unrecorded neurons added to the network (default 0)"),
)


def _data_options(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("fitting a recording (docs/fitting.md)")
    g.add_argument("--data", type=Path, metavar="FILE",
                   help="recording to fit: NWB (.nwb), SONATA spikes (.h5 + --trials), or a "
                   "PSTH array (.npy/.h5, units x conditions x bins)")
    for flag, _, typ, text in DATA_OPTIONS:
        g.add_argument(flag, type=typ, help=text)


def _data_settings(args) -> dict | None:
    """The [data] options given on the command line (an error without --data)."""
    given = {key: getattr(args, key) for _, key, _, _ in DATA_OPTIONS
             if getattr(args, key, None) is not None}  # fmt: skip
    if given and args.data is None:
        from tsn_mpi.errors import ConfigError

        raise ConfigError(f"--{next(iter(given)).replace('_', '-')} needs --data FILE")
    return given


def _force(s: argparse.ArgumentParser) -> None:
    s.add_argument("--force", action="store_true",
                   help="start even if the memory check says the launch does not fit, or "
                   "another live job's heartbeat claims the run directory")


def _positive(name: str, value: int | None) -> None:
    from tsn_mpi.errors import ConfigError

    if value is not None and value < 1:
        raise ConfigError(f"--{name} = {value}: must be at least 1")


def _check_args(args) -> None:
    """Numbers given on the command line, checked before MPI starts (like the config)."""
    from tsn_mpi.errors import ConfigError

    for name in ("nloops", "total_loops", "correlation_interval", "ntrials"):
        _positive(name.replace("_", "-"), getattr(args, name, None))
    for name in ("checkpoint_every", "checkpoint_minutes", "checkpoint_keep"):
        value = getattr(args, name, None)
        if value is not None and not value >= 0:
            raise ConfigError(f"--{name.replace('_', '-')} = {value}: must be >= 0 (0: off)")
    text = getattr(args, "itasks", None)
    if text is not None and not text.strip():
        args.itasks = None  # empty: all tasks, as before
    elif text is not None:
        parts = text.replace(" ", "").split(",")
        if not all(p.isdigit() for p in parts):
            raise ConfigError(f"--itasks = {text!r}: expected task numbers >= 0, e.g. 0,1")
        args.itasks = [int(p) for p in parts]


def _dispatch(args, comm) -> int:
    from tsn_mpi import api

    if args.cmd == "new":
        path = api.new(args.dir, args.config, args.force, data=args.data,
                       data_options=_data_settings(args), quiet=args.quiet)  # fmt: skip
        print(f"wrote {path}; edit it, then run 'tsn-mpi init {args.dir}'")
    elif args.cmd == "evaluate":
        units = [int(x) for x in args.units.split(",")] if args.units else None
        api.evaluate(args.dir, units=units, no_plot=args.no_plot, quiet=args.quiet)
    elif args.cmd == "init":
        api.init(args.dir, itasks=args.itasks, comm=comm, quiet=args.quiet, force=args.force)
    elif args.cmd == "train":
        api.train(
            args.dir, nloops=None if args.total_loops else args.nloops,
            correlation_interval=args.correlation_interval,
            save_best_checkpoint=args.save_best_checkpoint,
            restore_from_checkpoint=args.restore_from_checkpoint,
            total_loops=args.total_loops, comm=comm, quiet=args.quiet,
            monitor_resources=args.monitor_resources, backend="gpu" if args.gpu else None,
            force=args.force, checkpoint_every=args.checkpoint_every,
            checkpoint_minutes=args.checkpoint_minutes, checkpoint_keep=args.checkpoint_keep,
        )
    elif args.cmd == "test":
        api.test(args.dir, ntrials=args.ntrials, neurons=args.neurons,
                     restore_from_checkpoint=args.restore_from_checkpoint,
                     no_plot=args.no_plot, comm=comm, quiet=args.quiet,
                     backend="gpu" if args.gpu else None, force=args.force)
    elif args.cmd == "plot":
        neurons = [int(x) for x in args.neurons.split(",")] if args.neurons else None
        for path in api.plot(args.test_file, neurons):
            print(f"wrote {path}")
    elif args.cmd == "run":
        api.run(args.dir, nloops=args.nloops, ntrials=args.ntrials, comm=comm,
                    correlation_interval=args.correlation_interval,
                    backend="gpu" if args.gpu else None, force=args.force)
    elif args.cmd == "info":
        from tsn_mpi.info import print_info

        print_info(comm)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["status"]:  # its own parser, --help included (no MPI, no phase)
        from tsn_mpi.status import status_main

        return status_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.cmd == "gather":
        from tsn_mpi.plot import sweep

        return sweep.main(args.rest)
    if args.cmd == "plan":
        from tsn_mpi.plan import plan_main

        return plan_main(args.rest)
    if args.cmd == "verify":
        from tsn_mpi.io.verify import verify_main

        return verify_main(args.paths, quiet=args.quiet)
    rank = env_rank()
    comm = None
    try:
        # validation before any MPI start-up or heavy work: a typo fails in a second
        if args.cmd in ("init", "train", "test", "run") and not (
            args.cmd == "run" and not (args.dir / "config.toml").exists()
        ):
            from tsn_mpi.config import load_config
            from tsn_mpi.phases.common import CONFIG_NAME

            load_config(args.dir / CONFIG_NAME)
        _check_args(args)
        if args.cmd not in ("new", "evaluate"):
            from tsn_mpi.comm import make_comm

            comm = make_comm()
            rank = comm.rank
        return _dispatch(args, comm)
    except TsnError as exc:
        _report(exc, rank, comm)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: traceback here, stop every rank
        err = _storage_error(exc)
        if err is not None:  # disk full, quota, read-only... outside the phases' own checks
            _report(err, rank, comm)
            return err.exit_code
        traceback.print_exc()
        sys.stderr.flush()
        if comm is not None and comm.size > 1:
            comm.abort(1)
        return 1


def _storage_error(exc: BaseException) -> TsnError | None:
    """An OSError of the storage (ENOSPC, EDQUOT, EROFS, EIO, EACCES) naming a file, as the
    one-line OutputError (exit code 74); None for anything else."""
    if not isinstance(exc, OSError) or not exc.filename:
        return None
    from tsn_mpi.io import space

    return space.output_error(exc, Path(exc.filename)) if space.is_io_error(exc) else None


def _report(exc: TsnError, rank: int, comm) -> None:
    from tsn_mpi.comm.agree import AgreedError
    from tsn_mpi.errors import DivergenceError, Interrupted

    msg = f"tsn-mpi: error: {exc}" if exc.exit_code in (2, 65, 74) else f"tsn-mpi: {exc}"
    # these are raised on every rank together (decided by a collective)
    agreed = isinstance(exc, (AgreedError, DivergenceError, Interrupted)) or comm is None or (
        comm.size == 1) or getattr(exc, "agreed", False)
    if rank == 0:
        print(msg, file=sys.stderr, flush=True)
    elif not agreed:
        time.sleep(2.0)  # let rank 0 report first if it failed too
        print(msg, file=sys.stderr, flush=True)
    if comm is not None and comm.size > 1 and not agreed:
        comm.abort(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
