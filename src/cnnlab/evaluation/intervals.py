"""How far a run's test accuracy and macro F1 could be from the truth: 95 % intervals.

A report that says "accuracy 0.9016" on 254 test images claims more than the images show: the
same model on another 254 images of the same kind could score several points either way.
So every evaluation also gives, over its images:

* ``accuracy_ci``: the Wilson score interval of a proportion (scipy's ``binomtest``), which
  keeps its coverage near 0 and 1 where the normal approximation does not;
* ``macro_f1_ci``: a percentile bootstrap over the images (scipy's ``bootstrap``, 1,000
  resamples, seeded, so the same predictions always give the same interval). Where the
  bootstrap has nothing to vary it gives no interval: see :func:`metric_intervals`.

Both describe the test sample only; how much a retrained model would move (training seeds) is
what a study's spread over seeds measures (:mod:`cnnlab.studies.stats`, which shares
:func:`macro_f1` with this module).

Example:
    >>> y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    >>> pred = np.array([0, 1, 2, 0, 1, 1, 0, 2, 2, 0])
    >>> ci = metric_intervals(y, pred, 3)
    >>> [round(v, 3) for v in ci["accuracy_ci"]]
    [0.49, 0.943]
    >>> ci["macro_f1_ci"][0] < float(macro_f1(y, pred, 3)) < ci["macro_f1_ci"][1]
    True
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 1000
# Elements of the (batch, images) index array the bootstrap may hold at once: ~32 MB of int64.
_BATCH_ELEMENTS = 4_000_000


def macro_f1(y_true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Macro F1 along the last axis, batched, over the classes present or predicted.

    A class that is neither in the labels nor in the predictions (tp + fp + fn = 0) has no
    F1 and is left out of the mean, the rule training's val/macro_f1 follows
    (:func:`cnnlab.engine.epoch_metrics.macro_f1`, torchmetrics). Counting it as 0 made a
    class with no image in the split cost 1/K, and made each bootstrap resample that
    happened to miss a rare class lose 1/K (intervals capped at (K-1)/K). A class predicted
    but absent (fp > 0) still scores 0. Matches ``sklearn.metrics.f1_score(labels=range(K),
    average="macro", zero_division=np.nan)``.
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(pred, dtype=np.int64)
    y, p = np.broadcast_arrays(y, p)
    lead = y.shape[:-1]
    rows = int(np.prod(lead)) if lead else 1
    y2, p2 = y.reshape(rows, -1), p.reshape(rows, -1)
    k = num_classes
    offset = (np.arange(rows) * k)[:, None]
    hits = y2 == p2
    tp = np.bincount((offset + y2)[hits], minlength=rows * k).reshape(rows, k)
    true_n = np.bincount((offset + y2).ravel(), minlength=rows * k).reshape(rows, k)
    pred_n = np.bincount((offset + p2).ravel(), minlength=rows * k).reshape(rows, k)
    denom = true_n + pred_n  # = 2 tp + fp + fn
    f1 = np.divide(2.0 * tp, denom, out=np.zeros((rows, k)), where=denom > 0)
    counted = (denom > 0).sum(axis=1)
    mean = np.divide(f1.sum(axis=1), counted, out=np.zeros(rows), where=counted > 0)
    return mean.reshape(lead)


def wilson_interval(hits: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of ``hits`` right answers out of ``n`` (scipy's ``binomtest``):
    the one accuracy interval of every report, the no-skill check and ``data issues``' model.

    Example:
        >>> [round(x, 3) for x in wilson_interval(15, 15)]
        [0.796, 1.0]
    """
    from scipy import stats

    ci = stats.binomtest(hits, n).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def beats_majority(
    accuracy: float, majority: float, n: int, confidence: float = CONFIDENCE
) -> bool:
    """True when ``accuracy`` on ``n`` images is above ``majority`` at ``confidence``.

    ``majority`` is the no-skill baseline: the accuracy of always answering the split's most
    frequent class. A model whose accuracy interval (Wilson) reaches down to it has not shown
    that it learned anything (seed 003's reports had validation accuracies of 0.0000 and
    0.33 on three classes read as results).

    Example:
        >>> beats_majority(0.108, 0.126, 254), beats_majority(0.93, 0.126, 254)
        (False, True)
    """
    if n < 1:
        return False
    hits = min(n, max(0, round(accuracy * n)))
    return wilson_interval(hits, n, confidence)[0] > majority


def metric_intervals(
    y_true: Any,
    pred: Any,
    num_classes: int,
    confidence: float = CONFIDENCE,
    n_resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """``accuracy_ci`` and ``macro_f1_ci`` as ``[low, high]``, with ``ci_level`` and
    ``macro_f1_ci_note``.

    With fewer than two images there is nothing to resample: both intervals are None.

    A percentile bootstrap collapses where (nearly) every resample gives the same macro F1: a
    perfect score (every resample of right answers is perfect too) or a zero one. It then
    printed "1.000-1.000" beside a Wilson accuracy interval of 0.796-1.000 on the same 15
    images (explore I, finding 9): certainty the images cannot give. A zero-width interval is
    therefore not reported: ``macro_f1_ci`` is None and ``macro_f1_ci_note`` says why. No
    other rule is put in its place: macro F1 has no closed-form interval at a perfect score
    (unlike a proportion), so the honest statement is "not estimable by bootstrap", with the
    accuracy interval as the measure of how much the images leave open.

    Example:
        >>> ci = metric_intervals([0, 1, 0, 1], [0, 1, 0, 1], 2)
        >>> ci["macro_f1_ci"], ci["macro_f1_ci_note"][:32]
        (None, 'not estimable by bootstrap: 1000')
    """
    from scipy import stats

    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(pred, dtype=np.int64).reshape(-1)
    out: dict[str, Any] = {"ci_level": confidence, "accuracy_ci": None, "macro_f1_ci": None,
                           "macro_f1_ci_note": None}  # fmt: skip
    n = int(y.size)
    if n < 2:
        return out
    out["accuracy_ci"] = list(wilson_interval(int((y == p).sum()), n, confidence))

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.moveaxis(idx, axis, -1)
        return macro_f1(y[idx], p[idx], num_classes)

    with warnings.catch_warnings():  # all resamples equal (a perfect model): a point, not a warning
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (np.arange(n),),
            statistic,
            n_resamples=n_resamples,
            batch=max(1, _BATCH_ELEMENTS // n),
            vectorized=True,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = (float(v) for v in res.confidence_interval)
    if high > low:
        out["macro_f1_ci"] = [low, high]
    else:  # no width (or NaN): the resamples agree, which says nothing about other images
        same = int(np.sum(res.bootstrap_distribution == low))
        out["macro_f1_ci_note"] = (
            f"not estimable by bootstrap: {same} of {n_resamples} resamples of the {n} images "
            f"give macro F1 {low:.4f}, so the interval has no width"
        )
    return out
