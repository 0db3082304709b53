"""Fit metrics: Pearson r, R2, the ceiling and the one-line summary."""

from __future__ import annotations

import re

import numpy as np

from tsn_mpi.data import metrics


def test_pearson_and_r2_per_column():
    t = np.linspace(0, 1, 50)
    a = np.stack([np.sin(6 * t), t, np.ones_like(t)], axis=1)
    b = np.stack([2 * np.sin(6 * t) + 1, -t, t], axis=1)
    r = metrics.pearson(a, b)
    assert np.allclose(r[:2], [1.0, -1.0]) and np.isnan(r[2])
    r2 = metrics.r_squared(a, a + 0.0)
    assert np.allclose(r2[:2], 1.0) and np.isnan(r2[2])
    assert metrics.r_squared(a[:, :1], a[:, :1] + 1.0)[0] < 0  # an offset costs R2, not r


def test_evaluate_scores_models_against_the_heldout_psth():
    g = np.random.default_rng(0)
    truth = g.uniform(2, 20, size=(2, 30, 5))
    held = truth + g.normal(0, 1, truth.shape)
    train = truth + g.normal(0, 1, truth.shape)
    model = truth.copy()
    model[:, :, 3] = 0.0  # a silent model unit
    held[:, :, 4] = 5.0  # a unit whose held-out PSTH is flat: not scored
    m = metrics.evaluate(model, held, train, current_r=np.full(5, 0.5))
    assert m.scored.tolist() == [True, True, True, True, False]
    assert np.all(m.r[:3] > 0.9) and m.r[3] == 0.0 and np.isnan(m.r[4])
    assert np.all(m.ceiling[:3] > 0.8) and np.isclose(m.rate_model[3], 0)
    s = metrics.summary(m)
    assert s["n_scored"] == 4 and s["n_model_silent"] == 1
    assert np.isclose(s["r_mean"], np.mean(m.r[:4]))


def test_headline_has_the_issue_format():
    g = np.random.default_rng(1)
    x = g.uniform(1, 10, size=(2, 20, 400))
    m = metrics.evaluate(x, x + g.normal(0, 1, x.shape), x, None)
    line = metrics.headline(m)
    assert re.fullmatch(
        r"held-out PSTH r = \d\.\d{3} \(mean of 400 units; R2 = -?\d\.\d\d; "
        r"data split-half ceiling r = \d\.\d\d\)",
        line,
    ), line
    assert "no held-out" in metrics.headline(m, heldout=False)
    lines = metrics.summary_lines(m, ["left", "right"])
    assert "left" in lines[2] and "rates: model" in lines[3]
