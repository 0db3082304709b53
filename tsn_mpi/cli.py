"""Command line: ``tsn-mpi <new|init|train|test|plot|run|info|gather> ...``.

Exit codes: 0 success, 2 bad input (one line on stderr, printed by rank 0), 3 divergence,
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

    s = sub.add_parser("new", help="write DIR/config.toml with the default configuration")
    s.add_argument("dir", type=Path)
    s.add_argument("--from", dest="config", type=Path, help="copy this config instead")
    s.add_argument("--force", action="store_true", help="overwrite an existing config.toml")

    s = sub.add_parser("init", help="build connectivity, targets, stimulus and initial P")
    s.add_argument("dir", type=Path)
    s.add_argument("--itasks", help="tasks of the target file to use, e.g. 0,1 (default all)")

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
    s.add_argument("--gpu", action="store_true",
                   help="run on GPUs (one per rank; same as run.backend = \"gpu\")")

    s = sub.add_parser("test", help="run trials without learning, record, and plot")
    s.add_argument("dir", type=Path)
    s.add_argument("--ntrials", type=int, default=1)
    s.add_argument("--neurons", help="global ids to record, e.g. 0-15 or 1,5,9")
    s.add_argument("--restore-from-checkpoint", metavar="K")
    s.add_argument("--no-plot", action="store_true")
    s.add_argument("--gpu", action="store_true",
                   help="run on GPUs (one per rank; same as run.backend = \"gpu\")")

    s = sub.add_parser("plot", help="figures from a test.h5 file")
    s.add_argument("test_file", type=Path)
    s.add_argument("--neurons", help="subset of the recorded ids, e.g. 1,5,9,13")

    s = sub.add_parser("run", help="new (if needed), init, train, test and plot in one go")
    s.add_argument("dir", type=Path)
    s.add_argument("--nloops", type=int, default=100)
    s.add_argument("--ntrials", type=int, default=1)
    s.add_argument("--correlation-interval", type=int, default=1)
    s.add_argument("--gpu", action="store_true",
                   help="run on GPUs (one per rank; same as run.backend = \"gpu\")")

    sub.add_parser("info", help="versions, MPI, parallel HDF5, threads, GPUs")
    s = sub.add_parser("gather", help="compare the learning curves of several run dirs",
                       add_help=False)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s = sub.add_parser("plan", help="predict memory per rank and s/loop for DIR|CONFIG --ranks R",
                       add_help=False)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _positive(name: str, value: int | None) -> None:
    from tsn_mpi.errors import ConfigError

    if value is not None and value < 1:
        raise ConfigError(f"--{name} = {value}: must be at least 1")


def _check_args(args) -> None:
    """Numbers given on the command line, checked before MPI starts (like the config)."""
    from tsn_mpi.errors import ConfigError

    for name in ("nloops", "total_loops", "correlation_interval", "ntrials"):
        _positive(name.replace("_", "-"), getattr(args, name, None))
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
        path = api.new(args.dir, args.config, args.force)
        print(f"wrote {path}; edit it, then run 'tsn-mpi init {args.dir}'")
    elif args.cmd == "init":
        api.init(args.dir, itasks=args.itasks, comm=comm, quiet=args.quiet)
    elif args.cmd == "train":
        api.train(
            args.dir, nloops=None if args.total_loops else args.nloops,
            correlation_interval=args.correlation_interval,
            save_best_checkpoint=args.save_best_checkpoint,
            restore_from_checkpoint=args.restore_from_checkpoint,
            total_loops=args.total_loops, comm=comm, quiet=args.quiet,
            monitor_resources=args.monitor_resources, backend="gpu" if args.gpu else None,
        )
    elif args.cmd == "test":
        api.test(args.dir, ntrials=args.ntrials, neurons=args.neurons,
                     restore_from_checkpoint=args.restore_from_checkpoint,
                     no_plot=args.no_plot, comm=comm, quiet=args.quiet,
                     backend="gpu" if args.gpu else None)
    elif args.cmd == "plot":
        neurons = [int(x) for x in args.neurons.split(",")] if args.neurons else None
        for path in api.plot(args.test_file, neurons):
            print(f"wrote {path}")
    elif args.cmd == "run":
        api.run(args.dir, nloops=args.nloops, ntrials=args.ntrials, comm=comm,
                    correlation_interval=args.correlation_interval,
                    backend="gpu" if args.gpu else None)
    elif args.cmd == "info":
        from tsn_mpi.info import print_info

        print_info(comm)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "gather":
        from tsn_mpi.plot import sweep

        return sweep.main(args.rest)
    if args.cmd == "plan":
        from tsn_mpi.plan import plan_main

        return plan_main(args.rest)
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
        if args.cmd != "new":
            from tsn_mpi.comm import make_comm

            comm = make_comm()
            rank = comm.rank
        return _dispatch(args, comm)
    except TsnError as exc:
        _report(exc, rank, comm)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - a bug: traceback here, stop every rank
        traceback.print_exc()
        sys.stderr.flush()
        if comm is not None and comm.size > 1:
            comm.abort(1)
        return 1


def _report(exc: TsnError, rank: int, comm) -> None:
    from tsn_mpi.comm.agree import AgreedError
    from tsn_mpi.errors import DivergenceError, Interrupted

    msg = f"tsn-mpi: error: {exc}" if exc.exit_code == 2 else f"tsn-mpi: {exc}"
    # these are raised on every rank together (decided by a collective)
    agreed = isinstance(exc, (AgreedError, DivergenceError, Interrupted)) or comm is None or (
        comm.size == 1)
    if rank == 0:
        print(msg, file=sys.stderr, flush=True)
    elif not agreed:
        time.sleep(2.0)  # let rank 0 report first if it failed too
        print(msg, file=sys.stderr, flush=True)
    if comm is not None and comm.size > 1 and not agreed:
        comm.abort(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
