"""Key numba's on-disk cache by the package's source, so an edit or upgrade never reuses stale code.

numba keys a cached kernel by the modification time of the file that *defines* it.  Kernels here
inline functions from other modules (the RNG, the cell models), so editing ``rng.py`` alone
would leave the time loop's cached machine code with the old generator.  Before any kernel is
compiled, this points ``numba.config.CACHE_DIR`` at ``<root>/tsn-<hash of the modules that
use numba>``, where ``<root>`` is ``$NUMBA_CACHE_DIR`` if the user set it, else the package's
``__pycache__`` (or ``~/.cache/tsn-mpi`` when that is not writable).  Directories of other
versions under the same root are removed once unused for a day (a running job may still use
one).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
STALE_S = 86400.0


_IMPORT = re.compile(rb"^\s*from\s+[A-Za-z_]+((?:\.[A-Za-z_]+)+)\s+import", re.MULTILINE)


def source_hash(package: Path = PACKAGE) -> str:
    """SHA-1 (12 hex digits) of the package's modules that use numba and of the package modules
    they import from (a constant such as a tile width is baked into compiled code), in a fixed
    file order."""
    texts = {p: p.read_bytes() for p in package.rglob("*.py")}
    keep = set()
    for path, text in texts.items():
        if b"numba" not in text:
            continue
        keep.add(path)
        for m in _IMPORT.finditer(text):  # from <pkg>.a.b import ... -> a/b.py or a/b/__init__
            rel = Path(*m.group(1).decode().strip(".").split("."))
            for cand in (package / rel.with_suffix(".py"), package / rel / "__init__.py"):
                if cand in texts:
                    keep.add(cand)
    h = hashlib.sha1()
    for path in sorted(keep):
        h.update(str(path.relative_to(package)).encode())
        h.update(texts[path])
    return h.hexdigest()[:12]


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return True
    except OSError:
        return False


def configure() -> Path | None:
    """Set numba's cache directory for this package's version; returns it (None: left alone)."""
    import numba

    user_root = os.environ.get("NUMBA_CACHE_DIR")
    roots = [Path(user_root)] if user_root else [
        PACKAGE / "__pycache__", Path.home() / ".cache" / "tsn-mpi"]
    tag = f"tsn-{source_hash()}"
    for root in roots:
        target = root / tag
        if _writable(target):
            now = time.time()
            for old in root.glob("tsn-*"):  # other versions, unused for a day
                try:
                    stale = old.name != tag and now - old.stat().st_mtime > STALE_S
                except OSError:
                    continue
                if stale and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
            numba.config.CACHE_DIR = str(target)
            return target
    return None
