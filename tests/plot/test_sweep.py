"""Summary table and overlay figure of several runs."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from tests.plot.make_fake_outputs import write_config, write_learning_curve
from tsn_mpi.plot import sweep


@pytest.fixture
def runs(tmp_path):
    nan = np.nan
    specs = {
        "lam0.5": ([nan, 0.1, 0.3, 0.4, 0.5], [4.0, 5, 6, 7, 8], [2.0, 2, 2, 2, 2], 0.5),
        "lam1.0": ([0.2, 0.9, 0.6, 0.7], [3.0, 3, 3, 9], [1.0, 3, 1, 3], 1.0),
        "lam2.0": ([nan, nan], [1.0, 2.0], [4.0, 6.0], None),  # no correlation, no config
    }
    dirs = []
    for name, (cor, rate, el, lam) in specs.items():
        d = tmp_path / name
        d.mkdir()
        write_learning_curve(d / "learning-curve.h5", cor, firing_rate_hz=rate, elapsed_s=el)
        if lam is not None:
            write_config(d / "config.toml", {"learn": {"penlambda": lam}, "run": {"seed": 1}})
        dirs.append(d)
    return dirs


def test_gather_values(runs):
    rows = sweep.gather(runs)
    assert [r["run_dir"] for r in rows] == [str(d) for d in runs]
    a, b, c = rows
    assert a["n_loops"] == 5
    assert a["final_correlation"] == pytest.approx(0.5)
    assert a["best_correlation"] == pytest.approx(0.5)
    assert a["mean_last3_correlation"] == pytest.approx(0.4)
    assert a["final_rate_hz"] == 8.0
    assert a["mean_s_per_loop"] == pytest.approx(2.0)
    assert a["loop"].tolist() == [2, 3, 4, 5]
    assert a["config"] == {"learn.penlambda": 0.5, "run.seed": 1}
    assert b["best_correlation"] == pytest.approx(0.9)
    assert b["final_correlation"] == pytest.approx(0.7)
    assert b["mean_last3_correlation"] == pytest.approx((0.9 + 0.6 + 0.7) / 3)
    assert b["mean_s_per_loop"] == pytest.approx(2.0)
    assert math.isnan(c["final_correlation"]) and math.isnan(c["best_correlation"])
    assert c["config"] == {}
    assert c["final_rate_hz"] == 2.0


def test_gather_skips_missing_and_incomplete(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    write_learning_curve(broken / "learning-curve.h5", [0.1], complete=False)
    rows = sweep.gather([runs[0], empty, broken])
    assert len(rows) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "empty" in err[0] and "broken" in err[1] and "incomplete" in err[1]


def test_format_table(runs):
    rows = sweep.gather(runs)
    text = sweep.format_table(rows)
    lines = text.splitlines()
    assert len(lines) == 1 + len(rows)
    assert lines[0].split()[:3] == ["run", "loops", "final"]
    assert "learn.penlambda" in lines[0] and "run.seed" in lines[0]  # differs: absent in lam2.0
    assert "0.500" in lines[1] and "0.900" in lines[2]
    assert lines[3].split()[1:4] == ["2", "-", "-"]
    assert all(c.isprintable() for line in lines for c in line)
    # columns line up: every value of the "loops" column ends at the header's end
    end = lines[0].index("loops") + len("loops")
    assert all(line[end - 1] != " " for line in lines)


def test_format_table_strips_control_characters(runs):
    rows = sweep.gather(runs[:1])
    rows[0]["run_dir"] = "bad\x1b[31mname\n"
    assert all(c.isprintable() for c in sweep.format_table(rows).replace("\n", ""))


def test_plot_sweep_and_main(runs, tmp_path, capsys, monkeypatch):
    out = sweep.plot_sweep(sweep.gather(runs), tmp_path / "s.pdf")
    assert out.read_bytes().startswith(b"%PDF")
    monkeypatch.chdir(tmp_path)
    assert sweep.main([str(d) for d in runs] + ["--sort", "best_correlation"]) == 0
    captured = capsys.readouterr()
    body = captured.out.splitlines()[1:]
    assert [line.split()[0] for line in body] == [str(runs[1]), str(runs[0]), str(runs[2])]
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert sweep.main([str(tmp_path / "nothing")]) == 1
    assert plt.get_fignums() == []
