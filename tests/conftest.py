"""Shared fixtures: tiny configurations that run in well under a second per loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = (ROOT / "configs" / "tiny.toml").read_text()  # shared with benchmarks/soak.py


def write_tiny(run_dir: Path, extra: str = "") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = run_dir / "config.toml"
    cfg.write_text(TINY + extra)
    return cfg


def cli(*args: str, cwd: Path | None = None, timeout: float = 300.0, env=None):
    """Run ``python -m tsn_mpi args`` (serial), capturing output."""
    e = dict(os.environ)
    e.pop("TSN_MPI_COMM", None)
    e.setdefault("NUMBA_NUM_THREADS", "1")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "tsn_mpi", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=e)


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    write_tiny(run)
    return run
