"""The batch scripts under a real SLURM (start one with ``launch/local-slurm.sh start``).

Skipped unless ``sinfo`` answers and the run selects them (``pytest -m slurm tests/slurm``,
as CI does, or TSN_SLURM_TESTS=1).  They submit real jobs to the local cluster: a 2-task
training job, a time-limited training that must continue over several jobs (checkpoint on
the time-limit signal, resubmit, resume) and end bitwise equal to an uninterrupted run, a
wrong launch (``--mpi=none``), and a 3-run job-array sweep compared with ``tsn-mpi gather``.
About 4-5 minutes on an idle 2-core machine.

The tests marked ``cluster`` need SLURM across 2 emulated nodes (partition ``nodes``:
``launch/emulated-cluster.sh up 2 && launch/local-slurm.sh start --nodes 2``; run them with
``-m "slurm and cluster"``): ``sbatch -N 2`` trains across the nodes bitwise like one process,
``srun`` places and numbers the ranks per node, and the time-limited training resubmits itself
across the nodes.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY, write_tiny
from tests.mpirun import have_mpi, run_mpi

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"
BIN = Path(sys.executable).parent
TSN_CMD = (
    [str(BIN / "tsn-mpi")] if (BIN / "tsn-mpi").exists() else [sys.executable, "-m", "tsn_mpi"]
)


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        res = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and any(s in res.stdout for s in ("idle", "mix", "alloc"))


def _node_partition() -> list[str]:
    """The emulated nodes of partition ``nodes`` (launch/local-slurm.sh start --nodes N)."""
    try:
        res = subprocess.run(
            ["sinfo", "-h", "-N", "-p", "nodes", "-o", "%N %t"],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(
        ln.split()[0]
        for ln in res.stdout.splitlines()
        if ln.startswith("tsnnode") and ln.split()[1].rstrip("*") in ("idle", "mix", "alloc")
    )


SLURM_UP = _slurm_up()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(not SLURM_UP, reason="no SLURM answers (launch/local-slurm.sh start)"),
]
NODES = _node_partition() if SLURM_UP else []
needs_nodes = pytest.mark.skipif(
    len(NODES) < 2,
    reason="no SLURM partition 'nodes' with 2 emulated nodes "
    "(launch/emulated-cluster.sh up 2; launch/local-slurm.sh start --nodes 2)",
)


@pytest.fixture(autouse=True)
def _only_when_asked(request) -> None:
    """Minutes of real jobs: run with ``-m slurm`` (as CI does) or TSN_SLURM_TESTS=1."""
    if (
        "slurm" not in (request.config.getoption("markexpr") or "")
        and os.environ.get("TSN_SLURM_TESTS") != "1"
    ):
        pytest.skip("SLURM tests run with -m slurm (or TSN_SLURM_TESTS=1)")


def _env(**extra: str) -> dict[str, str]:
    """The job's environment: this interpreter's tsn-mpi first on PATH, no stray TSN_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TSN_", "SLURM_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if (BIN / "tsn-mpi").exists():
        env["TSN_MPI"] = str(BIN / "tsn-mpi")
    env.update(extra)
    return env


