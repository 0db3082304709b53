"""``<run_dir>/heartbeat.json``: what the job working on a run directory is doing, for
``tsn-mpi status`` on any node that sees the files.

Rank 0 of ``init``, ``train`` and ``test`` writes it when the phase starts, at every stage and
loop (at most once a second), every :data:`INTERVAL_S` seconds from a daemon thread (so a long
loop, a compilation or a checkpoint write still shows a fresh heartbeat), and once more when
the phase ends: ``state`` is then ``finished``, ``interrupted``, ``diverged`` or ``failed``.
Updates closer than :data:`MIN_WRITE_S` are written by the thread within that time.  A
heartbeat left ``running`` whose process is gone (same host) or that is older than
:func:`stale_after` belongs to a job that was killed.  Written atomically (temporary name,
rename): a reader sees the previous or the new content, never a partial one.

A phase refuses to start on a run directory whose heartbeat shows another live job
(:func:`check_not_in_use`; ``--force`` overrides), so two jobs never write one run.

Fields: ``format``, ``phase``, ``state``, ``pid``, ``host``, ``slurm_job``, ``ranks``, ``command``,
``started``/``updated``/``ended`` (Unix seconds), ``interval_s``, and what the phase adds
(``stage``, ``progress``; train: ``loop``, ``first_loop``, ``last_loop``, ``s_per_loop``,
``eta_s``; test: ``trial``, ``ntrials``), ``error`` for a failed phase.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tsn_mpi.io.atomic import job_tag, temp_path

HEARTBEAT_NAME = "heartbeat.json"
FORMAT = 1
INTERVAL_S = 15.0  # the daemon thread's period
MIN_WRITE_S = 1.0  # updates between two writes closer than this wait for the next one


def heartbeat_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / HEARTBEAT_NAME


def stale_after(hb: dict[str, Any]) -> float:
    """Seconds without an update after which a ``running`` heartbeat means a dead job: eight
    periods, at least two minutes (a compiled call may hold the interpreter for a while)."""
    return max(120.0, 8.0 * float(hb.get("interval_s", INTERVAL_S)))


class Heartbeat:
    """Rank 0's heartbeat of one phase (``active`` False: does nothing, for other ranks).

    ``with Heartbeat(run_dir, "train", ranks=2) as hb: hb.update(loop=3)``; leaving the block
    by an exception records how the phase ended."""

    def __init__(
        self,
        run_dir: str | Path,
        phase: str,
        active: bool = True,
        interval: float = INTERVAL_S,
        **fields: Any,
    ) -> None:
        self.path = heartbeat_path(run_dir)
        self.active = active
        self.interval = float(interval)
        now = time.time()
        self.fields: dict[str, Any] = {
            "format": FORMAT,
            "phase": phase,
            "state": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(_command()),
            "slurm_job": os.environ.get("SLURM_JOB_ID"),
            "started": now,
            "updated": now,
            "interval_s": self.interval,
            **fields,
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = 0.0
        self._pending = False
        self.failed_writes = 0

    def __enter__(self) -> Heartbeat:
        if self.active:
            self._write(force=True)
            self._thread = threading.Thread(target=self._beat, daemon=True, name="tsn-heartbeat")
            self._thread.start()
        return self

    def update(self, force: bool = False, **fields: Any) -> None:
        """Merge ``fields``; written now unless the last write was under a second ago (then
        by the thread within a second)."""
        if not self.active:
            return
        with self._lock:
            self.fields.update(fields)
            self._pending = True
        self._write(force=force)

    def stage(self, label: str, fraction: float | None) -> None:
        """Reporter.on_progress hook: the current stage and its progress (0..1 or None)."""
        self.update(stage=label, progress=None if fraction is None else round(fraction, 4))

    def _beat(self) -> None:
        while not self._stop.wait(min(MIN_WRITE_S, self.interval)):
            if self._pending or time.time() - self._last >= self.interval:
                self._write(force=True)

    def _write(self, force: bool = False) -> None:
        now = time.time()
        with self._lock:
            if not force and now - self._last < MIN_WRITE_S:
                return
            self.fields["updated"] = now
            text = json.dumps(self.fields, indent=1, default=_plain) + "\n"
            self._last = now
            self._pending = False
            tmp = temp_path(self.path, f"{job_tag()}-hb")
            try:
                tmp.write_text(text)
                os.replace(tmp, self.path)
            except OSError:  # a full or read-only disk must not stop the run over its heartbeat
                self.failed_writes += 1
                try:
                    tmp.unlink()
                except OSError:
                    pass

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.active:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        state, error = "finished", None
        if exc_type is not None:
            state, error = _ending(exc_type, exc)
        with self._lock:
            self.fields["state"] = state
            self.fields["ended"] = time.time()
            if error:
                self.fields["error"] = error
        self._write(force=True)


def _ending(exc_type, exc) -> tuple[str, str]:
    name = exc_type.__name__
    text = " ".join(str(exc).split())[:300]
    if name == "Interrupted" or issubclass(exc_type, KeyboardInterrupt):
        return "interrupted", text or "interrupted"
    if name == "DivergenceError":
        return "diverged", text
    return "failed", f"{name}: {text}" if text else name


def _plain(x: Any) -> Any:
    try:
        return x.item()  # numpy scalars
    except AttributeError:
        return str(x)


def _command() -> list[str]:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("__main__.py", "tsn-mpi", "tsn_mpi")):
        argv[0] = "tsn-mpi"
    return argv


def read_heartbeat(run_dir: str | Path) -> dict[str, Any] | None:
    """The heartbeat of ``run_dir``, None when there is none or it cannot be parsed."""
    try:
        data = json.loads(heartbeat_path(run_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_not_in_use(run_dir: str | Path, phase: str) -> None:
    """Raise :class:`~tsn_mpi.errors.RunInUseError` when another live job's heartbeat claims
    ``run_dir`` (state ``running``, fresh, and on this host its process alive).  The same
    SLURM job (a requeued or resubmitted step) may take over its own heartbeat."""
    from tsn_mpi.errors import RunInUseError

    hb = read_heartbeat(run_dir)
    if hb is None or not liveness(hb)[0]:
        return
    if hb.get("host") == socket.gethostname() and int(hb.get("pid", 0) or 0) == os.getpid():
        return
    job = os.environ.get("SLURM_JOB_ID")
    if job and hb.get("slurm_job") == job:
        return
    age = max(0, int(time.time() - float(hb.get("updated", 0.0))))
    raise RunInUseError(
        f"{phase}: run directory {run_dir} is in use by {hb.get('phase', '?')} (pid "
        f"{hb.get('pid', '?')} on {hb.get('host', '?')}, heartbeat {age} s ago): wait for it, "
        f"stop it, or pass --force if that job is gone"
    )


def liveness(hb: dict[str, Any], now: float | None = None) -> tuple[bool, str]:
    """(running?, why) for a heartbeat: ``running`` state, fresh, and on this host its
    process still exists."""
    now = time.time() if now is None else now
    age = now - float(hb.get("updated", 0.0))
    state = hb.get("state", "?")
    if state != "running":
        return False, state
    if hb.get("host") == socket.gethostname():
        pid = int(hb.get("pid", 0) or 0)
        if pid > 0 and not _pid_alive(pid):
            return False, f"process {pid} is gone (killed or crashed)"
    if age > stale_after(hb):
        return False, f"no heartbeat for {int(age)} s (killed or crashed)"
    return True, "running"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except OSError:
        return True
    return True
