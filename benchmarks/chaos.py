"""Chaos soak: one training run killed again and again, resumed each time, bitwise at the end.

    python benchmarks/chaos.py [--loops 60] [--faults 30] [--every 2] [--ranks 2,3] [--seed 1]

A tiny model (configs/tiny.toml) is initialised once; a reference copy trains ``--loops``
loops uninterrupted under ``mpiexec -n 2``.  The chaos copy trains the same loops under
``mpiexec -n R`` (R drawn from ``--ranks`` at every launch, so resumes also change the rank
count) with ``--checkpoint-every E``, and is hit by at least ``--faults`` faults at random
moments (spread over the run: the loops let pass before a kill are drawn so the remaining
faults cover the remaining loops), each followed by a resume (``train --total-loops``), round
robin over the kinds:

- ``sigkill-rank``: SIGKILL of one rank (a dead node, the OOM killer);
- ``sigkill-job``: SIGKILL of every rank at once (the job's hard limit);
- ``sigterm-job``: SIGTERM to every rank (a scheduler's warning): checkpoint ``<loop>i``, 75;
- ``kill-in-write``: SIGKILL of one rank while a checkpoint file is being written (writers
  pause 0.3 s before their ``complete`` mark: tests/mpi/pause_writes.py);
- ``disk-full``: a ballast file leaves less room than a checkpoint while the run trains: the
  next checkpoint's free-space check stops every rank (exit 74, one line); ballast removed;
- ``disk-full-in-write``: the same, past the check (tests/mpi/skip_space_check.py
  --no-reserve), so HDF5's own writes hit ENOSPC;
- ``corrupt``: 8 bytes of the newest checkpoint's ``rows/P`` inverted after a stop: the resume
  refuses it (exit 65, naming the newest intact checkpoint), the next resumes from that one.

The disk faults need a small tmpfs (root): the chaos run lives on one; without it they are
skipped (said in the results).  Per fault: kind, ranks, exit code, the loop running, the
checkpoint resumed from and the loops recomputed (the loop in progress and every completed
loop after that checkpoint; a mid-loop ``<loop>i`` checkpoint recomputes nothing).  A fault
is survived when the job stopped by itself within the timeout (no rank hung), said what the
kind should say, and the resume recomputed at most E loops.  At the end every dataset of the
final checkpoint (weights, P, state, learning curve without timings) and of
``learning-curve.h5`` must equal the reference's bit for bit; ``tsn-mpi verify`` must pass.
Writes benchmarks/results/chaos.json; exit code 1 when any acceptance criterion fails.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _provenance import save_json  # noqa: E402

from tests.procs import descendants  # noqa: E402

KINDS = (
    "sigkill-rank",
    "sigterm-job",
    "kill-in-write",
    "sigkill-job",
    "disk-full",
    "corrupt",
    "disk-full-in-write",
)
DISK_KINDS = ("disk-full", "disk-full-in-write")
CURVE_KEYS = ("loop", "task", "firing_rate_hz", "correlation", "n_nan")
HANG_S = 120.0  # a job not ended this long after its fault counts as hung
PAUSE_S = 0.3  # kill-in-write: writers pause this long before their 'complete' mark


def mpiexec() -> str:
    exe = os.environ.get("TSN_MPIEXEC") or str(Path(sys.executable).parent / "mpiexec")
    return exe if Path(exe).exists() or os.environ.get("TSN_MPIEXEC") else "mpiexec"


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.setdefault("NUMBA_NUM_THREADS", "1")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["PYTHONUNBUFFERED"] = "1"
    e.pop("TSN_MPI_COMM", None)
    return e


def rank_pids(pid: int) -> list[int]:
    """The Python rank processes of an mpiexec job."""
    out = []
    for c in descendants(pid):
        try:
            cmd = Path(f"/proc/{c}/cmdline").read_bytes()
        except OSError:
            continue
        if b"python" in cmd and (b"tsn_mpi" in cmd or b"tests/mpi/" in cmd):
            out.append(c)
    return out


def kill(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


class Job:
    """``mpiexec -n R <prog> train DIR ...`` with its stdout read line by line in a thread."""

    def __init__(
        self,
        ranks: int,
        run: Path,
        total: int,
        every: int,
        hook: list[str] | None = None,
        restore: str | None = None,
    ) -> None:
        prog = [sys.executable, *(hook or ["-m", "tsn_mpi"])]
        args = [
            "train",
            str(run),
            "--total-loops",
            str(total),
            "--checkpoint-every",
            str(every),
            "--checkpoint-minutes",
            "0",
        ]
        if restore:
            args += ["--restore-from-checkpoint", restore]
        self.cmd = [mpiexec(), "-n", str(ranks), *prog, *args]
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
            cwd=ROOT,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.rows: list[int] = []  # loops completed (table rows)
        self.elapsed: list[float] = []  # their seconds
        self.using: str | None = None
        self.closed = False  # stdout's end seen
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._readers:
            t.start()

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def _read(self) -> None:
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_err(self) -> None:
        for line in self.p.stderr:
            self._err.append(line)

    def poll_lines(self, timeout: float = 0.05) -> bool:
        """Consume printed lines; False once stdout closed."""
        if self.closed:
            return False
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return True
        if line is None:
            self.closed = True
            return False
        s = line.split()
        if line.startswith("using checkpoint"):
            self.using = s[2].rstrip(";")
        elif s and s[0].isdigit() and len(s) > 2:
            self.rows.append(int(s[0]))
            self.elapsed.append(float(s[2]))
        return True

    def wait(self, timeout: float) -> tuple[int | None, bool]:
        """(exit code, hung): a job not ended in ``timeout`` s is killed (all its processes)."""
        hung = False
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            hung = True
            kill(rank_pids(self.p.pid), signal.SIGKILL)
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        for t in self._readers:
            t.join(timeout=30)
        while self.poll_lines(1.0):
            pass
        return self.p.returncode, hung


def done_loops(label: str | None) -> int:
    """Loops a checkpoint label covers: "12" -> 12, "12i" -> 11 (loop 12 partly done)."""
    if label is None:
        return 0
    return int(label[:-1]) - 1 if label.endswith("i") else int(label.split("-")[0])


def newest_intact_label(run: Path) -> str | None:
    """The checkpoint a resume can use: the newest that verifies intact."""
    from tsn_mpi.io.verify import newest_intact

    c = newest_intact(run / "checkpoints")
    return None if c is None else c.label


def flip_newest(run: Path, rng: random.Random) -> str:
    label = newest_intact_label(run)
    path = run / "checkpoints" / f"ckpt-{label}.h5"
    with h5py.File(path, "r") as f:
        d = f["rows/P"]
        row = rng.randrange(d.shape[0])
        i = (
            d.id.get_offset()
            + row * d.dtype.itemsize * d.shape[1]
            + 8 * rng.randrange(max(1, d.shape[1] * d.dtype.itemsize // 8 - 1))
        )
    raw = bytearray(path.read_bytes())
    raw[i : i + 8] = bytes(255 - x for x in raw[i : i + 8])
    path.write_bytes(bytes(raw))
    return f"{path.name} rows/P row {row}"


def ballast(run: Path, leave: int) -> Path:
    """A file filling the run's file system up to ``leave`` free bytes."""
    st = os.statvfs(run)
    free = st.f_bavail * st.f_frsize
    path = run.parent / "ballast"
    with open(path, "wb") as fh:
        fh.truncate(0)
        if free > leave:
            os.posix_fallocate(fh.fileno(), 0, free - leave)
    return path