def _sbatch(
    args: list[str], cwd: Path, env: dict[str, str], wait: bool = False, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    cmd = ["sbatch", *(["--wait"] if wait else ["--parsable"]), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def _job_id(res: subprocess.CompletedProcess[str]) -> str:
    m = re.search(r"(\d+)", res.stdout)
    assert res.returncode == 0 and m, res.stdout + res.stderr
    return m.group(1)


def _tsn(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = _env(NUMBA_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "tsn_mpi", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_cpu_job_two_tasks_trains(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_tiny(run)
    init = _tsn("init", str(run))
    assert init.returncode == 0, init.stderr
    out = tmp_path / "job.out"
    t0 = time.monotonic()
    res = _sbatch(
        [
            "--ntasks=2",
            f"--output={out}",
            str(LAUNCH / "slurm-cpu.sbatch"),
            "train",
            str(run),
            "--nloops",
            "2",
        ],
        cwd=tmp_path,
        env=_env(),
        wait=True,
    )
    text = out.read_text() if out.exists() else ""
    assert res.returncode == 0, res.stdout + res.stderr + text
    assert "on 2 rank(s)" in text  # the MPI job really has size 2
    rows = [ln.split() for ln in text.splitlines() if re.match(r"\s+\d+\s+\d+\s+[\d.]+", ln)]
    assert [r[0] for r in rows] == ["1", "2"], text
    assert "end: exit 0" in (run / "slurm-jobs.log").read_text()
    assert (run / "checkpoints" / "ckpt-2.h5").is_file()
    print(f"2-task job: {time.monotonic() - t0:.1f} s")


def test_wrong_launch_fails_in_one_line_and_changes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_tiny(run)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    res = subprocess.run(
        ["srun", "-n", "2", "--mpi=none", *TSN_CMD, "init", str(run)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert res.returncode != 0
    ours = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("tsn-mpi")]
    assert len(ours) == 1, res.stdout + res.stderr
    assert "SLURM_NTASKS=2" in ours[0] and "size 1" in ours[0] and "--mpi=pmi2" in ours[0]
    after = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert after == before


def _loop_seconds(run: Path, srun: list[str] | None = None, nloops: int = 3) -> float:
    """Seconds per loop of a 2-rank train (median of loops 2..nloops-1: after the JIT, before
    the checkpoint), by mpiexec here or by ``srun`` with the given options."""
    cmd = [sys.executable, "-m", "tsn_mpi", "train", str(run), "--nloops", str(nloops)]
    if srun is None:
        res = run_mpi(2, cmd, timeout=300)
    else:
        res = subprocess.run(
            ["srun", "--mpi=pmi2", *srun, *cmd],
            capture_output=True,
            text=True,
            env=_env(NUMBA_NUM_THREADS="1"),
            timeout=300,
        )
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [ln.split() for ln in res.stdout.splitlines() if re.match(r"\s+\d+\s+\d+\s", ln)]
    return float(np.median([float(r[2]) for r in rows[1:-1]]))


def _w_in(run: Path, loop: int) -> np.ndarray:
    import h5py

    with h5py.File(run / "checkpoints" / f"ckpt-{loop}.h5", "r") as f:
        return np.asarray(f["rows/w_in"][...])


@pytest.mark.skipif(not have_mpi(), reason="mpi4py/mpiexec not installed")
def test_time_limited_training_resumes_over_jobs_bitwise(tmp_path: Path) -> None:
    """--time=1 min, SIGTERM 20-50 s before the end: checkpoint <loop>i, exit 75, resubmit."""
    _time_limited_chain(tmp_path, [], "[network]\nn_cells = 2048\n", 60.0, "00:01:00")


@pytest.mark.cluster
@needs_nodes
@pytest.mark.skipif(not have_mpi(), reason="mpi4py/mpiexec not installed")
def test_time_limited_training_across_two_nodes_resumes_bitwise(tmp_path: Path) -> None:
    """The same with one rank on each of 2 emulated nodes: every job of the chain (the
    resubmissions too) runs across both nodes and the end is bitwise the uninterrupted run.
    The tiny model: its loops are mostly the cross-node exchange, so the uninterrupted
    reference (one node) is cheap.  The signal arrives 10-40 s into each 1-minute job: on a
    loaded machine the start-up (network, compiling the MPI time loop) can take that long."""
    text = _time_limited_chain(
        tmp_path,
        ["-p", "nodes", "-N", "2", "--ntasks-per-node=1"],
        TINY,
        80.0,
        "00:01:00",
        calib_loops=6,
    )
    starts = [ln for ln in text.splitlines() if " start: " in ln]
    assert starts and all("on 2 node(s) tsnnode[1-2]" in ln for ln in starts), text


def _time_limited_chain(
    tmp_path: Path, where: list[str], config: str, seconds: float, limit: str, calib_loops: int = 3
) -> str:
    """Run the time-limited chain (sbatch options ``where``, a model of ``config``, about
    ``seconds`` of training in jobs of time limit ``limit``; SLURM rounds limits up to whole
    minutes); returns slurm-jobs.log."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.toml").write_text(config)
    assert _tsn("init", str(base)).returncode == 0
    calib = tmp_path / "calib"
    shutil.copytree(base, calib)
    per_loop = _loop_seconds(calib, where or None, calib_loops)
    # more training than a job can do before its signal (1-min jobs: 10-40 s)
    loops = min(400, max(12, math.ceil(seconds / max(per_loop, 1e-3))))
    chain, ref = tmp_path / "chain", tmp_path / "ref"
    shutil.copytree(base, chain)
    shutil.copytree(base, ref)
    t0 = time.monotonic()
    # slurmctld checks time limits every 30 s and signals when the time left is below
    # lead + 30 s: TERM@20 on a 1-minute job arrives 10-40 s after the start.  TERM@45 would
    # arrive within 0-30 s, possibly before tsn-mpi has installed its handler.
    env = _env(
        TSN_TOTAL_LOOPS=str(loops), TSN_SBATCH_OPTS="--signal=TERM@20", TSN_MAX_RESUBMITS="30"
    )
    res = _sbatch(
        [
            f"--time={limit}",
            "--signal=TERM@20",
            "--ntasks=2",
            *where,
            str(LAUNCH / "slurm-cpu.sbatch"),
            "train",
            str(chain),
        ],
        cwd=tmp_path,
        env=env,
    )
    _job_id(res)
    log = chain / "slurm-jobs.log"
    deadline = time.monotonic() + 480
    text = ""
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if re.search(r"all \d+ loops done|not resubmitting|failed", text):
            break
        time.sleep(2)
    chain_s = time.monotonic() - t0
    assert f"all {loops} loops done" in text, text
    jobs = sorted(set(re.findall(r"job (\d+)(?: task \d+)? start:", text)))
    assert len(jobs) >= 2, text
    assert "exit 75" in text and "resubmitted as job" in text
    t1 = time.monotonic()
    res = run_mpi(
        2,
        [sys.executable, "-m", "tsn_mpi", "train", str(ref), "--total-loops", str(loops)],
        timeout=900,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    a, b = _w_in(chain, loops), _w_in(ref, loops)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()  # bitwise
    print(
        f"{loops} loops ({per_loop:.2f} s each) over {len(jobs)} jobs in {chain_s:.0f} s; "
        f"uninterrupted reference {time.monotonic() - t1:.0f} s\n{text}"
    )
    return text


def test_job_array_sweep_and_gather(tmp_path: Path) -> None:
    base = tmp_path / "base"
    write_tiny(base)
    sweep = tmp_path / "sweep"
    env = _env()
    mk = subprocess.run(
        [
            sys.executable,
            str(LAUNCH / "make-sweep.py"),
            str(base),
            "learning.penlambda",
            "0.5",
            "0.8",
            "1.6",
            "--out",
            str(sweep),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert mk.returncode == 0, mk.stderr
    t0 = time.monotonic()
    res = _sbatch(
        [
            "--array=0-2",
            "--ntasks=1",
            f"--output={sweep}/log-%a.out",
            str(LAUNCH / "sweep-array.sbatch"),
            str(sweep),
        ],
        cwd=tmp_path,
        env=_env(TSN_TOTAL_LOOPS="2"),
        wait=True,
        timeout=600,
    )
    logs = "".join(p.read_text() for p in sorted(sweep.glob("log-*.out")))
    assert res.returncode == 0, res.stdout + res.stderr + logs
    names = (sweep / "runs.txt").read_text().split()
    for name in names:
        assert "all 2 loops done" in (sweep / name / "slurm-jobs.log").read_text()
    fig = sweep / "sweep.png"
    g = _tsn("gather", *[str(sweep / n) for n in names], "--out", str(fig))
    assert g.returncode == 0, g.stderr
    table = [ln for ln in g.stdout.splitlines() if ln.strip()]
    assert len(table) == 1 + 3, g.stdout  # header + one row per run
    for name in names:
        assert sum(name in ln for ln in table) == 1
    assert fig.is_file() and fig.stat().st_size > 1000
    print(f"3-run array sweep: {time.monotonic() - t0:.1f} s")


# ---- across 2 emulated nodes (partition "nodes") -------------------------------------------
def _serial_reference(tmp_path: Path) -> Path:
    ref = tmp_path / "ref"
    write_tiny(ref)
    for args in (("init", str(ref)), ("train", str(ref), "--nloops", "2")):
        res = _tsn(*args)
        assert res.returncode == 0, res.stderr
    return ref


@pytest.mark.cluster
@needs_nodes
def test_cpu_job_across_two_nodes_trains_like_one_process(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_tiny(run)
    assert _tsn("init", str(run)).returncode == 0
    out = tmp_path / "job.out"
    res = _sbatch(
        [
            "-p",
            "nodes",
            "-N",
            "2",
            "--ntasks-per-node=1",
            f"--output={out}",
            str(LAUNCH / "slurm-cpu.sbatch"),
            "train",
            str(run),
            "--nloops",
            "2",
        ],
        cwd=tmp_path,
        env=_env(),
        wait=True,
    )
    text = out.read_text() if out.exists() else ""
    assert res.returncode == 0, res.stdout + res.stderr + text
    assert "on 2 rank(s)" in text and "on 2 node(s) tsnnode[1-2]" in text, text
    ref = _serial_reference(tmp_path)
    assert _w_in(run, 2).tobytes() == _w_in(ref, 2).tobytes()  # bitwise


@pytest.mark.cluster
@needs_nodes
def test_srun_places_and_numbers_ranks_per_node() -> None:
    env = {k: v for k, v in _env().items() if k != "NUMBA_NUM_THREADS"}
    res = subprocess.run(
        ["srun", "-p", "nodes", "-N", "2", "--ntasks-per-node=2", "--mpi=pmi2", *TSN_CMD, "info"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    rows = re.findall(
        r"^rank (\d+) +(\S+): node (\d+) of 2, node-local rank (\d+) of 2 on the "
        r"node, (\d+) numba thread",
        res.stdout,
        re.M,
    )
    threads = max(1, len(os.sched_getaffinity(0)) // 2)  # task/none: every core, 2 ranks each
    assert [(int(r), h, int(n), int(lr), int(t)) for r, h, n, lr, t in rows] == [
        (r, f"tsnnode{1 + r // 2}", 1 + r // 2, r % 2, threads) for r in range(4)
    ], res.stdout
