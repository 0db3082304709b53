"""Tests on an emulated multi-node cluster (launch/emulated-cluster.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "launch" / "emulated-cluster.sh"
STATE = Path(os.environ.get("TSN_CLUSTER_STATE", "/run/tsn-cluster"))


def nodes_up() -> list[str]:
    """Names of the emulated nodes that are up (tsnnode1, tsnnode2, ...), in order."""
    if not (STATE / "ssh").is_file():
        return []
    names = []
    while Path(f"/run/netns/tsnnode{len(names) + 1}").exists():
        names.append(f"tsnnode{len(names) + 1}")
    return names


def why_not_up(n: int) -> str | None:
    """None when at least ``n`` emulated nodes are up, else why not (a skip reason)."""
    up = nodes_up()
    if len(up) >= n:
        return None
    try:
        res = subprocess.run(
            ["bash", str(CLUSTER), "check"], capture_output=True, text=True, timeout=30
        )
        can = res.stdout.strip() if res.returncode != 0 else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        can = str(exc)
    if can:
        return f"no emulated cluster possible here: {can}"
    return (
        f"the emulated cluster is not up ({len(up)} of {n} nodes): run "
        f"'launch/emulated-cluster.sh up {n}' as root"
    )
