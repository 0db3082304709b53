"""Provenance for benchmark results: which script, revision, command line and machine made them.

Every results file written through :func:`save_json` carries a ``provenance`` block, so a number
in the docs can be traced to the committed script and the host that produced it (timings differ
up to 2x between hosts of the same kind: compare ratios measured in one run).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo) or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_cpu_name() -> str:
    """LLVM's name for the host microarchitecture (e.g. znver3), what numba compiles for."""
    try:
        import llvmlite.binding as llvm

        return str(llvm.get_host_cpu_name())
    except Exception:  # noqa: BLE001 - llvmlite missing or too old: say so
        return "unknown"


def memory_gib() -> float:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        return 0.0


def provenance(script: str | Path, gpu: str | None = None) -> dict:
    """Script (relative to the repository), git revision and dirty flag, command line, date and
    machine (CPU model and microarchitecture, cores, memory, GPU when given)."""
    script = Path(script).resolve()
    try:
        rel = str(script.relative_to(ROOT))
    except ValueError:
        rel = str(script)
    return {
        "script": rel,
        "revision": _git("rev-parse", "HEAD") or "unknown",
        # the code differs from the revision (results files, which scripts rewrite, aside)
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".",
                           ":(exclude)benchmarks/results")),  # fmt: skip
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_arch": host_cpu_name(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "gpu": gpu,
        "python": platform.python_version(),
    }


def _jsonable(obj):
    """numpy scalars and arrays (the ``default`` of json.dumps)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return float(obj)


def save_json(path: str | Path, data: dict, script: str | Path, gpu: str | None = None,
              indent: int = 1) -> Path:
    """Write ``data`` plus a ``provenance`` block to ``path`` (parents created).

    When ``data`` already holds a ``provenance`` (a script updating part of an earlier results
    file, e.g. ``small_mode.py --kernels-only``), it is kept as ``provenance["earlier"]``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(data)
    earlier = data.pop("provenance", None)
    prov = provenance(script, gpu)
    if earlier:
        prov["earlier"] = earlier
    out = {"provenance": prov, **data}
    path.write_text(json.dumps(out, indent=indent, default=_jsonable) + "\n")
    return path
