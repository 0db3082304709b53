"""``tsn-mpi status DIR``: where a run stands, on one screen, from its files alone.

Reads ``config.toml``, ``heartbeat.json`` (:mod:`tsn_mpi.io.heartbeat`), the checkpoint names,
``learning-curve.h5``, ``network.h5`` and ``test.h5`` attributes, and file sizes; starts no MPI
and needs no rank of the job, so it runs on any node that sees the files, while a job writes:
finished files are replaced atomically (a temporary name while written, which is reported as
"writing"), and HDF5 files are opened read-only without file locks.  An unreadable file is
reported, not fatal.  ``--json`` prints the same facts for scripts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from tsn_mpi.errors import DataFileError, TsnError
from tsn_mpi.io.atomic import is_temp_name
from tsn_mpi.io.heartbeat import HEARTBEAT_NAME, liveness, read_heartbeat
from tsn_mpi.io.names import CHECKPOINT_DIR, list_checkpoints
from tsn_mpi.log import format_seconds

NETWORK_NAME, CURVE_NAME, TEST_NAME, CONFIG_NAME = (
    "network.h5",
    "learning-curve.h5",
    "test.h5",
    "config.toml",
)
SPEED_WINDOW = 5  # s/loop: the median of the last loops when the heartbeat gives none


def _h5_attrs(path: Path) -> dict[str, Any]:
    """Root attributes of a finished HDF5 file (read-only, no lock); DataFileError if the file
    is unreadable or its writer did not finish."""
    import h5py

    try:
        try:
            f = h5py.File(path, "r", locking=False)
        except OSError as e:
            if "locking flag" not in str(e):
                raise
            f = h5py.File(path, "r")
        with f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
    except OSError as e:
        raise DataFileError(f"{path.name} unreadable ({str(e).splitlines()[0]})") from None
    if not attrs.get("complete", False):
        raise DataFileError(f"{path.name} is incomplete")
    return attrs


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


def _finite(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _config(run_dir: Path) -> dict[str, Any]:
    from tsn_mpi.config import derive, load_config

    path = run_dir / CONFIG_NAME
    if not path.is_file():
        return {"error": f"{path} not found"}
    try:
        cfg = load_config(path)
        d = derive(cfg)
    except TsnError as e:
        return {"error": str(e)}
    lr = cfg.learning
    return {
        "n_cells": d.n_cells,
        "k": d.k,
        "n_plastic": d.n_plastic,
        "ntasks": d.ntasks,
        "mode": lr.mode,
        "p_storage": lr.p_storage,
        "p_precision": lr.p_precision,
        "backend": cfg.run.backend,
        "model_hash": cfg.model_hash()[:12],
    }


def _curve(run_dir: Path) -> dict[str, Any] | None:
    from tsn_mpi.plot.figures import read_learning_curve

    path = run_dir / CURVE_NAME
    if not path.is_file():
        return None
    try:
        c = read_learning_curve(path)
    except TsnError as e:
        return {"error": str(e)}
    loops = [int(x) for x in c["loop"]]
    if not loops:
        return {"loops": 0}
    cor = [_finite(x) for x in c["correlation"]]
    measured = [(lp, x) for lp, x in zip(loops, cor, strict=True) if x is not None]
    elapsed = [float(x) for x in c["elapsed_s"]]
    recent = sorted((elapsed[1:] if len(elapsed) > 1 else elapsed)[-SPEED_WINDOW:])
    out: dict[str, Any] = {
        "loops": len(loops),
        "last_loop": loops[-1],
        "rate_hz": _finite(c["firing_rate_hz"][-1]),
        "s_per_loop": recent[len(recent) // 2],  # median: a compiling loop is no outlier
        "updated": path.stat().st_mtime,
    }
    if measured:
        out["correlation"], out["correlation_loop"] = measured[-1][1], measured[-1][0]
        best = max(measured, key=lambda t: t[1])
        out["best_correlation"], out["best_loop"] = best[1], best[0]
    return out


def _checkpoints(run_dir: Path) -> dict[str, Any]:
    found = list_checkpoints(run_dir / CHECKPOINT_DIR)
    out: dict[str, Any] = {"count": len(found), "bytes": sum(_size(c.path) for c in found)}
    regular = [c for c in found if c.kind != "best"]
    if regular:
        c = regular[-1]
        out["newest"] = {
            "name": c.path.name,
            "loop": c.loop,
            "kind": c.kind,
            "written": _mtime(c.path),
        }
    best = [c for c in found if c.kind == "best"]
    if best:
        c = max(best, key=lambda c: c.cor or -1.0)
        out["best"] = {"name": c.path.name, "loop": c.loop, "correlation": c.cor}
    return out


def _size(p: Path) -> int:
    try:
        st = p.stat()
    except OSError:
        return 0
    blocks = getattr(st, "st_blocks", None)
    return int(blocks * 512) if blocks is not None else int(st.st_size)


def _mtime(p: Path) -> float | None:
    try:
        return p.stat().st_mtime
    except OSError:
        return None


def _writing(run_dir: Path) -> list[dict[str, Any]]:
    """Files being written now (temporary names), heartbeats aside."""
    out = []
    for folder in (run_dir, run_dir / CHECKPOINT_DIR):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if is_temp_name(p.name) and not p.name.startswith(f".{HEARTBEAT_NAME}"):
                out.append(
                    {"file": str(p.relative_to(run_dir)), "bytes": _size(p), "modified": _mtime(p)}
                )
    return out


def _disk(run_dir: Path) -> dict[str, int]:
    parts = {"network.h5": 0, "checkpoints": 0, "test.h5": 0, "other": 0}
    for root, _dirs, files in os.walk(run_dir):
        for name in files:
            p = Path(root) / name
            rel = p.relative_to(run_dir)
            key = rel.parts[0] if rel.parts[0] in parts else "other"
            parts[key] += _size(p)
    parts["total"] = sum(parts.values())
    return parts


def _file_summary(run_dir: Path, name: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    path = run_dir / name
    if not path.is_file():
        return None
    try:
        attrs = _h5_attrs(path)
    except TsnError as e:
        return {"error": str(e)}
    out = {k: attrs[k] for k in keys if k in attrs}
    out["written"] = _mtime(path)
    return out


def run_status(run_dir: str | Path, now: float | None = None) -> dict[str, Any]:
    """Everything ``tsn-mpi status`` shows, as a dict of plain values (JSON-ready).

    Keys: run_dir, config, job (the heartbeat with ``running``/``why``/``age_s``, or None),
    loops (done, planned, first of this job), progress (last rate and correlation, best,
    s/loop, ETA), checkpoints, writing (temporary files), init, test, disk."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataFileError(f"{run_dir}: no such run directory")
    now = time.time() if now is None else now
    hb = read_heartbeat(run_dir)
    job = None
    if hb is not None:
        running, why = liveness(hb, now)
        job = {**hb, "running": running, "why": why, "age_s": now - float(hb.get("updated", now))}
    curve = _curve(run_dir)
    done = curve.get("last_loop") if curve and "error" not in curve else None
    planned = first = None
    if hb is not None and hb.get("phase") == "train":
        planned, first = hb.get("last_loop"), hb.get("first_loop")
        if hb.get("loop") is not None and (done is None or hb["loop"] > done):
            done = hb["loop"]
    prog: dict[str, Any] = {}
    if curve and "error" not in curve:
        prog = {
            k: curve[k]
            for k in (
                "rate_hz",
                "correlation",
                "correlation_loop",
                "best_correlation",
                "best_loop",
                "s_per_loop",
            )
            if k in curve
        }
    if job and job.get("phase") == "train" and _finite(job.get("s_per_loop")) is not None:
        prog["s_per_loop"] = job["s_per_loop"]  # the job's own, compilation left out
    if job and job["running"] and job.get("phase") == "train":
        eta = _finite(job.get("eta_s"))
        if eta is not None:
            since = now - float(job.get("loop_ended", job.get("updated", now)))
            prog["eta_s"] = max(eta - since, 0.0)
            prog["eta_at"] = now + prog["eta_s"]
    return {
        "run_dir": str(run_dir),
        "now": now,
        "config": _config(run_dir),
        "job": job,
        "loops": {"done": done, "planned": planned, "first_of_job": first},
        "progress": prog,
        "curve_error": curve.get("error") if curve else None,
        "checkpoints": _checkpoints(run_dir),
        "writing": _writing(run_dir),
        "init": _file_summary(run_dir, NETWORK_NAME, ("rate_e_hz", "rate_i_hz", "ntasks")),
        "test": _file_summary(run_dir, TEST_NAME, ("ntrials", "ntasks", "checkpoint")),
        "disk": _disk(run_dir),
    }


