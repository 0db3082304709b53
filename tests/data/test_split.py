"""The held-out split: deterministic by seed, stratified by condition."""

from __future__ import annotations

import numpy as np
import pytest

from tsn_mpi.data.split import split_trials
from tsn_mpi.errors import DataFileError


def test_split_is_stratified_and_deterministic():
    cond = np.array([0, 1] * 8 + [2] * 3)
    a = split_trials(cond, ["a", "b", "c"], 0.25, 7, "x")
    b = split_trials(cond, ["a", "b", "c"], 0.25, 7, "x")
    assert np.array_equal(a.heldout, b.heldout) and np.array_equal(a.half, b.half)
    train, held = a.counts(cond, 3)
    assert held.tolist() == [2, 2, 1] and train.tolist() == [6, 6, 2]
    for c in range(3):  # the halves split each condition evenly
        h = a.half[cond == c]
        assert abs(int(h.sum()) * 2 - h.size) <= 1
    other = split_trials(cond, ["a", "b", "c"], 0.25, 8, "x")
    assert not np.array_equal(a.heldout, other.heldout)


def test_split_keeps_a_training_trial_and_allows_no_holdout():
    cond = np.array([0, 0, 1, 1])
    s = split_trials(cond, ["a", "b"], 0.9, 1, "x")
    assert s.counts(cond, 2)[0].tolist() == [1, 1]
    assert not split_trials(np.array([0]), ["a"], 0.0, 1, "x").heldout.any()


def test_a_condition_with_one_trial_cannot_be_split():
    with pytest.raises(DataFileError, match=r"rec.nwb: condition 'b' has 1 trial"):
        split_trials(np.array([0, 0, 1]), ["a", "b"], 0.25, 1, "rec.nwb")