def ckpt_bytes(run: Path) -> int:
    return max(p.stat().st_size for p in (run / "checkpoints").glob("ckpt-*.h5"))


def compare(ref: Path, run: Path, loop: int) -> list[str]:
    """Datasets that differ between the two runs' final checkpoints and learning curves."""
    diff = []
    with (
        h5py.File(ref / "checkpoints" / f"ckpt-{loop}.h5", "r") as a,
        h5py.File(run / "checkpoints" / f"ckpt-{loop}.h5", "r") as b,
    ):
        names: list[str] = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in names:
            if n.startswith(("global/curve_", "checksums/global/curve_")) and not any(
                n.endswith(f"curve_{k}") for k in CURVE_KEYS
            ):
                continue  # timings
            if n not in b or not np.array_equal(
                a[n][()], b[n][()], equal_nan=a[n].dtype.kind == "f"
            ):
                diff.append(f"ckpt-{loop}.h5:{n}")
    with (
        h5py.File(ref / "learning-curve.h5", "r") as a,
        h5py.File(run / "learning-curve.h5", "r") as b,
    ):
        for k in CURVE_KEYS:
            if not np.array_equal(a[k][()], b[k][()], equal_nan=a[k].dtype.kind == "f"):
                diff.append(f"learning-curve.h5:{k}")
    return diff


def mount_tmpfs(path: Path, size: int) -> str | None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    return None if r.returncode == 0 else (r.stderr.strip() or "mount failed")


