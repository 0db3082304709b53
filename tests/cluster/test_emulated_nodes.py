"""Ranks on different (emulated) nodes: results, checkpoints, parallel HDF5 and `tsn-mpi info`.

Needs the emulated cluster (``launch/emulated-cluster.sh up 3`` as root): each node a network,
UTS and IPC namespace, so MPI talks TCP between nodes and shared memory only within one.
Skipped with the reason when it is not up; run with ``-m cluster`` (as CI does) or
TSN_CLUSTER_TESTS=1.  Every launch checks its communicator size (the train header, the test
programs), and every placement is checked by host name, so N singletons or ranks that all
landed on one node cannot pass.  Tiny config; about 2 minutes on a 2-core machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.cluster import CLUSTER, why_not_up
from tests.conftest import cli, write_tiny
from tests.mpirun import ROOT, have_mpi, mpi_env, mpiexec

TSN = [sys.executable, "-m", "tsn_mpi"]
# the parallel-HDF5 venv of launch/install-parallel-hdf5.sh (CI builds it there)
MPI_VENV = Path(os.environ.get("TSN_MPI_VENV", "/tmp/tsn-venv-mpi"))
H5_PROG = ROOT / "tests" / "mpi" / "h5_write_read.py"

pytestmark = [pytest.mark.cluster, pytest.mark.mpi]


@pytest.fixture(autouse=True, scope="module")
def _only_when_asked(request) -> None:
    """Real multi-node launches: run with ``-m cluster`` (as CI does) or TSN_CLUSTER_TESTS=1,
    and only on a running emulated cluster of 3 nodes (otherwise skipped, saying why)."""
    if (
        "cluster" not in (request.config.getoption("markexpr") or "")
        and os.environ.get("TSN_CLUSTER_TESTS") != "1"
    ):
        pytest.skip("cluster tests run with -m cluster (or TSN_CLUSTER_TESTS=1)")
    why = why_not_up(3) or (None if have_mpi() else "mpi4py/mpiexec not installed")
    if why:
        pytest.skip(why)


def on_nodes(
    nodes: int,
    ppn: int,
    args: list[str],
    *,
    exe: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """``mpiexec`` of ``args`` with ``ppn`` ranks on each of the first ``nodes`` emulated nodes
    (block placement), through launch/emulated-cluster.sh."""
    e = mpi_env()
    e["MPIEXEC"] = exe or mpiexec() or "mpiexec"
    e.update(env or {})
    cmd = [
        "bash",
        str(CLUSTER),
        "mpiexec",
        "--nodes",
        str(nodes),
        "--ppn",
        str(ppn),
        "-n",
        str(nodes * ppn),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=ROOT)


def datasets(path: Path) -> dict[str, bytes]:
    """dtype, shape and bytes of every dataset, except timings (names ending in ``_s``)."""
    out: dict[str, bytes] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset) and not name.endswith("_s"):
            a = np.asarray(obj[()])
            out[name] = f"{a.dtype.str}{a.shape}".encode() + a.tobytes()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def assert_same_files(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        da, db = datasets(a / name), datasets(b / name)
        assert da.keys() == db.keys(), name
        diff = [k for k in da if da[k] != db[k]]
        assert not diff, f"{name}: {diff} differ"


OUTPUTS = [
    "network.h5",
    "checkpoints/ckpt-0.h5",
    "checkpoints/ckpt-2.h5",
    "learning-curve.h5",
    "test.h5",
]


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    """init, 2 training loops and a 2-trial test in one process: the reference."""
    run = tmp_path_factory.mktemp("cluster") / "serial"
    write_tiny(run)
    for args in (["init"], ["train", "--nloops", "2"], ["test", "--ntrials", "2"]):
        r = cli(args[0], str(run), *args[1:])
        assert r.returncode == 0, r.stderr
    return run


def _hosts(text: str) -> list[str]:
    return re.findall(r"^rank \d+ +(tsnnode\d+):", text, re.M)


@pytest.mark.parametrize("nodes, ppn", [(2, 1), (2, 2), (3, 1)])
def test_init_train_test_across_nodes_is_bitwise_serial(serial, tmp_path, nodes, ppn):
    run = tmp_path / "run"
    write_tiny(run)
    ranks = nodes * ppn
    for args in (["init"], ["train", "--nloops", "2"], ["test", "--ntrials", "2"]):
        r = on_nodes(nodes, ppn, [*TSN, args[0], str(run), *args[1:]])
        assert r.returncode == 0, r.stdout + r.stderr
        if args[0] == "train":
            assert f"on {ranks} rank(s)" in r.stdout
    assert_same_files(serial, run, OUTPUTS)
    where = on_nodes(nodes, ppn, [*TSN, "info"])
    assert where.returncode == 0, where.stderr
    assert _hosts(where.stdout) == [f"tsnnode{1 + r // ppn}" for r in range(ranks)]


def test_checkpoint_from_two_nodes_resumes_on_one_and_on_three(serial, tmp_path):
    two = tmp_path / "two"
    shutil.copytree(serial, two, ignore=shutil.ignore_patterns("ckpt-[1-9]*", "learning-*"))
    r = on_nodes(2, 1, [*TSN, "train", str(two), "--nloops", "2"])  # ckpt-2 written on 2 nodes
    assert r.returncode == 0, r.stdout + r.stderr
    ref = tmp_path / "ref"
    shutil.copytree(two, ref)
    r = cli("train", str(ref), "--restore-from-checkpoint", "0", "--nloops", "3")
    assert r.returncode == 0, r.stderr  # 3 loops in one process, uninterrupted
    one, three = tmp_path / "one", tmp_path / "three"
    shutil.copytree(two, one)
    shutil.copytree(two, three)
    r = cli("train", str(one), "--nloops", "1")
    assert r.returncode == 0 and "training loops 3..3" in r.stdout, r.stdout + r.stderr
    r = on_nodes(3, 1, [*TSN, "train", str(three), "--nloops", "1"])
    assert r.returncode == 0 and "loops 3..3 on 3 rank(s)" in r.stdout, r.stdout + r.stderr
    for run in (one, three):
        assert_same_files(ref, run, ["checkpoints/ckpt-3.h5"])


def test_info_reports_node_local_rank_ranks_per_node_and_threads():
    cores = len(os.sched_getaffinity(0))
    for nodes, ppn in [(2, 2), (3, 1)]:
        r = on_nodes(nodes, ppn, [*TSN, "info"], env={"NUMBA_NUM_THREADS": ""})
        assert r.returncode == 0, r.stderr
        rows = re.findall(
            r"^rank (\d+) +(\S+): node (\d+) of (\d+), node-local rank (\d+) of "
            r"(\d+) on the node, (\d+) numba thread",
            r.stdout,
            re.M,
        )
        assert len(rows) == nodes * ppn, r.stdout
        threads = max(1, cores // ppn)
        for rank, host, node, n_nodes, local, local_size, nthreads in rows:
            k = int(rank) // ppn
            assert host == f"tsnnode{k + 1}" and int(node) == k + 1, r.stdout
            assert int(n_nodes) == nodes and int(local_size) == ppn, r.stdout
            assert int(local) == int(rank) % ppn and int(nthreads) == threads, r.stdout
        assert re.search(rf"^numba threads +{threads} per rank", r.stdout, re.M), r.stdout


def _mpi_venv() -> tuple[str, str] | None:
    py = MPI_VENV / "bin" / "python"
    exe = shutil.which("mpiexec.mpich")
    if not py.is_file() or exe is None:
        return None
    ok = subprocess.run(
        [str(py), "-c", "import h5py, tsn_mpi; assert h5py.get_config().mpi"],
        capture_output=True,
        timeout=120,
    )
    return (str(py), exe) if ok.returncode == 0 else None


@pytest.mark.parametrize("strategy", ["mpio", "turns"])
def test_parallel_hdf5_from_ranks_on_different_nodes(tmp_path, strategy):
    venv = _mpi_venv()
    if venv is None:
        pytest.skip(
            f"no parallel-HDF5 venv at {MPI_VENV} with mpiexec.mpich "
            "(launch/install-parallel-hdf5.sh)"
        )
    py, exe = venv
    env = {
        "TSN_TEST_H5_WRITES": strategy,
        "TSN_TEST_IO_BYTES": "100",
        "NUMBA_CACHE_DIR": "/tmp/tsn-numba-mpi",
        # Debian's MPICH 4.0.2 runs on UCX 1.13, whose TCP transport can spin forever in
        # MPI_Finalize's endpoint flush while the peers already wait in the launcher's barrier
        # (openucx/ucx#8738): here 5 of 28 launches hung after every rank had printed "ok"
        # (one rank in uct_tcp_iface_progress, three in PMI's read; UCX_TLS=tcp,self too),
        # 0 of 24 with finalize skipped.  The file is closed (and checked below) before, so
        # skip MPI_Finalize for this stack; the PyPI MPICH (ch4:ofi) of the other tests
        # finalizes normally.
        "MPI4PY_RC_FINALIZE": "false",
    }
    path = tmp_path / "x.h5"
    r = on_nodes(2, 2, [py, str(H5_PROG), "4", "write", str(path)], exe=exe, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(f"strategy {strategy} ok") == 4, r.stdout
    from tests.io.test_h5 import file_contents, reference_file

    assert file_contents(path) == file_contents(reference_file(tmp_path))
    r = on_nodes(3, 1, [py, str(H5_PROG), "3", "read", str(path)], exe=exe, env=env)
    assert r.returncode == 0 and r.stdout.count(" ok") == 3, r.stdout + r.stderr


def test_training_with_collective_writes_across_nodes(serial, tmp_path):
    venv = _mpi_venv()
    if venv is None:
        pytest.skip(f"no parallel-HDF5 venv at {MPI_VENV} (launch/install-parallel-hdf5.sh)")
    py, exe = venv
    run = tmp_path / "run"
    write_tiny(run, '\n[run]\nh5_writes = "mpio"\n')
    env = {"NUMBA_CACHE_DIR": "/tmp/tsn-numba-mpi"}
    for args in (["init"], ["train", "--nloops", "2"]):
        r = on_nodes(2, 1, [py, "-m", "tsn_mpi", args[0], str(run), *args[1:]], exe=exe, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    info = on_nodes(2, 1, [py, "-m", "tsn_mpi", "info"], exe=exe, env=env)
    assert re.search(r"^checkpoint writes now +mpio$", info.stdout, re.M), info.stdout
    assert_same_files(serial, run, OUTPUTS[:3])
