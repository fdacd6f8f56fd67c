"""Ensemble arithmetic on fixed probabilities: voting, weights fitted on val, greedy selection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.ensemble.combine import accuracy, average, combine, fit, greedy_select, hard_vote
from cnnlab.errors import ConfigError

# Three members, four images, three classes.
PROBS = np.array(
    [
        [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.4, 0.35, 0.25]],
        [[0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8], [0.1, 0.5, 0.4]],
        [[0.45, 0.1, 0.45], [0.2, 0.2, 0.6], [0.3, 0.2, 0.5], [0.1, 0.3, 0.6]],
    ]
)


def test_hard_and_soft_voting_differ_where_they_should() -> None:
    """Image 0: votes 0, 1, 0 -> hard picks 0; the mean prob is highest for 1 -> soft picks 1."""
    hard = hard_vote(PROBS)
    soft = average(PROBS, np.ones(3))
    assert hard.argmax(axis=1).tolist() == [0, 1, 2, 2]
    assert soft.argmax(axis=1).tolist() == [1, 1, 2, 2]
    # Vote shares read as "fraction of members" and every row sums to 1.
    np.testing.assert_allclose(hard[0], [2 / 3, 1 / 3, 0], atol=1e-5)
    np.testing.assert_allclose(hard.sum(axis=1), 1.0)
    np.testing.assert_allclose(soft[0], [0.3833333, 0.4, 0.2166667], atol=1e-6)


def test_hard_vote_ties_go_to_the_highest_mean_probability() -> None:
    """Image 3 with members 0 and 1 only: one vote each for 0 and 1; mean prob favours 1."""
    two = PROBS[:2]
    assert hard_vote(two)[3].argmax() == 1
    flipped = two[:, :, [1, 0, 2]]  # same tie, the mean now favours class 0
    assert hard_vote(flipped)[3].argmax() == 0


def test_weighted_vote_counts_weights() -> None:
    weights = np.array([0.2, 0.7, 0.1])
    assert combine(PROBS, weights, "hard").argmax(axis=1).tolist() == [1, 1, 2, 1]


def test_fitted_weights_favour_the_member_that_is_right_on_val() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=200)
    good = np.full((200, 3), 0.1)
    good[np.arange(200), y] = 0.8
    noise = rng.dirichlet(np.ones(3), size=(2, 200))
    w = fit("weighted", 3, np.stack([noise[0], good, noise[1]]), y)
    assert w.shape == (3,) and abs(w.sum() - 1) < 1e-9 and (w >= 0).all()
    assert w[1] > 0.8


def test_soft_and_hard_need_no_val_but_fitted_methods_do() -> None:
    np.testing.assert_allclose(fit("soft", 4), 0.25)
    with pytest.raises(ConfigError, match="val split"):
        fit("greedy", 3, None, None)
    with pytest.raises(ConfigError, match="unknown ensemble method 'mean'"):
        fit("mean", 3)


@settings(max_examples=60, deadline=None)
@given(
    members=st.integers(2, 5),
    images=st.integers(1, 40),
    classes=st.integers(2, 5),
    seed=st.integers(0, 10_000),
)
def test_greedy_never_falls_below_the_best_member_on_val(
    members: int, images: int, classes: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(classes) * 0.5, size=(members, images))
    y = rng.integers(0, classes, size=images)
    counts = greedy_select(probs, y)
    assert counts.sum() >= 1 and (counts >= 0).all()
    best = max(accuracy(p, y) for p in probs)
    assert accuracy(average(probs, counts), y) >= best


def test_greedy_can_beat_every_member() -> None:
    """Members each (mildly) wrong on a different third of val: their mean is right everywhere."""
    y = np.zeros(6, dtype=int)
    probs = np.full((3, 6, 2), [0.9, 0.1])  # confidently right by default
    for m in range(3):
        probs[m, [2 * m, 2 * m + 1]] = [0.4, 0.6]  # mildly wrong on its own third
    assert max(accuracy(p, y) for p in probs) == pytest.approx(4 / 6)
    counts = greedy_select(probs, y)
    assert accuracy(average(probs, counts), y) == 1.0
    assert (counts > 0).sum() >= 2
