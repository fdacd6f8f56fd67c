"""Statistics for comparing classifiers on one shared test set: spread, paired CIs, McNemar.

Everything here works on plain NumPy arrays of integer labels, so studies, ensembles and the
app share one implementation. Predictions of several training seeds are stacked as rows,
``(seeds, images)``; row ``k`` of one model is paired with row ``k`` of the other (the same
seed), and every row scores the same test images in the same order.

The heavy lifting is done by scipy (bootstrap, t-interval) and statsmodels (exact McNemar,
Holm); this module decides what is resampled and how seeds are combined.

Example:
    >>> y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    >>> a = np.array([[0, 1, 1, 0, 1, 0, 1, 0]])
    >>> b = np.array([[0, 1, 0, 0, 0, 1, 1, 0]])
    >>> d = paired_bootstrap(y, a, b, n_resamples=200)
    >>> round(d.diff, 3)
    0.375
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cnnlab.evaluation.intervals import macro_f1  # one implementation, shared

Metric = Literal["accuracy", "macro_f1"]
VERDICTS = ("better", "worse", "not distinguishable")
# Elements of the (batch, seeds, images) index array scipy may hold at once: ~64 MB of int64.
_BATCH_ELEMENTS = 8_000_000


@dataclass(frozen=True)
class Spread:
    """Mean of a metric over seeds with its sample std and t-based confidence interval.

    With one value the std and interval are NaN: one seed says nothing about the spread.
    """

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class Difference:
    """Metric of A minus metric of B (mean over paired seeds) with a bootstrap CI."""

    diff: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of paired correctness.

    ``a_only`` counts images A got right and B wrong, ``b_only`` the reverse (summed over
    seed pairs); ``per_seed`` holds the p-value of each seed pair and ``pvalue`` the largest.
    """

    a_only: int
    b_only: int
    pvalue: float
    per_seed: tuple[float, ...]


def spread(values: np.ndarray | list[float], confidence: float = 0.95) -> Spread:
    """Mean, std (ddof=1) and Student-t interval of a metric measured once per seed.

    NaN values (failed runs) are left out. The t-interval treats seeds as a sample of all
    the seeds one could have used, which is what "run it again" means.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return Spread(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return Spread(mean, math.nan, math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    if std == 0.0:  # every seed scored the same: the interval collapses onto the mean
        return Spread(mean, 0.0, mean, mean, n)
    low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=std / math.sqrt(n))
    return Spread(mean, std, float(low), float(high), n)


def accuracy(y_true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Share of correct predictions along the last axis (any leading batch shape)."""
    return np.mean(np.asarray(pred) == np.asarray(y_true), axis=-1)


def _as_seeds(y_true: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray) -> tuple:
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    a = np.atleast_2d(np.asarray(preds_a, dtype=np.int64))
    b = np.atleast_2d(np.asarray(preds_b, dtype=np.int64))
    if a.shape != b.shape or a.shape[1] != y.size:
        raise ValueError(
            f"paired predictions need equal shapes (seeds, {y.size}); got {a.shape} and {b.shape}"
        )
    if y.size == 0:
        raise ValueError("no test images to compare")
    return y, a, b


