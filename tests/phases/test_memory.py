"""The memory gate: init/train/test stop in seconds, with one line naming the cheapest change,
when the plan of their launch does not fit the node; ``--force`` starts anyway."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, cli, write_tiny
from tests.mpirun import TSN, requires_mpi, run_mpi
from tsn_mpi.config import load_config
from tsn_mpi.phases import memory
from tsn_mpi.phases.memory import LIMIT_ENV, Launch, check_fit
from tsn_mpi.plan import GB

GiB = 1 << 30
PAPER = load_config(ROOT / "configs" / "paper-1m.toml")


def test_paper_1m_float32_on_a_24_gib_node_names_p_precision():
    """The issue's case: 25.7 GB needed on 2 ranks, 24 GiB (minus what is in use) available."""
    msg = check_fit(PAPER, Launch(2, 2, 23 * GiB), "init", "runs/p/config.toml")
    assert msg is not None and "\n" not in msg
    assert "training after init" in msg and "25.7 GB" in msg and "24.7 GB available" in msg
    assert 'learning.p_precision = "float16" in runs/p/config.toml (17.5 GB per node)' in msg
    fixed = PAPER.replace(learning__p_precision="float16")
    assert check_fit(fixed, Launch(2, 2, 23 * GiB), "init") is None


def test_cheapest_fix_order():
    # float16 does not fit, small mode does
    msg = check_fit(PAPER, Launch(2, 2, 15 * GB), "train")
    assert 'learning.mode = "small"' in msg and "(then init again)" in msg
    # neither: more nodes of the same ranks per node
    msg = check_fit(PAPER, Launch(2, 2, 8 * GB), "train")
    assert "5 nodes with 2 rank(s) each (10 ranks)" in msg
    # float64 P: float32 is the first step down
    f64 = PAPER.replace(learning__p_precision="float64")
    assert 'p_precision = "float32"' in check_fit(f64, Launch(4, 4, 40 * GB), "train")
    # each of the more-node answers really fits, one node fewer does not
    plans = memory._plans(PAPER, Launch(2, 2, 8 * GB), "train", ranks=10)
    assert memory._fits(plans)
    assert not memory._fits(memory._plans(PAPER, Launch(2, 2, 8 * GB), "train", ranks=8))


def test_test_phase_holds_no_p():
    """test never reads P: a node that cannot train the model may still test it, and P's
    precision is never the suggested fix for test."""
    assert check_fit(PAPER, Launch(2, 2, 14 * GB), "test") is None
    msg = check_fit(PAPER, Launch(2, 2, 10 * GB), "test")
    assert "p_precision" not in msg and "nodes with 2 rank(s)" in msg


def test_gpu_memory_is_checked_per_gpu():
    gpu = PAPER.replace(run__backend="gpu")
    roomy = Launch(2, 2, 64 * GB, gpu=True, gpu_avail=80 * GB)
    assert check_fit(gpu, roomy, "train") is None
    # 12.0 GB per rank (P 8.2 GB of it); two ranks share an 18 GB GPU: 9 GB each
    shared = Launch(2, 2, 64 * GB, gpu=True, gpu_avail=18 * GB, ranks_per_gpu=2)
    msg = check_fit(gpu, shared, "train")
    assert msg.startswith("not enough GPU memory: train needs 12.0 GB per rank on the GPU")
    assert "2 rank(s) per GPU), 18.0 GB free" in msg
    assert 'p_precision = "float16" in config.toml (then init again) (7.9 GB per rank on' in msg


def _limit_between_float16_and_float32(run) -> float:
    """A per-node limit (GB) that the tiny model fits with float16 P but not float32."""
    cfg = load_config(run / "config.toml")
    launch = Launch(1, 1, 1 << 50)

    def need(c):
        return max(p["node_bytes"] for p in memory._plans(c, launch, "init"))

    lo, hi = need(cfg.replace(learning__p_precision="float16")), need(cfg)
    assert lo < hi
    return (lo + hi) / 2 / GB


def test_init_stops_with_one_line_and_force_starts(tmp_path):
    run = tmp_path / "run"
    write_tiny(run, "\n[plastic]\nl_exc = 100\nl_inh = 100\n")  # P dominates: 20 MB float32
    limit = _limit_between_float16_and_float32(run)
    r = cli("init", str(run), env={LIMIT_ENV: f"{limit:.6f}"})
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "not enough memory" in lines[0] and LIMIT_ENV in lines[0]
    assert 'learning.p_precision = "float16"' in lines[0] and "--force" in lines[0]
    assert not (run / "network.h5").exists() and not (run / "heartbeat.json").exists()
    # train checks before reading any file, and says that a new init is needed
    r = cli("train", str(run), env={LIMIT_ENV: f"{limit:.6f}"})
    assert r.returncode == 2 and "(then init again)" in r.stderr
    r = cli("init", str(run), "--force", env={LIMIT_ENV: "0.01"})
    assert r.returncode == 0, r.stderr
    assert "warning: starting anyway (--force): not enough memory" in r.stdout
    assert (run / "network.h5").exists()


@pytest.mark.parametrize("value", ["lots", "-3", "0"])
def test_bad_limit_is_one_line(tmp_path, value):
    run = tmp_path / "run"
    write_tiny(run)
    r = cli("init", str(run), env={LIMIT_ENV: value})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"tsn-mpi: error: {LIMIT_ENV} = {value!r}: expected a positive number of GB"
    ]


@pytest.mark.mpi
@requires_mpi
def test_two_ranks_stop_together_with_one_line(tmp_path):
    run = tmp_path / "run"
    write_tiny(run)
    import os

    os.environ[LIMIT_ENV] = "0.01"  # inherited by mpiexec's ranks
    try:
        r = run_mpi(2, [*TSN, "init", str(run)], timeout=120)
    finally:
        del os.environ[LIMIT_ENV]
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("tsn-mpi")]
    assert len(lines) == 1 and "on 2 rank(s)" in lines[0] and "2 rank(s) x" in lines[0]
    assert not (run / "network.h5").exists()


def test_gpu_free_memory_of_the_selected_device(monkeypatch):
    """The gate reads the free memory of the GPU the backend selected; ranks of a node that
    map to the same GPU (node-local rank % GPUs) share it."""
    import sys
    import types

    from numba import cuda

    from tsn_mpi.comm import SerialComm

    fake = types.ModuleType("tsn_mpi.backends.gpu.device")
    fake.SELECTED = None
    fake.simulated = lambda: False
    monkeypatch.setitem(sys.modules, "tsn_mpi.backends.gpu.device", fake)
    assert memory._gpu_free() is None  # no device selected: not checked
    fake.SELECTED = 0

    class Ctx:
        def get_memory_info(self):
            return 70 * GB, 141 * GB  # free, total

    monkeypatch.setattr(cuda, "current_context", Ctx)
    assert memory._gpu_free() == 70 * GB
    fake.cuda = types.SimpleNamespace(gpus=[0, 1])
    fake.node_local_rank = lambda comm: 2
    assert memory._ranks_per_gpu(SerialComm(), 5) == 3  # local ranks 0, 2, 4 on GPU 0
    launch = memory.probe_launch(SerialComm(), True, 1)
    assert launch.gpu and launch.gpu_avail == 70 * GB
