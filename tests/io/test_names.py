"""Checkpoint names: formatting, parsing, listing, finding (spec §6, pitfall 18)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tsn_mpi.errors import CheckpointError
from tsn_mpi.io import h5_read, h5_write, names
from tsn_mpi.io.names import (
    Checkpoint,
    checkpoint_dir,
    checkpoint_name,
    find_checkpoint,
    list_checkpoints,
    parse_checkpoint_name,
)


def test_checkpoint_name():
    assert checkpoint_name(5) == "ckpt-5.h5"
    assert checkpoint_name(5, "i") == "ckpt-5i.h5"
    assert checkpoint_name(37, cor=0.71234) == "ckpt-37-cor0.712.h5"
    assert checkpoint_name(37, "best", 0.7) == "ckpt-37-cor0.700.h5"
    assert checkpoint_name(2, cor=-0.05) == "ckpt-2-cor-0.050.h5"
    assert checkpoint_dir("run") == Path("run") / "checkpoints"
    for bad in [dict(kind="x"), dict(kind="best"), dict(kind="i", cor=0.5), dict(cor=np.nan)]:
        with pytest.raises(ValueError):
            checkpoint_name(1, **bad)
    with pytest.raises(ValueError):
        checkpoint_name(-1)


@pytest.mark.parametrize(
    "name, parsed",
    [
        ("ckpt-5.h5", (5, "", None)),
        ("ckpt-5i.h5", (5, "i", None)),
        ("ckpt-37-cor0.712.h5", (37, "best", 0.712)),
        ("ckpt-2-cor-0.050.h5", (2, "best", -0.05)),
        ("ckpt-100-cor0.71.h5", (100, "best", 0.71)),  # Julia's round(x, digits=3) style
        ("ckpt-5.h5.bak", None),
        (".ckpt-5.h5.tmp-123", None),
        ("ckpt-5x.h5", None),
        ("ckpt-.h5", None),
        ("P-ckpt5.jld2", None),
    ],
)
def test_parse_checkpoint_name(name, parsed):
    assert parse_checkpoint_name(name) == parsed


def test_name_round_trip():
    for args in [(0, "", None), (12, "i", None), (9, "best", 0.125)]:
        assert parse_checkpoint_name(checkpoint_name(*args)) == args


def make(d: Path, label: str, complete: bool = True) -> Path:
    path = d / f"ckpt-{label}.h5"
    if complete:
        with h5_write.create(path, attrs={"label": label}) as w:
            w.write_global("x", np.zeros(1))
    else:
        with h5py.File(path, "w") as f:
            f["x"] = np.zeros(1)
    return path


@pytest.fixture
def ckdir(tmp_path: Path) -> Path:
    d = checkpoint_dir(tmp_path)
    d.mkdir()
    for label in ["1", "10", "2", "2-cor0.500", "3-cor0.712", "3i"]:
        make(d, label)
    make(d, "11", complete=False)  # killed writer that left a file without 'complete'
    (d / ".ckpt-12.h5.tmp-999").write_bytes(b"partial")  # leftover temporary file
    (d / "notes.txt").write_text("x")
    return d


def test_list_checkpoints_sorted(ckdir):
    found = list_checkpoints(ckdir)
    assert [c.label for c in found] == ["1", "2", "2-cor0.500", "3i", "3-cor0.712", "10", "11"]
    assert all(isinstance(c, Checkpoint) and c.path.parent == ckdir for c in found)
    assert found[2].cor == 0.5 and found[2].kind == "best"
    assert list_checkpoints(ckdir / "missing") == []


def test_find_newest_complete(ckdir):
    assert find_checkpoint(ckdir).label == "10"  # 11 is incomplete: skipped silently
    (ckdir / "ckpt-10.h5").unlink()
    # the end of loop 3 (3-cor) is newer than a stop inside it (3i)
    assert find_checkpoint(ckdir, None).label == "3-cor0.712"
    (ckdir / "ckpt-3-cor0.712.h5").unlink()
    assert find_checkpoint(ckdir).label == "3i"


@pytest.mark.parametrize(
    "spec, label",
    [
        (1, "1"),
        ("2", "2"),
        ("3i", "3i"),
        ("3-cor0.712", "3-cor0.712"),  # the reference could not restore these
        ("2-cor0.5", "2-cor0.500"),
        ("ckpt-3i.h5", "3i"),
        (" 10 ", "10"),
    ],
)
def test_find_exact(ckdir, spec, label):
    c = find_checkpoint(ckdir, spec)
    assert c.label == label and c.path == ckdir / f"ckpt-{label}.h5"
    with h5_read.open_read(c.path) as f:
        assert h5_read.read_attrs(f) == {"label": label}


def test_find_errors_name_directory_and_choices(ckdir, tmp_path):
    with pytest.raises(CheckpointError) as e:
        find_checkpoint(ckdir, "4")
    msg = str(e.value)
    assert str(ckdir) in msg and "available: 1, 2, 2-cor0.500, 3i, 3-cor0.712, 10" in msg
    assert "(incomplete: 11)" in msg and "\n" not in msg
    with pytest.raises(CheckpointError, match="incomplete"):
        find_checkpoint(ckdir, 11)
    with pytest.raises(CheckpointError, match="not a checkpoint label"):
        find_checkpoint(ckdir, "latest")
    with pytest.raises(CheckpointError, match="3-cor0.9"):
        find_checkpoint(ckdir, "3-cor0.9")
    with pytest.raises(CheckpointError, match="expected a loop number"):
        find_checkpoint(ckdir, True)
    empty = tmp_path / "nothing"
    with pytest.raises(
        CheckpointError, match=f"no complete checkpoint in {empty}; available: none"
    ):
        find_checkpoint(empty)
    (ckdir / "ckpt-11.h5").rename(ckdir.parent / "keep.h5")
    for p in ckdir.glob("ckpt-*.h5"):
        p.unlink()
    (ckdir.parent / "keep.h5").rename(ckdir / "ckpt-11.h5")
    with pytest.raises(CheckpointError, match=r"available: none \(incomplete: 11\)"):
        find_checkpoint(ckdir)


def test_names_module_does_not_import_h5py_at_import():
    assert "h5py" not in names.__dict__


def test_prune_keeps_the_newest_periodic_ones_ckpt0_and_the_best(ckdir):
    make(ckdir, "0")
    assert names.prune_checkpoints(ckdir, 0) == []  # 0: keep all
    gone = names.prune_checkpoints(ckdir, 2)
    assert sorted(p.name for p in gone) == ["ckpt-1.h5", "ckpt-2.h5"]
    left = [c.label for c in list_checkpoints(ckdir)]
    # newest two complete: 3i and 10; 11 (incomplete, newer) is left for a human to look at
    assert left == ["0", "2-cor0.500", "3i", "3-cor0.712", "10", "11"]
    assert (ckdir / ".ckpt-12.h5.tmp-999").exists()
    names.prune_checkpoints(ckdir, 1)
    assert [c.label for c in list_checkpoints(ckdir)] == ["0", "2-cor0.500", "3-cor0.712",
                                                           "10", "11"]  # fmt: skip


def test_temp_files_of_killed_writers_are_removed(ckdir):
    from tsn_mpi.io import atomic

    (ckdir / ".network.h5.tmp-5").write_bytes(b"x")
    assert [p.name for p in atomic.remove_temp_files(ckdir, "ckpt-")] == [".ckpt-12.h5.tmp-999"]
    assert (ckdir / ".network.h5.tmp-5").exists() and (ckdir / "notes.txt").exists()
