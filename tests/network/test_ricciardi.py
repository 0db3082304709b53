"""Ricciardi transfer function (spec §8) and its vectorised inverse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tsn_mpi.errors import DataFileError
from tsn_mpi.network.ricciardi import rates_to_currents, ricciardi

VT, VR, INVTAU = 1.0, 0.0, 100.0  # threshold, reset, 1/s (tau_mem = 10 ms)


@pytest.mark.parametrize(
    ("mu", "sigma", "rate"),
    [(0.5, 0.3, 4.597), (0.9, 0.2, 26.77), (1.2, 0.3, 65.83), (0.5, 0.65, 29.63)],
)
def test_spot_values(mu, sigma, rate):
    got = ricciardi(mu, sigma, INVTAU, VT, VR)
    assert isinstance(got, float)
    assert float(f"{got:.4g}") == pytest.approx(rate, abs=1e-12)


def _erfcx(v: float) -> float:
    """exp(v²) erfc(v), accurate for moderate |v| (no scipy)."""
    if v < 0:
        return math.exp(v * v) * (2.0 - math.erfc(-v))
    return math.exp(v * v) * math.erfc(v)


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(40)


def _quadrature_rate(mu: float, sigma: float) -> float:
    """1/rate = tau*sqrt(pi)*∫_{(mu-VT)/sigma}^{(mu-VR)/sigma} erfcx(v) dv, composite Gauss."""
    lo, hi = (mu - VT) / sigma, (mu - VR) / sigma
    edges = np.linspace(lo, hi, 1 + max(1, math.ceil((hi - lo) / 0.25)))
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        x = 0.5 * (b - a) * _NODES + 0.5 * (a + b)
        total += 0.5 * (b - a) * sum(w * _erfcx(v) for w, v in zip(_WEIGHTS, x, strict=True))
    return 1.0 / (math.sqrt(math.pi) * total / INVTAU)


def test_matches_quadrature_over_grid():
    mus = np.linspace(-0.5, 2.0, 11)
    for sigma in (0.1, 0.3, 0.65, 1.5):
        got = ricciardi(mus, sigma, INVTAU, VT, VR)
        want = np.array([_quadrature_rate(m, sigma) for m in mus])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-12)


def test_vectorised_shape_and_branches():
    mu = np.linspace(-1.0, 3.0, 24).reshape(4, 6)
    got = ricciardi(mu, 0.3, INVTAU, VT, VR)
    assert got.shape == (4, 6)
    want = np.array([ricciardi(float(m), 0.3, INVTAU, VT, VR) for m in mu.ravel()]).reshape(4, 6)
    np.testing.assert_array_equal(got, want)
    assert np.all(np.diff(got.ravel()) > 0)  # increasing in mu


def test_deterministic_branch():
    assert ricciardi(0.9, 0.0, INVTAU, VT, VR) == 0.0
    assert ricciardi(2.0, 0.0, INVTAU, VT, VR) == pytest.approx(INVTAU / math.log(2.0))
    # small noise approaches the deterministic rate above threshold
    assert ricciardi(2.0, 1e-3, INVTAU, VT, VR) == pytest.approx(INVTAU / math.log(2.0), rel=1e-3)


def test_invalid_parameters():
    with pytest.raises(ValueError, match="threshold"):
        ricciardi(0.5, 0.3, INVTAU, 0.0, 1.0)
    with pytest.raises(ValueError, match="negative"):
        ricciardi(0.5, -0.1, INVTAU, VT, VR)


@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0, 3.0])
def test_round_trip(sigma):
    rates = np.exp(np.random.default_rng(3).uniform(np.log(0.05), np.log(500.0), (50, 40)))
    mu = rates_to_currents(rates, sigma, 10.0, VT, VR)
    assert mu.shape == rates.shape and mu.dtype == np.float64
    back = ricciardi(mu, sigma, 1000.0 / 10.0, VT, VR)
    np.testing.assert_allclose(back, rates, rtol=1e-6)


def test_round_trip_deterministic_rates():
    rates = np.array([20.0, 50.0, 200.0, 1000.0])
    mu = rates_to_currents(rates, 0.0, 10.0, VT, VR)
    np.testing.assert_allclose(ricciardi(mu, 0.0, INVTAU, VT, VR), rates, rtol=1e-6)


def test_spot_values_invert():
    mu = rates_to_currents([4.59709722777863, 65.82535748081939], 0.3, 10.0, VT, VR)
    np.testing.assert_allclose(mu, [0.5, 1.2], atol=1e-9)


def _psths(n: int = 100) -> np.ndarray:
    """The reference's Ricciardi test PSTHs: ramp up, ramp down, triangle, sinusoid."""
    t = np.arange(1, n + 1, dtype=np.float64)
    tri = np.concatenate([np.linspace(1, 100, n // 2), np.linspace(100, 1, n - n // 2)])
    return np.stack([t, t[::-1], tri, 25 + 25 * np.sin(2 * np.pi * t / n)], axis=1)


def test_monotone_like_reference_test():
    rates = _psths()
    rates[rates == 0] = 0.1
    for sigma in (0.2, 0.65):
        mu = rates_to_currents(rates, sigma, 10.0, VT, VR)
        dr, dm = np.diff(rates, axis=0), np.diff(mu, axis=0)
        moving = dr != 0
        assert np.all(np.sign(dm[moving]) == np.sign(dr[moving]))


def test_bad_rates_are_reported():
    with pytest.raises(DataFileError, match=r"psth: 2 rates are not positive") as exc:
        rates_to_currents(np.array([1.0, 0.0, np.nan]), 0.3, 10.0, VT, VR, source="psth")
    assert "\n" not in str(exc.value)


def test_large_array_is_vectorised():
    rates = np.random.default_rng(0).uniform(0.1, 60.0, (20, 20000))
    mu = rates_to_currents(rates, 0.3, 10.0, VT, VR)
    idx = (np.arange(0, 20, 7), np.arange(0, 20000, 997)[:3])
    np.testing.assert_allclose(ricciardi(mu[idx], 0.3, INVTAU, VT, VR), rates[idx], rtol=1e-6)
