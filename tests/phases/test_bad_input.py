"""Bad input through the real CLI: exit 2, one line naming the culprit, nothing written.

Every case builds a run directory (a bare config, or a copy of an initialised tiny run), breaks
one thing, snapshots the directory (names, sizes, mtimes, sha256), runs ``tsn-mpi`` and checks:

- exit code 2 and no traceback;
- stderr is exactly one line that names the culprit (key, file or checkpoint) and says what
  was expected;
- the directory is unchanged: no file modified, none added, none removed.

A subset runs again under ``mpiexec -n 2``, including failures that only one rank can see
(NaN targets and a raising plugin in rank 1's neurons): same code, the message once, every
rank gone within seconds, nothing written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import TINY, cli
from tests.mpirun import TSN, requires_mpi, run_mpi
from tsn_mpi.config.load import tomllib  # tomllib or tomli, as the package chose

N_CELLS = 256  # tests.conftest.TINY
N_LEARN = 20  # train_duration 200 ms / learn_every 10 ms
RANK1_GID = 200  # owned by rank 1 of 2 (even split 0-127 | 128-255)

FROM_FILE = "tsn_mpi.network.target_files:from_current_file"

PLUGINS = """\
import numpy as np


def wrong_shape(ctx, task):
    return np.zeros((3, 3))


def raises(ctx, task):
    raise ValueError("cannot build targets today")


def raises_on_rank1(ctx, task):
    if GID in ctx.owned:
        raise ValueError("no target for neuron GID")
    return np.zeros((ctx.derived.n_learn, len(ctx.owned)))


def bad_stimulus(ctx, task):
    return np.zeros((7, len(ctx.owned)))


def bad_plastic(ctx):
    n = len(ctx.owned)
    return np.zeros((n, 1), np.int32), np.zeros((n, 1)), np.zeros((n, 0))


def not_a_model(ctx):
    return 42
""".replace("GID", str(RANK1_GID))


# ---- building run directories ------------------------------------------------------------------


def _toml_value(v) -> str:
    return json.dumps(v) if isinstance(v, str) else repr(v)


def render(overrides: dict[str, dict] | None = None) -> str:
    """TINY with ``{section: {key: value}}`` merged in, as TOML."""
    data = tomllib.loads(TINY)
    for section, table in (overrides or {}).items():
        data.setdefault(section, {}).update(table)
    out = []
    for section, table in data.items():
        out.append(f"[{section}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        out.append("")
    return "\n".join(out)


def set_config(run: Path, overrides: dict[str, dict] | None = None) -> None:
    (run / "config.toml").write_text(render(overrides))


def npy(name: str, arr: np.ndarray) -> Callable[[Path], None]:
    def write(run: Path) -> None:
        np.save(run / name, arr)

    return write


def targets(name: str = "targ.npy", **extra) -> dict:
    return {"targets": {"plugin": FROM_FILE, "file": name, **extra}}


def good_targets() -> np.ndarray:
    return np.zeros((N_LEARN, N_CELLS))


def with_bad(value: float, gid: int = 5) -> np.ndarray:
    a = good_targets()
    a[3, gid] = value
    return a


@dataclass
class Case:
    """One bad input. ``args``: CLI arguments after the subcommand's run dir ({run} = it)."""

    id: str
    args: list[str]
    expect: list[str]  # substrings of the one stderr line (culprit, and what was expected)
    config: dict | None = None  # overrides of TINY written to config.toml (fresh dirs)
    initialised: bool = False  # start from a copy of the initialised tiny run
    setup: list[Callable[[Path], None]] = field(default_factory=list)


def _raw(text: str) -> Callable[[Path], None]:
    def write(run: Path) -> None:
        (run / "config.toml").write_text(text)

    return write


def _remove(rel: str) -> Callable[[Path], None]:
    def remove(run: Path) -> None:
        (run / rel).unlink()

    return remove


def _plugins(run: Path) -> None:
    (run / "myplug.py").write_text(PLUGINS)


def _h5_other_dataset(run: Path) -> None:
    with h5py.File(run / "targ.h5", "w") as f:
        f["other"] = good_targets()


def _incomplete_ckpt(run: Path) -> None:
    dst = run / "checkpoints" / "ckpt-5.h5"
    shutil.copy(run / "checkpoints" / "ckpt-0.h5", dst)
    with h5py.File(dst, "a") as f:
        del f.attrs["complete"]


def _garbage_ckpt(run: Path) -> None:
    (run / "checkpoints" / "ckpt-3.h5").write_bytes(b"not hdf5 at all\n" * 64)


def _from_other(rel: str, dst: str) -> Callable[[Path], None]:
    def copy(run: Path) -> None:
        shutil.copy(run.parent.parent / "other" / rel, run / dst)

    return copy


