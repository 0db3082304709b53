"""A small file system made by a test: a size-limited tmpfs (needs root, or CAP_SYS_ADMIN).

Tests that need a full disk use the ``small_fs`` fixture; where mounting is not allowed
(not root, a container without the capability) they are skipped with the reason.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def mount_tmpfs(path: Path, size_bytes: int) -> str | None:
    """Mount a tmpfs of ``size_bytes`` at ``path``; None, or why it cannot be done."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs",
                            str(path)], capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run mount: {e}"
    if r.returncode:
        return f"mounting a tmpfs is not allowed here: {r.stderr.strip() or r.returncode}"
    return None


def remount(path: Path, option: str) -> None:
    """``mount -o remount,<option>`` (e.g. ``size=4m`` or ``ro``)."""
    subprocess.run(["mount", "-o", f"remount,{option}", str(path)], check=True, timeout=30)


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_fs(size_bytes)`` mounts a tmpfs of that size under tmp_path (unmounted after
    the test) and returns its path; skips the test where mounting is not allowed."""
    mounted: list[Path] = []

    def make(size_bytes: int) -> Path:
        path = tmp_path / f"fs{len(mounted)}"
        why = mount_tmpfs(path, size_bytes)
        if why:
            pytest.skip(why)
        mounted.append(path)
        return path

    yield make
    for p in mounted:
        unmount(p)
