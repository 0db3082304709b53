"""Closed-form initial P (spec §4.2) against a numpy inverse."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference import initial_p_reference, pinv_reference
from tsn_mpi.learn import initial_p as ip
from tsn_mpi.learn.packed import symmetrize_full_rows, unpack_rows


def _weights(rng, n_owned, m):
    """Mixed-sign weights with some zeros and some padding slots."""
    w = rng.normal(size=(n_owned, m)).astype(np.float32)
    w[rng.random((n_owned, m)) < 0.15] = 0.0
    valid = rng.random((n_owned, m)) > 0.2
    valid[0] = True
    w[~valid] = 0.0
    return w, valid


@pytest.mark.parametrize("n_ff", [0, 3])
@pytest.mark.parametrize("storage", ["packed", "full"])
def test_initial_p_matches_inverse(n_ff, storage):
    rng = np.random.default_rng(3)
    w, valid = _weights(rng, 13, 11)
    args = (w, valid, n_ff, 0.8, 1.7, 0.05)
    rows = ip.initial_p_rows(*args, storage=storage)
    n = n_ff + 11
    assert rows.dtype == np.float64
    if storage == "packed":
        assert rows.shape == (13, n * (n + 1) // 2)
        full = unpack_rows(rows)
    else:
        assert rows.shape == (13, n * n)
        full = rows.reshape(13, n, n)
        np.testing.assert_array_equal(full, symmetrize_full_rows(rows, n))
    ref = initial_p_reference(*args)
    np.testing.assert_allclose(full, ref, rtol=1e-12, atol=1e-14)
    # padding slots: zero rows and columns; P0 @ Pinv = identity on the valid slots
    pinv = pinv_reference(*args)
    for i in range(13):
        keep = np.concatenate([np.ones(n_ff, bool), valid[i]])
        assert not full[i][~keep].any() and not full[i][:, ~keep].any()
        prod = (full[i] @ pinv[i])[np.ix_(keep, keep)]
        np.testing.assert_allclose(prod, np.eye(keep.sum()), atol=1e-12)


def test_default_values():
    """Defaults lambda=0.8, mu=0.01, one positive group of 29: 1.238532 / -0.011468."""
    w = np.ones((2, 29), np.float32)
    rows = ip.initial_p_rows(w, np.ones_like(w, bool), 0, 0.8, 1.0, 0.01)
    full = unpack_rows(rows)
    np.testing.assert_allclose(np.diag(full[0]), 1.238532, atol=5e-7)
    np.testing.assert_allclose(full[0, 0, 1:], -0.011468, atol=5e-7)


def test_groups_are_signs_of_valid_nonzero_weights():
    w = np.array([[1.0, 2.0, -1.0, 0.0, 5.0]], np.float32)
    valid = np.array([[True, True, True, True, False]])
    grp = ip.sign_groups(w, valid, 1)
    np.testing.assert_array_equal(grp, [[0, 1, 1, 2, 0, 0]])
    full = unpack_rows(ip.initial_p_rows(w, valid, 1, 0.8, 2.0, 0.01))[0]
    assert full[0, 0] == 0.5  # 1 / penlam_ff
    assert full[1, 2] < 0 and full[1, 3] == 0 and full[3, 4] == 0
    assert full[3, 3] == pytest.approx(1 / 0.8 - 0.01 / (0.8 * 0.81))  # group of one
    assert full[4, 4] == 1 / 0.8  # zero weight: no group
    assert not full[5].any()  # padding


def test_empty_and_tiny():
    w = np.zeros((0, 4), np.float32)
    assert ip.initial_p_rows(w, w > 0, 2, 0.8, 1.0, 0.01).shape == (0, 21)
    one = ip.initial_p_rows(np.ones((3, 1)), np.ones((3, 1), bool), 0, 0.5, 1.0, 0.25)
    np.testing.assert_allclose(one, 1 / 0.75)  # a group of one: 1/(lam + mu)


def test_bad_arguments():
    w = np.zeros((2, 3))
    with pytest.raises(ValueError, match="storage"):
        ip.initial_p_rows(w, w > -1, 0, 0.8, 1.0, 0.01, storage="dense")
    with pytest.raises(ValueError, match="pre_valid"):
        ip.initial_p_rows(w, np.ones((2, 4), bool), 0, 0.8, 1.0, 0.01)
