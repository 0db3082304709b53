"""File-based target plugins: current files, rate files (Ricciardi) and the conversion cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from tsn_mpi.config import derive, from_dict
from tsn_mpi.errors import ConfigError, DataFileError, PluginError
from tsn_mpi.network import target_files
from tsn_mpi.network.context import PluginContext
from tsn_mpi.network.ricciardi import rates_to_currents, ricciardi

N, T = 40, 20  # neurons, target rows (train_duration 200 / learn_every 10)


def make_ctx(
    run_dir: Path,
    file: str,
    owned: range = range(N),
    dataset: str = "",
    k_zero: bool = False,
    ustd: float | None = 0.3,
    plugin: str = "from_current_file",
):
    data = {
        "network": {"n_cells": N},
        "simulation": {"train_duration": 200.0},
        "targets": {
            "plugin": f"tsn_mpi.network.target_files:{plugin}",
            "file": file,
            "dataset": dataset,
            "ntasks": 2,
        },
        "neuron": {"noise_sigma": 0.65},
    }
    if k_zero:
        data["network"]["p_ee"] = 0.0
        data["plastic"] = {"l_exc": 3, "l_inh": 3}
    cfg = from_dict(data)
    init = {} if ustd is None else {"ustd": ustd, "uavg": np.zeros(len(owned))}
    return PluginContext(cfg, derive(cfg), owned, run_dir, init)


def currents(ntasks: int | None = None) -> np.ndarray:
    g = np.random.default_rng(5)
    shape = (T, N) if ntasks is None else (T, N, ntasks)
    return g.normal(size=shape)


def rates(ntasks: int | None = None) -> np.ndarray:
    g = np.random.default_rng(6)
    shape = (T, N) if ntasks is None else (T, N, ntasks)
    r = g.uniform(0.5, 40.0, size=shape)
    r.reshape(-1)[::17] = 0.0  # exact zeros become 0.1 Hz
    return r


def write(path: Path, arr, name: str = "utarg") -> Path:
    if path.suffix == ".npy":
        np.save(path, arr)
    else:
        with h5py.File(path, "w") as fh:
            fh.create_dataset(name, data=arr)
    return path


# ---- current files -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".hdf5"])
def test_current_file_2d(tmp_path, suffix):
    u = currents()
    write(tmp_path / f"u{suffix}", u)
    got = target_files.from_current_file(make_ctx(tmp_path, f"u{suffix}"), 0)
    assert got.dtype == np.float64 and got.shape == (T, N)
    np.testing.assert_array_equal(got, u)
    part = target_files.from_current_file(make_ctx(tmp_path, f"u{suffix}", range(11, 29)), 0)
    np.testing.assert_array_equal(part, u[:, 11:29])
    empty = target_files.from_current_file(make_ctx(tmp_path, f"u{suffix}", range(7, 7)), 0)
    assert empty.shape == (T, 0)


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_current_file_task_axis(tmp_path, suffix):
    u = currents(3).astype(np.float32)
    write(tmp_path / f"u{suffix}", u)
    for task in range(3):
        got = target_files.from_current_file(make_ctx(tmp_path, f"u{suffix}", range(5, 30)), task)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, u[:, 5:30, task])


def test_absolute_path_and_named_dataset(tmp_path):
    path = tmp_path / "sub" / "u.h5"
    path.parent.mkdir()
    u = currents()
    with h5py.File(path, "w") as fh:
        fh.create_dataset("a_first", data=np.zeros((T, N)))
        fh.create_dataset("group/utarg", data=u)
    got = target_files.from_current_file(
        make_ctx(tmp_path / "elsewhere", str(path), dataset="group/utarg"), 0
    )
    np.testing.assert_array_equal(got, u)
    first = target_files.from_current_file(make_ctx(tmp_path, "sub/u.h5"), 0)
    np.testing.assert_array_equal(first, 0.0)


def test_integer_file_is_accepted(tmp_path):
    u = np.arange(T * N, dtype=np.int32).reshape(T, N)
    write(tmp_path / "u.npy", u)
    got = target_files.from_current_file(make_ctx(tmp_path, "u.npy"), 0)
    np.testing.assert_array_equal(got, u.astype(np.float64))


def _error(ctx, task=0, plugin=target_files.from_current_file) -> str:
    with pytest.raises(DataFileError) as exc:
        plugin(ctx, task)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_error_missing_file(tmp_path):
    msg = _error(make_ctx(tmp_path, "nope.npy"))
    assert str(tmp_path / "nope.npy") in msg and "not found" in msg


def test_error_unreadable(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"this is not numpy")
    (tmp_path / "bad.h5").write_bytes(b"this is not hdf5 either")
    assert "cannot be read as .npy" in _error(make_ctx(tmp_path, "bad.npy"))
    msg = _error(make_ctx(tmp_path, "bad.h5"))
    assert "bad.h5" in msg and "cannot be read as HDF5" in msg


def test_error_unsupported_suffix(tmp_path):
    (tmp_path / "u.csv").write_text("1,2\n")
    msg = _error(make_ctx(tmp_path, "u.csv"))
    assert "u.csv" in msg and ".npy, .h5 or .hdf5" in msg


@pytest.mark.parametrize("shape", [(T * N,), (T, N, 1, 1)])
def test_error_wrong_ndim(tmp_path, shape):
    write(tmp_path / "u.npy", np.zeros(shape))
    msg = _error(make_ctx(tmp_path, "u.npy"))
    assert "u.npy" in msg and f"has {len(shape)} dimensions" in msg


def test_error_wrong_rows(tmp_path):
    write(tmp_path / "u.h5", np.zeros((T + 1, N)))
    msg = _error(make_ctx(tmp_path, "u.h5"))
    assert "u.h5:/utarg" in msg and f"has {T + 1} rows" in msg and f"n_learn={T}" in msg


def test_error_wrong_columns(tmp_path):
    write(tmp_path / "u.npy", np.zeros((T, N - 1)))
    msg = _error(make_ctx(tmp_path, "u.npy"))
    assert f"has {N - 1} columns" in msg and f"n_cells={N}" in msg


def test_error_task_out_of_range(tmp_path):
    write(tmp_path / "two.npy", np.zeros((T, N)))
    write(tmp_path / "three.h5", np.zeros((T, N, 2)))
    assert "holds 1 task(s) but task 1" in _error(make_ctx(tmp_path, "two.npy"), task=1)
    assert "holds 2 task(s) but task 2" in _error(make_ctx(tmp_path, "three.h5"), task=2)


def test_error_non_finite(tmp_path):
    u = currents(2)
    u[3, 12, 1] = np.nan
    u[4, 30, 1] = np.inf
    u[0, 0, 0] = np.nan  # another task: not read
    write(tmp_path / "u.npy", u)
    msg = _error(make_ctx(tmp_path, "u.npy", range(10, 40)), task=1)
    assert "2 non-finite values" in msg and "(3, 12, 1)" in msg and "u.npy" in msg


@pytest.mark.parametrize(
    "arr",
    [np.array([["a"] * N] * T), np.zeros((T, N), dtype=complex), np.zeros((T, N), dtype=bool)],
)
def test_error_non_numeric(tmp_path, arr):
    write(tmp_path / "u.npy", arr)
    msg = _error(make_ctx(tmp_path, "u.npy"))
    assert "not numeric" in msg and "u.npy" in msg


def test_error_non_numeric_object_npy(tmp_path):
    np.save(tmp_path / "u.npy", np.empty((T, N), dtype=object), allow_pickle=True)
    assert "not numeric" in _error(make_ctx(tmp_path, "u.npy"))


def test_error_missing_dataset(tmp_path):
    write(tmp_path / "u.h5", np.zeros((T, N)))
    msg = _error(make_ctx(tmp_path, "u.h5", dataset="rates"))
    assert "no dataset 'rates'" in msg and "utarg" in msg
    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    assert "contains no dataset" in _error(make_ctx(tmp_path, "empty.h5"))


def test_error_no_file_configured(tmp_path):
    with pytest.raises(ConfigError, match="targets.file"):
        target_files.from_current_file(make_ctx(tmp_path, ""), 0)


# ---- rate files --------------------------------------------------------------------------------


def expected_currents(r: np.ndarray, sigma: float) -> np.ndarray:
    r = np.where(r == 0, 0.1, r)
    return rates_to_currents(r, sigma, 10.0, 1.0, 0.0)


def test_rate_sigma(tmp_path):
    assert target_files.rate_sigma(make_ctx(tmp_path, "r.h5", k_zero=True)) == 0.65
    ctx = make_ctx(tmp_path, "r.h5", ustd=0.3)
    assert target_files.rate_sigma(ctx) == pytest.approx(0.3 / math.sqrt(3.0 * 1.3))
    with pytest.raises(PluginError, match="ustd"):
        target_files.rate_sigma(make_ctx(tmp_path, "r.h5", ustd=None))


@pytest.mark.parametrize("k_zero", [False, True])
def test_rate_file_conversion(tmp_path, k_zero):
    r = rates(2)
    write(tmp_path / "r.h5", r, "rates")
    ctx = make_ctx(tmp_path, "r.h5", range(8, 21), k_zero=k_zero, plugin="from_rate_file")
    sigma = target_files.rate_sigma(ctx)
    got = target_files.from_rate_file(ctx, 1)
    assert got.shape == (T, 13) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected_currents(r[:, 8:21, 1], sigma), rtol=0, atol=1e-12)
    back = ricciardi(got, sigma, 100.0, 1.0, 0.0)
    np.testing.assert_allclose(back, np.where(r == 0, 0.1, r)[:, 8:21, 1], rtol=1e-6)
    assert not (tmp_path / target_files.CACHE_NAME).exists()  # partial owner: no cache


def test_rate_file_errors(tmp_path):
    r = rates()
    r[2, 5] = -1.0
    write(tmp_path / "neg.npy", r)
    msg = _error(make_ctx(tmp_path, "neg.npy"), plugin=target_files.from_rate_file)
    assert "1 negative rates" in msg and "(2, 5)" in msg and "neg.npy" in msg
    r[2, 5] = np.inf
    write(tmp_path / "inf.npy", r)
    msg = _error(make_ctx(tmp_path, "inf.npy", range(0, 10)), plugin=target_files.from_rate_file)
    assert "1 non-finite" in msg
    write(tmp_path / "short.npy", rates()[1:])
    msg = _error(make_ctx(tmp_path, "short.npy"), plugin=target_files.from_rate_file)
    assert f"has {T - 1} rows" in msg and "spike rates" in msg


def test_rate_cache_written_then_reused(tmp_path, monkeypatch):
    r = rates(2)
    write(tmp_path / "r.h5", r, "rates")
    ctx = make_ctx(tmp_path, "r.h5", plugin="from_rate_file")
    sigma = target_files.rate_sigma(ctx)
    full = target_files.from_rate_file(ctx, 0)
    cache, meta = tmp_path / target_files.CACHE_NAME, tmp_path / target_files.CACHE_META
    assert cache.exists() and meta.exists()
    cached = np.load(cache)
    assert cached.shape == (T, N, 2)
    np.testing.assert_allclose(cached, expected_currents(r, sigma), atol=1e-12)
    np.testing.assert_array_equal(full, cached[:, :, 0])
    assert json.loads(meta.read_text())["shape"] == [T, N, 2]

    def boom(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(target_files, "rates_to_currents", boom)
    part = target_files.from_rate_file(
        make_ctx(tmp_path, "r.h5", range(3, 17), plugin="from_rate_file"), 1
    )
    np.testing.assert_array_equal(part, cached[:, 3:17, 1])
    # another sigma or another file invalidates the cache
    with pytest.raises(AssertionError, match="cache"):
        target_files.from_rate_file(
            make_ctx(tmp_path, "r.h5", range(3, 17), ustd=0.4, plugin="from_rate_file"), 1
        )
    write(tmp_path / "r.h5", rates(2) * 1.5, "rates")
    with pytest.raises(AssertionError, match="cache"):
        target_files.from_rate_file(
            make_ctx(tmp_path, "r.h5", range(3, 17), plugin="from_rate_file"), 1
        )


def test_rate_cache_rewritten_when_stale(tmp_path):
    write(tmp_path / "r.npy", rates())
    target_files.from_rate_file(make_ctx(tmp_path, "r.npy", plugin="from_rate_file"), 0)
    key1 = json.loads((tmp_path / target_files.CACHE_META).read_text())["key"]
    ctx = make_ctx(tmp_path, "r.npy", ustd=0.5, plugin="from_rate_file")
    got = target_files.from_rate_file(ctx, 0)
    key2 = json.loads((tmp_path / target_files.CACHE_META).read_text())["key"]
    assert key1 != key2
    np.testing.assert_array_equal(got, np.load(tmp_path / target_files.CACHE_NAME))
    np.testing.assert_allclose(
        got, expected_currents(rates(), target_files.rate_sigma(ctx)), atol=1e-12
    )


def test_synthetic_psth_example(tmp_path):
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "configs/examples/make_synthetic_psth.py"
    spec = importlib.util.spec_from_file_location("make_synthetic_psth", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main([str(tmp_path / "psth.h5"), "--n-cells", str(N), "--n-time", str(T), "--ntasks", "2"])
    with h5py.File(tmp_path / "psth.h5", "r") as fh:
        r = fh["rates"][...]
    assert r.shape == (T, N, 2) and r.min() >= 2.0 and r.max() <= 30.0
    assert np.abs(np.diff(r, axis=0)).max() < 10.0  # smooth
    ctx = make_ctx(tmp_path, "psth.h5", dataset="rates", plugin="from_rate_file")
    u = target_files.from_rate_file(ctx, 1)
    assert u.shape == (T, N) and np.all(np.isfinite(u))


# ---- the threshold overshoot of the Euler-stepped membrane ------------------------------------


def _euler_lif_rate(mu: float, sigma: float, n: int = 1000, t_ms: float = 1000.0) -> float:
    """Mean rate (Hz) of n LIF neurons stepped as the time loop does (spec §3.3: voltage noise,
    then the membrane update, threshold 1, reset 0, tau 10 ms, dt 0.1 ms, refractory dt)."""
    g = np.random.default_rng(11)
    dt, tau = 0.1, 10.0
    v = np.zeros(n)
    last = np.full(n, -100.0)
    spikes = 0
    for ti in range(1, int(t_ms / dt) + 1):
        t = ti * dt
        v += sigma * math.sqrt(dt / tau) * g.standard_normal(n)
        ok = t > last + dt
        v[ok] += dt / tau * (mu - v[ok])
        s = ok & (v > 1.0)
        v[s] = 0.0
        last[s] = t
        spikes += int(s.sum())
    return spikes / n / (t_ms / 1000.0)


def test_threshold_overshoot_makes_neurons_fire_at_the_target_rate(tmp_path):
    r = np.full((T, N), 13.0)
    write(tmp_path / "r.npy", r)
    plain = target_files.from_rate_file(make_ctx(tmp_path, "r.npy", k_zero=True,
                                                 plugin="from_rate_file"), 0)  # fmt: skip
    ctx = make_ctx(tmp_path, "r.npy", k_zero=True, plugin="from_rate_file")
    ctx = PluginContext(ctx.cfg.replace(targets__threshold_overshoot=True), ctx.derived,
                        ctx.owned, tmp_path, ctx.init)  # fmt: skip
    shifted = target_files.from_rate_file(ctx, 0)
    shift = 0.5826 * 0.65 * math.sqrt(0.1 / 10.0)
    assert np.allclose(shifted, rates_to_currents(r, 0.65, 10.0, 1.0 + shift, 0.0))
    assert target_files.threshold_overshoot(ctx, 0.65) == pytest.approx(shift)
    # the simulated neuron fires ~13 % low without the shift and within 4 % with it
    assert _euler_lif_rate(float(plain[0, 0]), 0.65) < 0.92 * 13.0
    assert abs(_euler_lif_rate(float(shifted[0, 0]), 0.65) / 13.0 - 1) < 0.04


def test_threshold_overshoot_is_ignored_with_static_connections(tmp_path):
    ctx = make_ctx(tmp_path, "r.npy", plugin="from_rate_file")  # K > 0
    ctx = PluginContext(ctx.cfg.replace(targets__threshold_overshoot=True), ctx.derived,
                        ctx.owned, tmp_path, ctx.init)  # fmt: skip
    assert target_files.threshold_overshoot(ctx, 0.65) == 0.0
