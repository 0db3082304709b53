"""numba's cache directory is keyed by the package's numba sources (no stale inlined code)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tsn_mpi import _numba_cache


def test_cache_dir_is_keyed_by_source_and_prunes_only_stale_versions(tmp_path):
    stale = tmp_path / "tsn-000000000000"
    recent = tmp_path / "tsn-111111111111"
    other = tmp_path / "someone-else"
    for d in (stale, recent, other):
        d.mkdir()
    old = time.time() - 2 * _numba_cache.STALE_S
    os.utime(stale, (old, old))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", "import tsn_mpi, numba; print(numba.config.CACHE_DIR)"],
        env=env, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert out == str(tmp_path / f"tsn-{_numba_cache.source_hash()}")
    assert not stale.exists() and recent.exists() and other.exists()


def test_hash_covers_modules_that_inline_into_kernels():
    names = set()
    for path in _numba_cache.PACKAGE.rglob("*.py"):
        if b"numba" in path.read_bytes():
            names.add(path.relative_to(_numba_cache.PACKAGE).as_posix())
    assert {"rng.py", "backends/cpu/loop.py", "models/lif.py"} <= names