def _edit_config(overrides: dict) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        set_config(run, overrides)

    return edit


INIT, TRAIN, TEST = ["init", "{run}"], ["train", "{run}"], ["test", "{run}", "--no-plot"]

CASES = [
    # ---- configuration (validated before MPI starts) --------------------------------------
    Case(
        "unknown-key",
        INIT,
        ["learning.penlamda", "did you mean learning.penlambda"],
        {"learning": {"penlamda": 0.5}},
    ),
    Case(
        "unknown-section",
        INIT,
        ["unknown section [netwrk]", "known: run"],
        {"netwrk": {"n_cells": 10}},
    ),
    Case(
        "wrong-type",
        INIT,
        ["simulation.dt = '0.1'", "should be of type float"],
        {"simulation": {"dt": "0.1"}},
    ),
    Case(
        "negative",
        INIT,
        ["neuron.tau_mem_e = -10.0", "must be > 0"],
        {"neuron": {"tau_mem_e": -10.0}},
    ),
    Case("zero-n-cells", INIT, ["network.n_cells = 0", "must be > 0"], {"network": {"n_cells": 0}}),
    Case(
        "bad-choice",
        INIT,
        ["learning.mode = 'medium'", "must be one of 'fast', 'small'"],
        {"learning": {"mode": "medium"}},
    ),
    Case(
        "dt-not-dividing-1ms",
        INIT,
        ["simulation.dt = 0.3", "1/dt must be an integer"],
        {"simulation": {"dt": 0.3}},
    ),
    Case(
        "learn-every-not-multiple-of-dt",
        INIT,
        ["learning.learn_every = 10.05", "must be a multiple of simulation.dt"],
        {"learning": {"learn_every": 10.05}},
    ),
    Case(
        "stim-window-outside-trial",
        INIT,
        ["simulation.stim_on = 400.0", "must not exceed simulation.stim_off"],
        {"simulation": {"stim_on": 400.0}},
    ),
    Case(
        "frac-exc-above-1",
        INIT,
        ["network.frac_exc = 1.5", "strictly between 0 and 1"],
        {"network": {"frac_exc": 1.5}},
    ),
    Case(
        "empty-population",
        INIT,
        ["network.frac_exc = 0.001", "population empty"],
        {"network": {"frac_exc": 0.001}},
    ),
    Case(
        "l-exc-larger-than-pool",
        INIT,
        ["plastic.l_exc = 500", "exceeds the 128 eligible excitatory"],
        {"plastic": {"l_exc": 500}},
    ),
    Case(
        "k0-without-l",
        INIT,
        ["plastic.l_exc and plastic.l_inh must be set when K = 0"],
        {"network": {"p_ee": 0.0}},
    ),
    Case(
        "invalid-toml",
        INIT,
        ["config.toml: not valid TOML"],
        setup=[_raw("[network\nn_cells = 256\n")],
    ),
    Case("missing-config", INIT, ["config.toml", "not found"], setup=[_remove("config.toml")]),
    Case(
        "config-changed-after-init",
        TRAIN,
        ["network.h5", "different configuration", "tsn-mpi init"],
        initialised=True,
        setup=[_edit_config({"learning": {"penmu": 0.02}})],
    ),
    # ---- plugins -----------------------------------------------------------------------------
    Case(
        "plugin-module-missing",
        INIT,
        ["targets.plugin", "cannot import module 'no_such_mod'"],
        {"targets": {"plugin": "no_such_mod:targets"}},
    ),
    Case(
        "plugin-function-missing",
        INIT,
        ["targets.plugin", "has no function 'nope'"],
        {"targets": {"plugin": "tsn_mpi.network.targets:nope"}},
    ),
    Case(
        "plugin-file-missing",
        INIT,
        ["stimulus.plugin", "plugin file", "missing.py not found"],
        {"stimulus": {"plugin": "missing.py:stim"}},
    ),
    Case(
        "plugin-wrong-shape",
        INIT,
        ["targets.plugin", "shape (3, 3), expected (20, 256)"],
        {"targets": {"plugin": "myplug.py:wrong_shape"}},
        setup=[_plugins],
    ),
    Case(
        "plugin-raises",
        INIT,
        ["targets.plugin", "ValueError", "cannot build targets today"],
        {"targets": {"plugin": "myplug.py:raises"}},
        setup=[_plugins],
    ),
    Case(
        "plugin-raises-for-one-neuron",
        INIT,
        ["targets.plugin", "no target for neuron 200"],
        {"targets": {"plugin": "myplug.py:raises_on_rank1"}},
        setup=[_plugins],
    ),
    Case(
        "stimulus-plugin-wrong-shape",
        INIT,
        ["stimulus.plugin", "shape (7, 256), expected (1000, 256)"],
        {"stimulus": {"plugin": "myplug.py:bad_stimulus"}},
        setup=[_plugins],
    ),
    Case(
        "plastic-plugin-wrong-shape",
        INIT,
        ["plastic.plugin", "shape (256, 1), expected (256, 28)"],
        {"plastic": {"plugin": "myplug.py:bad_plastic"}},
        setup=[_plugins],
    ),
    Case(
        "model-plugin-not-a-model",
        INIT,
        ["neuron.model", "did not return a CellModel"],
        {"neuron": {"model": "myplug.py:not_a_model"}},
        setup=[_plugins],
    ),
    # ---- data files --------------------------------------------------------------------------
    Case("targets-file-missing", INIT, ["targ.npy", "targets file not found"], targets()),
    Case(
        "targets-wrong-shape",
        INIT,
        ["targ.npy", "has 5 rows", "n_learn=20"],
        targets(),
        setup=[npy("targ.npy", np.zeros((5, N_CELLS)))],
    ),
    Case(
        "targets-nan",
        INIT,
        ["targ.npy", "non-finite", "(3, 5)"],
        targets(),
        setup=[npy("targ.npy", with_bad(np.nan))],
    ),
    Case(
        "targets-inf",
        INIT,
        ["targ.npy", "non-finite", "(3, 5) = inf"],
        targets(),
        setup=[npy("targ.npy", with_bad(np.inf))],
    ),
    Case(
        "targets-nan-in-rank1-columns",
        INIT,
        ["targ.npy", "non-finite", f"(3, {RANK1_GID})"],
        targets(),
        setup=[npy("targ.npy", with_bad(np.nan, RANK1_GID))],
    ),
    Case(
        "targets-strings",
        INIT,
        ["targ.npy", "dtype <U3 is not numeric", "of floats"],
        targets(),
        setup=[npy("targ.npy", np.full((N_LEARN, N_CELLS), "abc"))],
    ),
    Case(
        "targets-h5-without-dataset",
        INIT,
        ["targ.h5", "has no dataset 'utarg'", "datasets in the file: other"],
        targets("targ.h5", dataset="utarg"),
        setup=[_h5_other_dataset],
    ),
    Case(
        "noise-sigma-file-wrong-shape",
        INIT,
        ["neuron.noise_sigma_file", "sig.npy", "expected (256,)"],
        {"neuron": {"noise_sigma_file": "sig.npy"}},
        setup=[npy("sig.npy", np.ones(10))],
    ),
    # ---- command-line arguments --------------------------------------------------------------
    Case("nloops-0", [*TRAIN, "--nloops", "0"], ["--nloops = 0", "at least 1"], initialised=True),
    Case(
        "correlation-interval-0",
        [*TRAIN, "--correlation-interval", "0"],
        ["--correlation-interval = 0", "at least 1"],
        initialised=True,
    ),
    Case("ntrials-0", [*TEST, "--ntrials", "0"], ["--ntrials = 0", "at least 1"], initialised=True),
    Case(
        "neurons-out-of-range",
        [*TEST, "--neurons", "250-300"],
        ["test.neurons = '250-300'", "[0, 256)"],
        initialised=True,
    ),
    Case(
        "neurons-garbage",
        [*TEST, "--neurons", "a-b"],
        ["test.neurons = 'a-b'", "expected e.g. '0-15'"],
        initialised=True,
    ),
    Case(
        "itasks-not-numbers",
        [*INIT, "--itasks", "0,x"],
        ["--itasks = '0,x'", "expected task numbers >= 0"],
    ),
    Case(
        "total-loops-0",
        [*TRAIN, "--total-loops", "0"],
        ["--total-loops = 0", "at least 1"],
        initialised=True,
    ),
    Case(
        "restore-missing-checkpoint",
        [*TRAIN, "--restore-from-checkpoint", "42"],
        ["no checkpoint '42'", "available: 0"],
        initialised=True,
    ),
    Case(
        "test-restore-missing-checkpoint",
        [*TEST, "--restore-from-checkpoint", "9i"],
        ["no checkpoint '9i'", "available: 0"],
        initialised=True,
    ),
    Case(
        "restore-not-a-label",
        [*TRAIN, "--restore-from-checkpoint", "latest"],
        ["checkpoint 'latest' is not a checkpoint label", "like 5, 5i"],
        initialised=True,
    ),
    # ---- checkpoints and network file --------------------------------------------------------
    Case(
        "incomplete-checkpoint",
        [*TRAIN, "--restore-from-checkpoint", "5"],
        ["ckpt-5.h5 is incomplete", "available in"],
        initialised=True,
        setup=[_incomplete_ckpt],
    ),
    Case(
        "checkpoint-not-hdf5",
        [*TRAIN, "--restore-from-checkpoint", "3"],
        ["ckpt-3.h5 is incomplete", "available in"],
        initialised=True,
        setup=[_garbage_ckpt],
    ),
    Case(
        "checkpoint-from-another-model",
        [*TRAIN, "--restore-from-checkpoint", "7"],
        ["ckpt-7.h5", "belongs to another model", "model_hash"],
        initialised=True,
        setup=[_from_other("checkpoints/ckpt-0.h5", "checkpoints/ckpt-7.h5")],
    ),
    Case(
        "network-missing-before-train",
        TRAIN,
        ["network.h5", "no such file"],
        initialised=True,
        setup=[_remove("network.h5")],
    ),
    Case(
        "network-missing-before-test",
        TEST,
        ["network.h5", "no such file"],
        initialised=True,
        setup=[_remove("network.h5")],
    ),
    Case(
        "network-from-another-config",
        TRAIN,
        ["network.h5", "different configuration"],
        initialised=True,
        setup=[_from_other("network.h5", "network.h5")],
    ),
    Case(
        "no-checkpoint-before-train",
        TRAIN,
        ["no complete checkpoint", "available: none"],
        initialised=True,
        setup=[_remove("checkpoints/ckpt-0.h5")],
    ),
]
BY_ID = {c.id: c for c in CASES}

