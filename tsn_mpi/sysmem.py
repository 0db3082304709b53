"""Memory this process may still use: the node's MemAvailable, cgroup limits, its own RSS.

Read from /proc and /sys only (no dependency); every reader takes its root folder as an
argument so tests can point it at a fake tree.  ``tsn_mpi.plan.memory_gate`` compares these
numbers with the plan of a launch before a phase allocates anything.
"""

from __future__ import annotations

import os
from pathlib import Path

NO_LIMIT = 1 << 60  # cgroup v1 writes 2^63 - page for "no limit"; anything this large is none


def meminfo(path: str | Path = "/proc/meminfo") -> dict[str, int]:
    """/proc/meminfo as bytes by field name (``MemTotal``, ``MemAvailable``, ...); {} if
    unreadable."""
    out: dict[str, int] = {}
    try:
        with open(path) as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
                    out[name.strip()] = int(parts[0]) * scale
    except OSError:
        pass
    return out


def rss_bytes(path: str | Path = "/proc/self/status") -> int:
    """Resident set size of this process (VmRSS), 0 if unknown."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return NO_LIMIT
    try:
        return int(text)
    except ValueError:
        return None


def _stat_field(path: Path, names: tuple[str, ...]) -> int:
    try:
        with open(path) as fh:
            fields = dict(line.split()[:2] for line in fh if len(line.split()) >= 2)
    except OSError:
        return 0
    for n in names:
        if n in fields and fields[n].isdigit():
            return int(fields[n])
    return 0


def _cgroup_paths(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """(v2 path, v1 memory path) of this process from /proc/self/cgroup."""
    v2 = v1 = None
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _ancestors(root: Path, rel: str) -> list[Path]:
    """``root/rel`` and each of its parents up to ``root`` (that exist)."""
    parts = [p for p in rel.strip("/").split("/") if p]
    dirs = [root.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]
    return [d for d in dirs if d.is_dir()]


def cgroup_available(
    sys_cgroup: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup"
) -> tuple[int, int] | None:
    """``(limit, available)`` bytes of the tightest memory cgroup limit over this process's
    cgroup and its parents (v2 ``memory.max``, v1 ``memory.limit_in_bytes``), available =
    limit - (usage - inactive file cache, which the kernel reclaims first); None without a
    limit."""
    root = Path(sys_cgroup)
    v2, v1 = _cgroup_paths(Path(proc_cgroup))
    best: tuple[int, int] | None = None
    candidates: list[tuple[Path, str, str, tuple[str, ...]]] = []
    if v2 is not None and (root / "cgroup.controllers").is_file():
        candidates += [
            (d, "memory.max", "memory.current", ("inactive_file",)) for d in _ancestors(root, v2)
        ]
    if v1 is not None and (root / "memory").is_dir():
        candidates += [
            (
                d,
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                ("total_inactive_file", "inactive_file"),
            )
            for d in _ancestors(root / "memory", v1)
        ]
    for d, limit_f, usage_f, inactive in candidates:
        limit = _read_int(d / limit_f)
        if limit is None or limit >= NO_LIMIT:
            continue
        usage = _read_int(d / usage_f) or 0
        cache = _stat_field(d / "memory.stat", inactive)
        avail = max(0, limit - max(0, usage - cache))
        if best is None or avail < best[1]:
            best = (limit, avail)
    return best


def available_bytes(
    proc: str | Path = "/proc", sys_cgroup: str | Path = "/sys/fs/cgroup"
) -> tuple[int, str]:
    """Bytes this process's node can still give it, and where the number comes from:
    the smaller of MemAvailable and the tightest cgroup limit's headroom."""
    info = meminfo(Path(proc) / "meminfo")
    avail = info.get("MemAvailable")
    source = "MemAvailable"
    if avail is None:  # very old kernels: free + page cache
        avail = info.get("MemFree", 0) + info.get("Cached", 0)
        source = "MemFree + Cached"
    if not avail:
        avail = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
        source = "free pages"
    cg = cgroup_available(sys_cgroup, Path(proc) / "self" / "cgroup")
    if cg is not None and cg[1] < avail:
        return cg[1], f"cgroup limit {cg[0] / 1e9:.1f} GB"
    return int(avail), source