def _clock(t: float | None, now: float) -> str:
    if t is None:
        return "?"
    fmt = "%H:%M:%S" if abs(now - t) < 86400 else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(t))


def _ago(t: float | None, now: float) -> str:
    return "?" if t is None else f"{format_seconds(max(now - t, 0.0))} ago"


def _gb(b: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.2f} {unit}"
    return f"{int(b)} B"


def _job_lines(job: dict[str, Any] | None, now: float) -> list[str]:
    if job is None:
        return ["job         no heartbeat.json (no phase has run here since tsn-mpi wrote one)"]
    phase = job.get("phase", "?")
    where = f"pid {job.get('pid')} on {job.get('host')}, {job.get('ranks', '?')} rank(s)"
    started = f"started {_clock(job.get('started'), now)}"
    if job["running"]:
        doing = job.get("stage") or ""
        frac = _finite(job.get("progress"))
        if frac is not None:
            doing += f" {100 * frac:.0f} %"
        if phase == "test" and job.get("trial") is not None:
            doing = f"trial {int(job['trial']) + 1} of {job.get('ntrials', '?')}"
        head = f"{phase} RUNNING ({where}, {started}, heartbeat {_ago(job.get('updated'), now)})"
        lines = [f"job         {head}"]
        if doing.strip():
            lines.append(f"            now: {doing.strip()}")
    else:
        state = job.get("state", "?")
        if state == "running":  # left running: the process is gone
            last = _ago(job.get("updated"), now)
            head = f"{phase} NOT RUNNING: {job['why']}; last heartbeat {last}"
        else:
            ended = job.get("ended", job.get("updated"))
            head = f"{phase} {state} at {_clock(ended, now)} ({_ago(ended, now)}; {where})"
        lines = [f"job         {head}"]
        if job.get("error"):
            lines.append(f"            {job['error']}")
    if job.get("command"):
        lines.append(f"            command: {job['command']}")
    return lines


