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


def test_source_hash_follows_numba_modules_only(tmp_path):
    """An edit to a module that uses numba (or a new one) changes the key; an edit elsewhere
    does not; the key does not depend on where the tree lies."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    kernel = pkg / "sub" / "kernel.py"
    plain = pkg / "plain.py"
    kernel.write_text("from numba import njit\nX = 1\n")
    plain.write_text("Y = 1\n")
    h0 = _numba_cache.source_hash(pkg)
    plain.write_text("Y = 2\n")
    assert _numba_cache.source_hash(pkg) == h0
    kernel.write_text("from numba import njit\nX = 2\n")
    h1 = _numba_cache.source_hash(pkg)
    assert h1 != h0
    (pkg / "more.py").write_text("import numba\n")
    h2 = _numba_cache.source_hash(pkg)
    assert h2 not in (h0, h1)
    (pkg / "consts.py").write_text("TILE = 32\n")  # imported by a kernel module: hashed
    kernel.write_text("from numba import njit\nfrom pkg.consts import TILE\n")
    h3 = _numba_cache.source_hash(pkg)
    (pkg / "consts.py").write_text("TILE = 64\n")
    assert _numba_cache.source_hash(pkg) != h3
    h2 = _numba_cache.source_hash(pkg)
    moved = tmp_path / "elsewhere"
    pkg.rename(moved)
    assert _numba_cache.source_hash(moved) == h2