def one_line(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=60)
    ap.add_argument("--faults", type=int, default=30, help="at least this many faults")
    ap.add_argument("--every", type=int, default=2, help="--checkpoint-every of the run")
    ap.add_argument("--ranks", default="2,3", help="rank counts drawn from at each launch")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/tsn-chaos"))
    ap.add_argument("--max-launches", type=int, default=200)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ranks = [int(r) for r in args.ranks.split(",")]
    out = args.out
    if out.exists():
        subprocess.run(["umount", "-l", str(out / "fs")], capture_output=True)
        shutil.rmtree(out)
    out.mkdir(parents=True)
    base, ref = out / "base", out / "ref"
    base.mkdir()
    (base / "config.toml").write_text((ROOT / "configs" / "tiny.toml").read_text())
    t_all = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "tsn_mpi", "--quiet", "init", str(base)],
        env=env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if r.returncode:
        sys.exit(f"init failed: {r.stderr}")
    shutil.copytree(base, ref)
    t = time.monotonic()
    job = Job(2, ref, args.loops, args.loops)  # uninterrupted: checkpoints at the end only
    rc, hung = job.wait(3600)
    ref_s = time.monotonic() - t
    if rc != 0:
        sys.exit(f"reference run failed ({rc}): {job.stderr}")
    loop_s = float(np.median(job.elapsed)) if job.elapsed else ref_s / args.loops
    print(
        f"reference: {args.loops} loops on 2 ranks in {ref_s:.1f} s ({loop_s:.3f} s per loop)",
        flush=True,
    )

    why_no_fs = mount_tmpfs(out / "fs", 24 << 20)
    run = (out / "fs" / "run") if why_no_fs is None else out / "run"
    shutil.copytree(base, run)
    kinds = [k for k in KINDS if why_no_fs is None or k not in DISK_KINDS]
    faults: list[dict] = []
    launches = 0
    restore: str | None = None  # --restore-from-checkpoint for the next launch (after a 65)
    retry: str | None = None  # a fault kind to try again (its launch met a corrupted file)
    finished = False
    while not finished and launches < args.max_launches:
        launches += 1
        kind = retry or (kinds[len(faults) % len(kinds)] if len(faults) < args.faults else None)
        retry = None
        if kind == "corrupt" and done_loops(newest_intact_label(run)) < 1:
            kind = "sigkill-rank"  # nothing older to fall back on yet
        n = rng.choice(ranks)
        hook = None
        if kind == "kill-in-write":
            hook = [str(ROOT / "tests" / "mpi" / "pause_writes.py"), str(PAUSE_S)]
        elif kind == "disk-full-in-write":
            hook = [str(ROOT / "tests" / "mpi" / "skip_space_check.py"), "--no-reserve"]
        rec: dict = {"kind": kind, "ranks": n, "launch": launches}
        if kind == "corrupt":  # applied to the stopped run, before this launch
            rec["corrupted_label"] = newest_intact_label(run)
            rec["corrupted"] = flip_newest(run, rng)
        job = Job(n, run, args.loops, args.every, hook, restore)
        restore = None
        # loops to let pass before a kill: spread the remaining faults over the remaining loops
        # (kill kinds make the progress; disk and corruption faults mostly cost an interval)
        left = args.loops - done_loops(newest_intact_label(run))
        share = 1.4 * left / max(1, args.faults - len(faults))
        target_rows = min(rng.randint(1, max(1, round(2 * share))), max(1, left - 3))
        fired, ball = False, None
        while job.poll_lines():
            if kind in (None, "corrupt") or fired or job.using is None or not job.rows:
                continue
            if job.rows[-1] >= args.loops - 1:
                continue  # the last loop: let it finish (a fault there proves less)
            if kind == "kill-in-write":
                temps = [
                    p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".ckpt-")
                ]
                if temps:
                    time.sleep(rng.uniform(0, PAUSE_S * 0.8))
                    kill(rng.sample(rank_pids(job.p.pid), 1), signal.SIGKILL)
                    fired, rec["in_file"] = True, temps[0]
            elif kind in DISK_KINDS:
                ball = ballast(run, ckpt_bytes(run) // 2)
                fired = True
            elif len(job.rows) >= target_rows:
                time.sleep(rng.uniform(0, loop_s))
                pids = rank_pids(job.p.pid)
                if kind == "sigkill-rank":
                    kill(rng.sample(pids, 1), signal.SIGKILL)
                elif kind == "sigkill-job":
                    kill(pids, signal.SIGKILL)
                elif kind == "sigterm-job":
                    kill(pids, signal.SIGTERM)
                fired = True
        rc, hung = job.wait(HANG_S)
        if ball is not None:
            ball.unlink()
        lines = one_line(job.stderr)
        hint = None
        if rc == 65 and lines and "--restore-from-checkpoint " in lines[-1]:
            hint = lines[-1].rsplit("--restore-from-checkpoint ", 1)[1].rstrip("')")
        if rc == 0 and job.rows and job.rows[-1] == args.loops:
            finished = True
        if kind != "corrupt" and not fired:
            if rc == 65 and hint:  # a newer corrupted checkpoint met again: its hint, retry
                restore, retry = hint, kind
                print(f"launch {launches}: met a corrupted checkpoint, resuming from {hint}")
                continue
            if rc == 0:
                if kind:
                    print(f"launch {launches}: {kind} not injected (the run finished first)")
                continue
            rec["unexpected"] = True  # a failure nobody injected
        running = (job.rows[-1] + 1) if job.rows else done_loops(job.using) + 1
        resumed = newest_intact_label(run)
        rec.update(
            rc=rc,
            hung=hung,
            using=job.using,
            rows=len(job.rows),
            loop_running=running,
            resume_point=resumed,
            seconds=round(time.monotonic() - job.t0, 2),
            stderr=lines[-2:],
        )
        expect = {
            "sigterm-job": {75},
            "disk-full": {74},
            "disk-full-in-write": {74},
            "corrupt": {65},
        }.get(kind)
        rec["exit_ok"] = (rc in expect) if expect else rc not in (0, None)
        if kind in DISK_KINDS or kind == "corrupt":  # one line, saying what happened
            want = {"corrupt": "does not match its checksum"}.get(kind, "")
            rec["exit_ok"] &= len(lines) == 1 and (
                want in lines[0]
                if want
                else ("not enough space" in lines[0] or "(ENOSPC)" in lines[0])
            )
        if kind == "corrupt":
            restore = hint
            rec["resume_point"] = hint
            rec["loops_recomputed"] = done_loops(rec["corrupted_label"]) - done_loops(hint)
        else:
            rec["loops_recomputed"] = max(
                0,
                running - done_loops(resumed) - (1 if resumed and resumed == f"{running}i" else 0),
            )
        rec["survived"] = bool(
            not hung
            and rec["exit_ok"]
            and not rec.get("unexpected")
            and rec["loops_recomputed"] <= args.every
        )
        faults.append(rec)
        at = f"ckpt {rec['corrupted_label']:>3}" if kind == "corrupt" else f"loop {running:3d}"
        if kind == "corrupt":
            rec["loop_running"] = None  # the run was stopped: a file at rest was damaged
        print(
            f"fault {len(faults):3d} {kind!s:19s} R={n} rc={rc} {at} resume "
            f"from {rec['resume_point']}: {rec['loops_recomputed']} loop(s) recomputed, "
            f"{'survived' if rec['survived'] else 'NOT SURVIVED'} ({rec['seconds']:.1f} s)",
            flush=True,
        )
    # the final comparison
    last = args.loops
    diff = compare(ref, run, last) if finished else ["not finished"]
    temps = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    v = subprocess.run(
        [sys.executable, "-m", "tsn_mpi", "verify", str(run)],
        env=env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    by_kind = {k: sum(f["kind"] == k for f in faults) for k in KINDS}
    survived = sum(f["survived"] for f in faults)
    recomputed = [f.get("loops_recomputed", 0) for f in faults]
    result = {
        "config": "configs/tiny.toml",
        "loops": args.loops,
        "checkpoint_every": args.every,
        "ranks_drawn_from": ranks,
        "seed": args.seed,
        "mpiexec": mpiexec(),
        "disk_faults": "on a tmpfs" if why_no_fs is None else f"skipped: {why_no_fs}",
        "faults_injected": len(faults),
        "faults_survived": survived,
        "by_kind": by_kind,
        "hangs": sum(f["hung"] for f in faults),
        "launches": launches,
        "loops_recomputed_total": sum(recomputed),
        "loops_recomputed_max_per_fault": max(recomputed or [0]),
        "final_bitwise_equal": not diff,
        "differences": diff,
        "leftover_temp_files": temps,
        "verify_exit_code": v.returncode,
        "reference_seconds": round(ref_s, 1),
        "total_seconds": round(time.monotonic() - t_all, 1),
        "faults": faults,
    }
    ok = (
        len(faults) >= args.faults
        and survived == len(faults)
        and not diff
        and not temps
        and v.returncode == 0
        and max(recomputed or [0]) <= args.every
    )
    result["acceptance"] = "pass" if ok else "FAIL"
    path = save_json(HERE / "results" / "chaos.json", result, __file__)
    if why_no_fs is None:
        subprocess.run(["umount", "-l", str(out / "fs")], capture_output=True)
    print(
        f"faults injected {len(faults)}, survived {survived}, hangs {result['hangs']}, "
        f"loops recomputed {sum(recomputed)} (max {max(recomputed or [0])} per fault, "
        f"interval {args.every}); final checkpoint bitwise equal: {not diff}; "
        f"verify exit {v.returncode}; {result['acceptance']}"
    )
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