def format_status(s: dict[str, Any]) -> str:
    """The one-screen text of :func:`run_status`'s dict."""
    now = s["now"]
    c = s["config"]
    lines = [f"run         {s['run_dir']}"]
    if "error" in c:
        lines.append(f"config      {c['error']}")
    else:
        lines.append(
            f"config      N = {c['n_cells']:,}, K = {c['k']}, {c['n_plastic']} plastic inputs, "
            f"{c['mode']} mode, {c['p_storage']} {c['p_precision']} P, {c['backend']}, "
            f"{c['ntasks']} task(s) (model {c['model_hash']})"
        )
    lines += _job_lines(s["job"], now)
    lp, prog = s["loops"], s["progress"]
    if lp["done"] is not None:
        text = f"{lp['done']} done"
        if lp["planned"] is not None:
            text = f"{lp['done']} of {lp['planned']} done (this job: {lp['first_of_job']}.."
            text += f"{lp['planned']})"
        lines.append(f"loops       {text}")
    elif s["init"] is not None and "error" not in s["init"]:
        lines.append("loops       none yet (init done)")
    if s["curve_error"]:
        lines.append(f"curve       {s['curve_error']}")
    if prog.get("rate_hz") is not None or prog.get("correlation") is not None:
        parts = []
        if prog.get("correlation") is not None:
            parts.append(f"correlation {prog['correlation']:.4f} (loop {prog['correlation_loop']})")
        if prog.get("rate_hz") is not None:
            parts.append(f"rate {prog['rate_hz']:.3f} Hz")
        lines.append(f"last        {', '.join(parts)}")
        if prog.get("best_correlation") is not None:
            lines.append(
                f"best        correlation {prog['best_correlation']:.4f} (loop {prog['best_loop']})"
            )
    if prog.get("s_per_loop") is not None:
        text = f"{prog['s_per_loop']:.3f} s/loop"
        if prog.get("eta_s") is not None:
            text += f"; ETA {format_seconds(prog['eta_s'])} (about {_clock(prog['eta_at'], now)})"
        lines.append(f"speed       {text}")
    ck = s["checkpoints"]
    if ck["count"]:
        parts = []
        if "newest" in ck:
            n = ck["newest"]
            parts.append(f"newest {n['name']} (loop {n['loop']}, {_ago(n['written'], now)})")
        if "best" in ck:
            parts.append(f"best {ck['best']['name']}")
        parts.append(f"{ck['count']} file(s), {_gb(ck['bytes'])}")
        lines.append(f"checkpoints {'; '.join(parts)}")
    else:
        lines.append("checkpoints none")
    for w in s["writing"]:
        lines.append(
            f"writing     {w['file']} ({_gb(w['bytes'])} so far, "
            f"modified {_ago(w['modified'], now)})"
        )
    ini = s["init"]
    if ini is None:
        lines.append("init        not done (no network.h5)")
    elif "error" in ini:
        lines.append(f"init        {ini['error']}")
    else:
        lines.append(
            f"init        network.h5: E {ini['rate_e_hz']:.3f} Hz, I "
            f"{ini['rate_i_hz']:.3f} Hz ({_clock(ini['written'], now)})"
        )
    t = s["test"]
    if t is not None:
        if "error" in t:
            lines.append(f"test        {t['error']}")
        else:
            lines.append(
                f"test        test.h5: {t.get('ntrials')} trial(s) from checkpoint "
                f"{t.get('checkpoint')} ({_clock(t['written'], now)})"
            )
    dk = s["disk"]
    lines.append(
        f"disk        {_gb(dk['total'])} (network.h5 {_gb(dk['network.h5'])}, "
        f"checkpoints {_gb(dk['checkpoints'])}, test.h5 {_gb(dk['test.h5'])}, "
        f"other {_gb(dk['other'])})"
    )
    return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def status_main(argv: list[str] | None = None) -> int:
    """``tsn-mpi status DIR [--json]``; exit code 0, or 2 with one line for a bad DIR."""
    p = argparse.ArgumentParser(
        prog="tsn-mpi status",
        description="Where a run stands, from its files alone (safe while a job runs).",
    )
    p.add_argument("dir", type=Path, help="run directory")
    p.add_argument("--json", action="store_true", help="print the facts as JSON (for scripts)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        s = run_status(args.dir)
    except TsnError as exc:
        print(f"tsn-mpi: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_json_safe(s), indent=1, allow_nan=False))
    else:
        print(format_status(s))
    return 0