# run again under mpiexec -n 2 (the last two are seen by rank 1 only)
MPI_CASES = [
    "unknown-key",
    "plugin-module-missing",
    "nloops-0",
    "itasks-not-numbers",
    "neurons-out-of-range",
    "restore-missing-checkpoint",
    "checkpoint-from-another-model",
    "network-missing-before-train",
    "targets-nan-in-rank1-columns",
    "plugin-raises-for-one-neuron",
]


# ---- fixtures and checks ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inited(tmp_path_factory) -> Path:
    """An initialised tiny run ("base") and one of another model ("other"), side by side."""
    root = tmp_path_factory.mktemp("bad-input")
    for name, extra in (("base", None), ("other", {"learning": {"penmu": 0.02}})):
        run = root / name
        run.mkdir()
        set_config(run, extra)
        r = cli("init", str(run))
        assert r.returncode == 0, r.stderr
    return root


@pytest.fixture(autouse=True)
def no_bytecode(monkeypatch):
    """Python's import system writes ``__pycache__/`` next to a file plugin (``myplug.py``) in
    the run dir, on success as on failure; that is Python's cache, not tsn-mpi output, so it
    is switched off here to keep the nothing-written check strict for everything else."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")


def prepare(case: Case, inited: Path, tmp_path: Path) -> Path:
    """The run dir of ``case`` (under ``tmp_path/cases/``), broken as the case says."""
    run = tmp_path / "cases" / "run"
    run.parent.mkdir(parents=True)
    if case.initialised:
        shutil.copytree(inited / "base", run)
        # _from_other looks for run.parent.parent / "other"
        shutil.copytree(inited / "other", tmp_path / "other")
    else:
        run.mkdir()
        set_config(run, case.config)
    for step in case.setup:
        step(run)
    return run


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: directories by name, files by size, mtime and sha256."""
    out: dict[str, tuple] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.name == "heartbeat.json":  # the job-status file (io/heartbeat.py), not an output
            continue
        if p.is_dir():
            out[rel] = ("dir",)
        else:
            st = p.stat()
            out[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def command(case: Case, run: Path) -> list[str]:
    return [a.replace("{run}", str(run)) for a in case.args]


def check_message(case: Case, stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("tsn-mpi: error: "), line
    for part in case.expect:
        assert part in line, (part, line)
    return line


def check_unchanged(before: dict, run: Path) -> None:
    after = snapshot(run)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    assert not (added or removed or changed), {
        "added": added,
        "removed": removed,
        "changed": changed,
    }


# ---- the tests ----------------------------------------------------------------------------------


def test_there_are_enough_distinct_cases():
    assert len(BY_ID) == len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_serial(case: Case, inited: Path, tmp_path: Path):
    run = prepare(case, inited, tmp_path)
    before = snapshot(run)
    r = cli(*command(case, run), timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    check_message(case, r.stderr)
    check_unchanged(before, run)


@pytest.mark.mpi
@requires_mpi
@pytest.mark.parametrize("case_id", MPI_CASES)
def test_bad_input_two_ranks(case_id: str, inited: Path, tmp_path: Path):
    case = BY_ID[case_id]
    run = prepare(case, inited, tmp_path)
    before = snapshot(run)
    r = run_mpi(2, [*TSN, *command(case, run)], timeout=45)  # no rank may hang
    assert r.returncode == 2, (r.returncode, r.stderr)
    line = check_message(case, r.stderr)  # one line: printed once, no MPI_Abort banner
    assert r.stderr.count(line) == 1
    check_unchanged(before, run)
