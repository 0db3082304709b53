"""Config schema, loading, validation and derived values (spec §1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsn_mpi.config import default_config, derive, dump_toml, from_dict, load_config
from tsn_mpi.config.docs import render
from tsn_mpi.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_reproduce_reference_derived_values():
    d = derive(default_config())
    assert (d.n_exc, d.n_inh, d.k) == (2048, 2048, 205)
    assert (d.l_exc, d.l_inh, d.n_plastic, d.n_packed) == (29, 29, 58, 58 * 59 // 2)
    assert d.je == pytest.approx(1.39686, rel=1e-5)
    assert d.jx == pytest.approx(1.14543, rel=1e-5)
    assert d.w_static[0][0] == pytest.approx(0.20953, rel=1e-4)  # jee
    assert d.w_static[1][0] == pytest.approx(-1.04765, rel=1e-4)  # jei
    assert d.x_bal_e == pytest.approx(1.71814, rel=1e-5)
    assert d.wp_exc == pytest.approx(1.85695, rel=1e-5)
    assert (d.n_steps, d.learn_step, d.n_learn, d.max_times, d.wid_inc) == (
        20000, 100, 100, 1000, 9)
    assert (d.stim_on_step, d.stim_off_step, d.n_stim_steps) == (8000, 10000, 2000)


def test_default_toml_files_match_schema():
    text = dump_toml()
    assert (ROOT / "configs" / "default.toml").read_text() == text
    assert (ROOT / "tsn_mpi" / "config" / "default.toml").read_text() == text
    assert load_config(ROOT / "configs" / "default.toml").as_dict() == (
        default_config().as_dict())


def test_configuration_reference_is_generated_from_schema():
    assert (ROOT / "docs" / "configuration.md").read_text() == render(), (
        "docs/configuration.md is stale: run python -m tsn_mpi.config.docs")


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"network": {"n_cell": 10}}, "unknown key network.n_cell (did you mean network.n_cells"),
        ({"netwrk": {}}, "unknown section [netwrk]"),
        ({"network": {"n_cells": "many"}}, "network.n_cells = 'many' should be of type int"),
        ({"network": {"n_cells": 0}}, "network.n_cells = 0 must be > 0"),
        ({"learning": {"mode": "quick"}}, "learning.mode = 'quick' must be one of"),
        ({"simulation": {"dt": 0.3}}, "1/dt must be an integer"),
        ({"learning": {"learn_every": 10.05}}, "must be a multiple of simulation.dt"),
        ({"simulation": {"stim_on": 1200.0}}, "must not exceed simulation.stim_off"),
        ({"plastic": {"l_exc": 5000}}, "plastic.l_exc = 5000 exceeds"),
        ({"network": {"p_ee": 0.0}}, "must be set when K = 0"),
        ({"run": {"seed": True}}, "run.seed = True should be of type int"),
    ],
)
def test_bad_config_names_the_key(data, fragment):
    with pytest.raises(ConfigError) as err:
        from_dict(data, "cfg.toml")
    msg = str(err.value)
    assert fragment in msg
    assert "\n" not in msg


def test_load_config_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[network\nn_cells = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_model_hash_ignores_non_model_keys():
    a = default_config()
    assert a.model_hash() == a.replace(run__backend="gpu").model_hash()
    assert a.model_hash() != a.replace(network__n_cells=1000).model_hash()


def test_config_is_read_only():
    cfg = default_config()
    with pytest.raises(AttributeError):
        cfg.network.n_cells = 3