def paired_bootstrap(
    y_true: np.ndarray,
    preds_a: np.ndarray,
    preds_b: np.ndarray,
    metric: Metric = "accuracy",
    num_classes: int | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Difference:
    """Percentile bootstrap CI of ``metric(A) - metric(B)`` over test images, seeds paired.

    Each resample draws test images with replacement; the same draw scores every seed of both
    models, so image difficulty cancels out of the difference. The statistic is the mean over
    seed pairs of the per-seed difference. Training-seed variation is not resampled here; see
    :func:`spread` for that.

    Args:
        y_true: true labels ``(images,)``.
        preds_a: predicted labels of A, ``(images,)`` or ``(seeds, images)``.
        preds_b: predicted labels of B, the same shape as ``preds_a``, rows paired by seed.
        metric: ``accuracy`` or ``macro_f1``.
        num_classes: classes for macro F1 (default: the largest label seen + 1).
        confidence: two-sided level of the interval.
        n_resamples: bootstrap resamples.
        seed: seeds the resampling, so the same inputs give the same interval.
    """
    from scipy import stats

    y, a, b = _as_seeds(y_true, preds_a, preds_b)
    if metric == "accuracy":
        # Accuracy is a mean over images, so per-image differences suffice. They are kept as
        # integer counts (seeds A got right minus seeds B got right) and divided once at the
        # end: differences of float fractions such as 2/3 - 1/3 do not cancel exactly, and a
        # resample whose difference is truly 0 came out as -6.8e-18, an interval that
        # "excluded" 0 by rounding alone.
        per_image = (a == y).sum(axis=0) - (b == y).sum(axis=0)
        data: tuple = (per_image,)
        seeds = a.shape[0]

        def statistic(d: np.ndarray, axis: int = -1) -> np.ndarray:
            return d.sum(axis=axis) / (d.shape[axis] * seeds)  # an exact sum of integers

    elif metric == "macro_f1":
        k = num_classes or int(max(y.max(), a.max(), b.max())) + 1
        data = (np.arange(y.size),)

        def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
            idx = np.moveaxis(idx, axis, -1)
            take_a, take_b = a[..., idx], b[..., idx]  # (seeds, *batch, images)
            diff = macro_f1(y[idx], take_a, k) - macro_f1(y[idx], take_b, k)
            return diff.mean(axis=0)

    else:
        raise ValueError(f"unknown metric {metric!r}; expected 'accuracy' or 'macro_f1'")
    point = float(statistic(data[0]))
    if np.all(a == b):  # identical predictions: every resample gives exactly 0
        return Difference(point, point, point)
    res = stats.bootstrap(
        data,
        statistic,
        n_resamples=n_resamples,
        batch=max(1, _BATCH_ELEMENTS // (a.size * 2 + y.size)),
        vectorized=True,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return Difference(point, float(ci.low), float(ci.high))


def mcnemar(y_true: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray) -> McNemar:
    """Exact (binomial) McNemar test that A and B are equally often right on the same images.

    With several seeds each seed pair is tested on its own and the largest p-value is
    reported, so a small p means every seed pair showed the difference. Pooling the pairs
    instead would count each image once per seed, as if it were new evidence, and overstate
    the significance.
    """
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    y, a, b = _as_seeds(y_true, preds_a, preds_b)
    ps, a_total, b_total = [], 0, 0
    for row_a, row_b in zip(a, b, strict=True):
        right_a, right_b = row_a == y, row_b == y
        n10 = int(np.sum(right_a & ~right_b))
        n01 = int(np.sum(~right_a & right_b))
        n11 = int(np.sum(right_a & right_b))
        n00 = int(np.sum(~right_a & ~right_b))
        ps.append(float(sm_mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue))
        a_total, b_total = a_total + n10, b_total + n01
    return McNemar(a_total, b_total, max(ps), tuple(ps))


def holm(pvalues: np.ndarray | list[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control for several tests).

    NaN entries (comparisons that could not be made) stay NaN and do not count as tests.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def verdict(ci_low: float, ci_high: float, p_adjusted: float, alpha: float = 0.05) -> str:
    """``better`` / ``worse`` (A vs B) only when the CI excludes 0 and the test agrees.

    Both must hold: the bootstrap interval of ``A - B`` lies entirely on one side of zero,
    and the (multiplicity-adjusted) p-value is below ``alpha``. Anything else, including a
    missing value, is ``not distinguishable``.
    """
    if any(math.isnan(v) for v in (ci_low, ci_high, p_adjusted)) or p_adjusted >= alpha:
        return "not distinguishable"
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "not distinguishable"
