"""Crash-safe file replacement: temporary names, fsync, rename, leftovers.

A file is written under a hidden temporary name beside its target, fsynced, then renamed onto
the target with :func:`os.replace` (atomic on POSIX file systems), and the directory is fsynced
so the rename itself survives a crash.  A reader therefore sees either the previous file or the
complete new one, never a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path

TMP_TAG = ".tmp-"


def temp_path(path: Path, job: str) -> Path:
    """The temporary name used while ``path`` is written: ``.<name>.tmp-<job>``, same folder."""
    return path.parent / f".{path.name}{TMP_TAG}{job}"


def is_temp_name(name: str) -> bool:
    """True for names made by :func:`temp_path` (never a finished file)."""
    return name.startswith(".") and TMP_TAG in name


def job_tag() -> str:
    """A tag unique to this writer on this machine: SLURM job id (when set) and process id."""
    slurm = os.environ.get("SLURM_JOB_ID")
    return f"{slurm}-{os.getpid()}" if slurm else str(os.getpid())


def fsync_file(path: Path) -> None:
    """Flush the file's data and metadata to stable storage (all writers' pages on this host)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable (a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def commit(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` onto ``path`` atomically and make the rename durable."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


def discard(tmp: Path) -> None:
    """Remove a temporary file if it exists (on a read-only file system there is none)."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError:
        if os.path.lexists(tmp):
            raise


def remove_leftovers(path: Path, keep: Path | None = None) -> list[Path]:
    """Delete temporary files of earlier, killed writers of ``path`` (not ``keep``)."""
    prefix = f".{path.name}{TMP_TAG}"
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        p = Path(entry.path)
        if entry.name.startswith(prefix) and p != keep:
            discard(p)
            removed.append(p)
    return removed


def remove_temp_files(directory: Path, prefix: str = "") -> list[Path]:
    """Delete the temporary files of killed writers in ``directory`` whose target name starts
    with ``prefix`` (e.g. every ``.ckpt-*.h5.tmp-*`` when a run resumes).  Only for files no
    live writer can own: call it when this job is the only writer of the directory."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if is_temp_name(entry.name) and entry.name[1:].startswith(prefix):
            discard(Path(entry.path))
            removed.append(Path(entry.path))
    return removed
