"""Compute backends chosen by name: ``cpu`` (numba kernels) or ``gpu`` (numba-cuda kernels).

Each backend package has the same shape: ``simulator.py`` (the time loop of a rank: start a
trial, advance it, traces, its mid-trial state), ``learner.py`` (P and the RLS update) and its
kernels, and exposes a :class:`Backend` as ``BACKEND``.  The phases ask :func:`get_backend`
once and never branch on the name.  numba-cuda is imported only when ``gpu`` is requested.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from tsn_mpi.errors import ConfigError, LaunchError

BACKENDS = ("cpu", "gpu")


@dataclass(frozen=True)
class Backend:
    """What a phase needs of a backend.

    ``start(comm)``: bind this rank to its device and check it works (one-line error if not);
    ``simulator(cfg, d, net, cell, comm, tau_plas, sigma)``: the rank's time loop;
    ``learner(cfg, d, net, p_rows=None, history=None, hist_count=0)``: the rank's RLS state,
    for training (settings the backend cannot train with raise ConfigError);
    ``describe()``: one line for run headers (device, exchange path).
    """

    name: str
    start: Callable
    simulator: Callable
    learner: Callable
    describe: Callable[[], str]


def get_backend(name: str) -> Backend:
    """The backend ``tsn_mpi.backends.<name>`` (its package imported on first use)."""
    if name not in BACKENDS:
        raise ConfigError(f"run.backend = {name!r}: expected one of {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(f"tsn_mpi.backends.{name}").BACKEND
    except ImportError as exc:  # e.g. no numba.cuda: one line, not a traceback
        raise LaunchError(f"run.backend = {name!r} cannot be used here: {exc} (install "
                          f"'tsn-mpi[{name}]')") from None
