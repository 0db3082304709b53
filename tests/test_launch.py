"""The launch scripts: syntax, the workstation MPI wrapper for real, and the sweep helper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_tiny
from tests.mpirun import have_mpi, mpi_env

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
SCRIPTS = sorted([*LAUNCH.glob("*.sh"), *LAUNCH.glob("*.sbatch")])
SBATCH = ["slurm-cpu.sbatch", "slurm-gpu.sbatch", "sweep-array.sbatch"]
BEGIN, END = "# ---- lifecycle", "# ---- end of lifecycle"


def test_launch_scripts_exist() -> None:
    names = {p.name for p in SCRIPTS}
    for name in ["mpirun.sh", "local-slurm.sh", *SBATCH]:
        assert name in names
    assert (LAUNCH / "make-sweep.py").is_file()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_lifecycle_block_is_identical() -> None:
    """The resubmission logic is copied into each batch script; the copies must not drift."""
    blocks = []
    for name in SBATCH:
        text = (LAUNCH / name).read_text()
        assert text.count(BEGIN) == 1 and text.count(END) == 1, name
        blocks.append(text[text.index(BEGIN) : text.index(END)])
    assert blocks[0] == blocks[1] == blocks[2]


def test_sbatch_scripts_use_pmi2_and_signal_without_b() -> None:
    for name in SBATCH:
        text = (LAUNCH / name).read_text()
        assert "--mpi=\"${TSN_SRUN_MPI:-pmi2}\"" in text
        signal_lines = [ln for ln in text.splitlines() if ln.startswith("#SBATCH --signal")]
        assert len(signal_lines) == 1 and signal_lines[0].startswith("#SBATCH --signal=TERM@")


def _wrapper_env() -> dict[str, str]:
    env = mpi_env()
    env["TSN_PYTHON"] = sys.executable
    env.pop("MPIEXEC", None)
    return env


@pytest.mark.mpi
@pytest.mark.skipif(not have_mpi(), reason="mpi4py/mpiexec not installed")
def test_mpirun_wrapper_init_and_train_two_ranks(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_tiny(run)
    env = _wrapper_env()
    res = subprocess.run(["bash", str(LAUNCH / "mpirun.sh"), "-n", "2", "init", str(run)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (run / "network.h5").is_file()
    res = subprocess.run(
        ["bash", str(LAUNCH / "mpirun.sh"), "-n", "2", "train", str(run), "--nloops", "1"],
        capture_output=True, text=True, env=env, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "on 2 rank(s)" in out
    assert any(line.split()[:2] == ["1", "0"] for line in out.splitlines()), out
    assert (run / "checkpoints" / "ckpt-1.h5").is_file()


@pytest.mark.mpi
@pytest.mark.skipif(not have_mpi(), reason="mpi4py/mpiexec not installed")
def test_mpirun_wrapper_propagates_exit_code(tmp_path: Path) -> None:
    res = subprocess.run(
        ["bash", str(LAUNCH / "mpirun.sh"), "-n", "2", "train", str(tmp_path / "missing")],
        capture_output=True, text=True, env=_wrapper_env(), timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "config" in res.stderr


def test_mpirun_wrapper_rejects_bad_rank_count(tmp_path: Path) -> None:
    res = subprocess.run(["bash", str(LAUNCH / "mpirun.sh"), "-n", "0", "info"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "RANKS" in res.stderr


def _make_sweep(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, str(LAUNCH / "make-sweep.py"), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_make_sweep_creates_valid_run_dirs(tmp_path: Path) -> None:
    from tsn_mpi.config import load_config

    base = tmp_path / "base"
    write_tiny(base)
    sweep = tmp_path / "sweep"
    res = _make_sweep(str(base), "learning.penlambda", "0.5", "0.8", "2", "--out", str(sweep))
    assert res.returncode == 0, res.stderr
    runs = (sweep / "runs.txt").read_text().split()
    assert runs == ["penlambda-0.5", "penlambda-0.8", "penlambda-2"]
    for name, want in zip(runs, [0.5, 0.8, 2.0], strict=True):
        cfg = load_config(sweep / name / "config.toml")
        assert cfg.learning.penlambda == want
        assert cfg.network.n_cells == 256  # the rest of the base config is kept
    meta = json.loads((sweep / "sweep.json").read_text())
    assert meta["key"] == "learning.penlambda" and meta["runs"] == runs
    assert "sbatch --array=0-2" in res.stdout and "tsn-mpi gather" in res.stdout
    # again without --force: refused, nothing changed; with --force: replaced
    res = _make_sweep(str(base), "learning.penlambda", "0.5", "--out", str(sweep))
    assert res.returncode == 2 and "already exists" in res.stderr
    res = _make_sweep(str(base), "learning.penlambda", "0.5", "--out", str(sweep), "--force")
    assert res.returncode == 0, res.stderr


def test_make_sweep_string_values_and_relative_files(tmp_path: Path) -> None:
    from tsn_mpi.config import load_config

    base = tmp_path / "base"
    write_tiny(base)
    import numpy as np

    np.save(base / "sigma.npy", np.full(256, 0.1))
    with (base / "config.toml").open("a") as fh:
        fh.write('\n[neuron]\nnoise_sigma_file = "sigma.npy"\n')
    res = _make_sweep(str(base), "run.backend", "cpu", "gpu", "--out", str(tmp_path / "s"))
    assert res.returncode == 0, res.stderr
    cfg = load_config(tmp_path / "s" / "backend-gpu" / "config.toml")
    assert cfg.run.backend == "gpu"
    assert Path(cfg.neuron.noise_sigma_file).resolve() == (base / "sigma.npy").resolve()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["learning.penlamda", "0.5"], "did you mean learning.penlambda"),
        (["learning.penlambda", "-1"], "learning.penlambda"),
        (["penlambda", "0.5"], "section.key"),
        (["learning.penlambda", "0.5", "0.50"], "same directory name"),
    ],
)
def test_make_sweep_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    base = tmp_path / "base"
    write_tiny(base)
    res = _make_sweep(str(base), *args, "--out", str(tmp_path / "s"))
    assert res.returncode == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_local_slurm_usage() -> None:
    res = subprocess.run(["bash", str(LAUNCH / "local-slurm.sh"), "bogus"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "usage" in res.stderr


def test_sbatch_script_needs_a_run_dir_outside_slurm(tmp_path: Path) -> None:
    env = dict(os.environ)
    for k in ("TSN_DIR", "TSN_PHASE"):
        env.pop(k, None)
    res = subprocess.run(["bash", str(LAUNCH / "slurm-cpu.sbatch")], capture_output=True,
                         text=True, env=env, timeout=30)
    assert res.returncode == 2 and "no run directory" in res.stderr
