"""Launch MPI programs from pytest, so one pytest run prints the closing line.

Every program launched this way must check the communicator size it was promised (first
argument) — a wrong mpiexec silently runs N singletons that would all "pass".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MPI_DIR = Path(__file__).resolve().parent / "mpi"
TSN = [sys.executable, "-m", "tsn_mpi"]  # the CLI of *this* interpreter (not whatever is on PATH)


def mpiexec() -> str | None:
    """The mpiexec that belongs to this interpreter's MPI (TSN_MPIEXEC overrides)."""
    env = os.environ.get("TSN_MPIEXEC")
    if env:
        return env
    local = Path(sys.executable).parent / "mpiexec"
    if local.exists():
        return str(local)
    return shutil.which("mpiexec")


def have_mpi() -> bool:
    if mpiexec() is None:
        return False
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


requires_mpi = pytest.mark.skipif(not have_mpi(), reason="mpi4py/mpiexec not installed")


def mpi_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NUMBA_NUM_THREADS", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("PRTE_MCA_rmaps_default_mapping_policy", ":oversubscribe")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("TSN_MPI_COMM", None)
    return env


def run_mpi(
    n: int, args: list[str], timeout: float = 300.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``mpiexec -n n <args>``; ``args`` starts with the program (python is prepended
    for .py files)."""
    exe = mpiexec()
    if exe is None:
        pytest.skip("no mpiexec")
    prog = [sys.executable, *args] if args and args[0].endswith(".py") else list(args)
    cmd = [exe, "-n", str(n), *prog]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=mpi_env(), cwd=cwd or ROOT
    )


def run_mpi_script(n: int, script: str, *args: str, timeout: float = 300.0):
    """Run tests/mpi/<script> on n ranks; the script's first argument is the expected size."""
    return run_mpi(n, [str(MPI_DIR / script), str(n), *args], timeout=timeout)
