"""cnnlab.studies.stats checked against scipy, statsmodels and scikit-learn on fixed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score
from statsmodels.stats.weightstats import DescrStatsW

from cnnlab.studies import stats


def _paired_case(seed: int, seeds: int = 3, n: int = 60, k: int = 4):
    """Labels never use the last class; model A is right more often than B."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k - 1, size=n)
    a = np.where(rng.random((seeds, n)) < 0.8, y, rng.integers(0, k, size=(seeds, n)))
    b = np.where(rng.random((seeds, n)) < 0.6, y, rng.integers(0, k, size=(seeds, n)))
    return y, a, b, k


@pytest.mark.parametrize("values", [[0.91, 0.93, 0.88], [0.5, 0.7, 0.6, 0.65, 0.55], [0.1, 0.9]])
def test_spread_matches_statsmodels_t_interval(values):
    got = stats.spread(values)
    low, high = DescrStatsW(np.array(values)).tconfint_mean(alpha=0.05)
    assert got.n == len(values)
    assert got.mean == pytest.approx(np.mean(values))
    assert got.std == pytest.approx(np.std(values, ddof=1))
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high))


def test_spread_edge_cases_one_seed_equal_seeds_and_failed_runs():
    one = stats.spread([0.8])
    assert one.mean == 0.8 and one.n == 1
    assert math.isnan(one.std) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    same = stats.spread([0.5, 0.5, 0.5])
    assert (same.std, same.ci_low, same.ci_high) == (0.0, 0.5, 0.5)
    with_nan = stats.spread([0.6, float("nan"), 0.8])
    assert with_nan.n == 2 and with_nan.mean == pytest.approx(0.7)
    assert stats.spread([]).n == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_f1_matches_sklearn_batched_with_absent_classes(seed):
    y, a, _, k = _paired_case(seed, seeds=4)
    got = stats.macro_f1(y, a, k)
    nan = np.nan  # a class absent from labels and predictions is left out, as in training
    want = [
        f1_score(y, row, labels=list(range(k)), average="macro", zero_division=nan) for row in a
    ]
    assert got.shape == (4,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert float(stats.macro_f1(y, a[0], k)) == pytest.approx(want[0])


def test_bootstrap_accuracy_matches_scipy_on_per_image_difference():
    y, a, b, _ = _paired_case(0)
    got = stats.paired_bootstrap(y, a, b, n_resamples=999, seed=7)
    per_image = np.mean([(a[s] == y) & 1 for s in range(3)], axis=0) - np.mean(
        [(b[s] == y) & 1 for s in range(3)], axis=0
    )
    ref = sps.bootstrap(
        (per_image,),
        np.mean,
        n_resamples=999,
        method="percentile",
        rng=np.random.default_rng(7),
    )
    want_diff = np.mean([np.mean(a[s] == y) - np.mean(b[s] == y) for s in range(3)])
    assert got.diff == pytest.approx(want_diff)
    assert got.ci_low == pytest.approx(ref.confidence_interval.low)
    assert got.ci_high == pytest.approx(ref.confidence_interval.high)
    assert got.ci_low <= got.diff <= got.ci_high


# Seeds (of 3) that A and B got right on each of 49 test images, from a real study (explore_b
# sK, lr=1e-3 vs 3e-3). Summing float fractions (2/3 - 1/3, ...) gave a CI bound of -6.8e-18.
_RIGHT_A_B = (
    "11 10 10 11 11 11 33 33 33 33 33 33 33 33 33 33 01 01 00 00 11 01 00 00 10 01 01 11 10 10 "
    "11 11 00 10 00 01 11 00 11 10 11 13 13 23 13 11 13 13 23"
)


def test_bootstrap_bound_that_touches_zero_is_exactly_zero():
    counts = [(int(pair[0]), int(pair[1])) for pair in _RIGHT_A_B.split()]
    y = np.zeros(len(counts), dtype=np.int64)
    a = np.array([[int(s < ra) ^ 1 for ra, _ in counts] for s in range(3)])  # 0 = right
    b = np.array([[int(s < rb) ^ 1 for _, rb in counts] for s in range(3)])
    # Shuffle which seed got an image right, so the fractions come from several seed rows.
    a, b = np.roll(a, 1, axis=0), np.roll(b, 2, axis=0)
    got = stats.paired_bootstrap(y, a, b, seed=0)
    assert got.ci_high == 0.0  # a resample with equal counts differs by exactly nothing
    assert got.diff == pytest.approx(-11 / 147)
    assert stats.verdict(got.ci_low, got.ci_high, 0.001) == "not distinguishable"


def test_bootstrap_macro_f1_matches_scipy_paired_resampling_with_sklearn():
    y, a, b, k = _paired_case(3, seeds=2, n=50)
    got = stats.paired_bootstrap(y, a, b, metric="macro_f1", num_classes=k, n_resamples=150)

    def f1(t, p):  # a class a resample misses and never predicts is left out, as in training
        return f1_score(t, p, labels=list(range(k)), average="macro", zero_division=np.nan)

    def statistic(t, a0, a1, b0, b1):
        return (f1(t, a0) - f1(t, b0) + f1(t, a1) - f1(t, b1)) / 2

    ref = sps.bootstrap(
        (y, a[0], a[1], b[0], b[1]),
        statistic,
        paired=True,
        vectorized=False,
        n_resamples=150,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    assert got.diff == pytest.approx(statistic(y, a[0], a[1], b[0], b[1]))
    assert got.ci_low == pytest.approx(ref.confidence_interval.low, abs=1e-9)
    assert got.ci_high == pytest.approx(ref.confidence_interval.high, abs=1e-9)


def test_bootstrap_is_antisymmetric_seed_paired_and_handles_identical_models():
    y, a, b, _ = _paired_case(1)
    ab = stats.paired_bootstrap(y, a, b, seed=3)
    ba = stats.paired_bootstrap(y, b, a, seed=3)
    assert ab.diff == pytest.approx(-ba.diff)
    assert ab.ci_low == pytest.approx(-ba.ci_high) and ab.ci_high == pytest.approx(-ba.ci_low)
    same = stats.paired_bootstrap(y, a, a.copy(), metric="macro_f1")
    assert (same.diff, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="equal shapes"):
        stats.paired_bootstrap(y, a, b[:2])


def test_mcnemar_matches_exact_binomial_and_takes_the_largest_seed_p():
    y, a, b, _ = _paired_case(2)
    got = stats.mcnemar(y, a, b)
    ps = []
    for s in range(3):
        n10 = int(np.sum((a[s] == y) & (b[s] != y)))
        n01 = int(np.sum((a[s] != y) & (b[s] == y)))
        ps.append(sps.binomtest(n10, n10 + n01, 0.5).pvalue)
    np.testing.assert_allclose(got.per_seed, ps, rtol=1e-10)
    assert got.pvalue == pytest.approx(max(ps))
    assert got.a_only == int(np.sum((a == y) & (b != y)))
    assert got.b_only == int(np.sum((a != y) & (b == y)))
    # A textbook case: 9 images only A got right, 1 only B: p = 2 * P(X <= 1 | 10, 0.5).
    y1 = np.zeros(12, dtype=int)
    a1 = np.array([0] * 9 + [1] + [0, 1])
    b1 = np.array([1] * 9 + [0] + [0, 1])
    assert stats.mcnemar(y1, a1, b1).pvalue == pytest.approx(2 * 11 / 1024)


def test_mcnemar_without_discordant_pairs_is_one():
    y = np.array([0, 1, 2])
    assert stats.mcnemar(y, y, y).pvalue == 1.0


def test_holm_matches_statsmodels_and_a_hand_example():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(0)
    many = rng.random(9) ** 3
    np.testing.assert_allclose(stats.holm(many), multipletests(many, method="holm")[1])
    with_nan = stats.holm([0.01, float("nan"), 0.02])
    assert math.isnan(with_nan[1])
    np.testing.assert_allclose(with_nan[[0, 2]], [0.02, 0.02])


@pytest.mark.parametrize(
    ("low", "high", "p", "want"),
    [
        (0.01, 0.05, 0.001, "better"),
        (-0.05, -0.01, 0.001, "worse"),
        (-0.01, 0.05, 0.001, "not distinguishable"),
        (0.01, 0.05, 0.2, "not distinguishable"),
        (0.01, 0.05, float("nan"), "not distinguishable"),
    ],
)
def test_verdict_needs_both_the_interval_and_the_test(low, high, p, want):
    assert stats.verdict(low, high, p) == want
    assert want in stats.VERDICTS


def test_a_seed_independent_cell_counted_once_per_seed_adds_no_evidence():
    """A frozen backbone with a deterministic head predicts the same for every seed: the
    paired tests over its repeated seeds say exactly what one seed pair says (explore_d G)."""
    y, a, b, k = _paired_case(7, seeds=1)
    twice = (np.repeat(a, 2, axis=0), np.repeat(b, 2, axis=0))
    for metric in ("accuracy", "macro_f1"):
        one = stats.paired_bootstrap(y, a, b, metric=metric, num_classes=k, seed=3)
        assert stats.paired_bootstrap(y, *twice, metric=metric, num_classes=k, seed=3) == one
    assert stats.mcnemar(y, *twice).pvalue == stats.mcnemar(y, a, b).pvalue
