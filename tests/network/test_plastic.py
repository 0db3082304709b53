"""The default plastic connectivity plugin: initial weights per pre/post type."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsn_mpi.config import default_config, derive, from_dict
from tsn_mpi.network.build import build_plastic
from tsn_mpi.network.context import PluginContext


def _weights(plastic: dict, owned: range, n: int = 400) -> tuple[np.ndarray, object]:
    cfg = from_dict({"network": {"n_cells": n, "p_ee": 0.1}, "plastic": plastic})
    d = derive(cfg)
    ctx = PluginContext(cfg, d, owned, Path("."), {"ns": np.zeros(n, np.int64)})
    _, w, _ = build_plastic(ctx)
    return w, d


def test_auto_weights_are_the_references_plus_and_minus_wp():
    w, d = _weights({}, range(150, 250))  # E and I posts (n_exc = 200)
    assert np.all(w[:, : d.l_exc] == np.float32(d.wp_exc))
    assert np.all(w[:, d.l_exc :] == np.float32(-d.wp_exc))


def test_each_type_has_its_own_initial_weight():
    w, d = _weights({"wpee": 1.0, "wpei": -2.0, "wpie": 3.0, "wpii": -4.0}, range(150, 250))
    e_post, i_post = w[:50], w[50:]  # gids 150-199 are E, 200-249 are I
    assert np.all(e_post[:, : d.l_exc] == 1.0) and np.all(e_post[:, d.l_exc :] == -2.0)
    assert np.all(i_post[:, : d.l_exc] == 3.0) and np.all(i_post[:, d.l_exc :] == -4.0)


def test_default_model_hash_is_unchanged_by_the_per_type_keys():
    """Keys added later enter the model hash only when set: checkpoints of earlier versions
    (hash 4a8f429a46d09da9 for the default model) still resume."""
    assert default_config().model_hash() == "4a8f429a46d09da9"
    assert from_dict({"plastic": {"wpie": 0.5}}).model_hash() != "4a8f429a46d09da9"
