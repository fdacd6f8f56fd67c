"""Classification metrics from predicted probabilities, and a plain-words fit diagnosis.

Every metric is computed over all ``K`` classes of the run (``labels=range(K)``), so a class
that never occurs in the labels or in the predictions still has its row (0 where a score is
0/0, instead of raising: small test splits hit this often). The macro averages leave out a
class whose score is 0/0, which was never measured: macro F1 averages the classes present in
the split or predicted (tp + fp + fn > 0), the rule training's val/macro_f1 follows
(:func:`cnnlab.engine.epoch_metrics.macro_f1`); macro recall averages the classes present (it
equals balanced accuracy), macro precision the classes predicted. Counting a class with no
image as 0 pulled macro F1 down by 1/K per such class. The output holds only Python ints,
floats, strings and lists, so it goes straight into ``metrics.json``.

Precision, recall and F1 are the definitions scikit-learn's ``precision_recall_fscore_support``
implements (``labels=range(K)``; per class ``zero_division=0``, macro averages
``zero_division=np.nan``), computed here from the confusion matrix:
importing ``sklearn.metrics`` cost 0.7-1 s of every run's wrap-up (issue 11), far more than the
arithmetic. tests/evaluation/test_metrics.py checks every number against scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.errors import DataError
from cnnlab.evaluation.intervals import macro_f1, metric_intervals

_PROB_FLOOR = 1e-15  # log loss clips probabilities here so one confident mistake stays finite


def _check_inputs(y_true: Any, probs: Any, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    if p.ndim != 2 or p.shape[1] != k:
        raise DataError(f"probabilities have shape {p.shape}, expected (N, {k}) for {k} classes")
    if p.shape[0] != y.shape[0]:
        raise DataError(f"{y.shape[0]} labels but {p.shape[0]} rows of probabilities")
    if y.size == 0:
        raise DataError("no samples to evaluate: every image was missing or unreadable")
    if y.min() < 0 or y.max() >= k:
        raise DataError(f"labels must lie in 0..{k - 1}; got {y.min()}..{y.max()}")
    return y, p


def top_k_accuracy(y: np.ndarray, p: np.ndarray, k: int) -> float:
    """Share of samples whose true class is among the ``k`` most probable (k capped by K)."""
    if y.size == 0:
        return 0.0
    k = max(1, min(k, p.shape[1]))
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == y[:, None], axis=1)))


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Equal-width confidence bins: count, mean confidence and accuracy in each.

    The confidence is the top-1 probability; a sample with confidence exactly 1.0 falls in
    the last bin.
    """
    conf = p.max(axis=1) if p.size else np.zeros(0)
    correct = (p.argmax(axis=1) == y) if p.size else np.zeros(0, dtype=bool)
    index = np.minimum((conf * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        out.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": n,
                "confidence": float(conf[mask].mean()) if n else 0.0,
                "accuracy": float(correct[mask].mean()) if n else 0.0,
            }
        )
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """ECE: the bin-size-weighted mean gap between confidence and accuracy."""
    n = y.size
    if n == 0:
        return 0.0
    table = calibration_bins(y, p, bins)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in table))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    if y.size == 0:
        return 0.0
    rows = p / np.clip(p.sum(axis=1, keepdims=True), _PROB_FLOOR, None)
    picked = np.clip(rows[np.arange(y.size), y], _PROB_FLOOR, 1.0)
    return float(-np.mean(np.log(picked)))


def _confused_pairs(cm: np.ndarray, classes: Sequence[str], top: int = 10) -> list[dict]:
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = []
    for flat in order:
        t, q = divmod(int(flat), cm.shape[1])
        if off[t, q] == 0:
            break
        support = int(cm[t].sum())
        pairs.append(
            {
                "true": classes[t],
                "pred": classes[q],
                "count": int(off[t, q]),
                "share_of_true": float(off[t, q] / support) if support else 0.0,
            }
        )
    return pairs


def confusion_counts(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows true class, columns predicted class."""
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's ``zero_division=0``)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _prf(tp: Any, predicted: Any, support: Any) -> tuple[np.ndarray, ...]:
    """Precision, recall and F1 from true positives, predicted counts and true counts.

    F1 is ``2 tp / (support + predicted)``, the form scikit-learn uses, so the floats match
    its results bit for bit (``2 P R / (P + R)`` can differ in the last digit).
    """
    support = np.asarray(support)
    return (
        _ratio(tp, predicted),
        _ratio(tp, support),
        _ratio(2 * np.asarray(tp), support + predicted),
    )


def _measured(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of the classes whose precision, recall and F1 are defined (not 0/0).

    Precision needs a prediction of the class, recall an image of it, F1 either
    (tp + fp + fn > 0): the classes each macro average runs over.
    """
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    return predicted > 0, support > 0, (predicted + support) > 0


def _averages(per_class: tuple[np.ndarray, ...], cm: np.ndarray) -> dict[str, float]:
    """Macro (mean over the classes where the score is defined, see :func:`_measured`),
    weighted (by support) and micro (pooled counts)."""
    support = cm.sum(axis=1)
    total = int(support.sum())
    micro = _prf(np.trace(cm), total, total)  # every sample is predicted exactly once
    masks = _measured(cm)
    out: dict[str, float] = {}
    for name, values, pooled, mask in zip(
        ("precision", "recall", "f1"), per_class, micro, masks, strict=True
    ):
        # np.nanmean sums with the 0/0 scores as 0, as sklearn does: the same float, bit for bit
        scores = np.where(mask, values, np.nan)
        out[f"macro_{name}"] = float(np.nanmean(scores)) if mask.any() else 0.0
        out[f"weighted_{name}"] = float(np.average(values, weights=support))
        out[f"micro_{name}"] = float(pooled)
    return out


def macro_f1_note(metrics: dict[str, Any]) -> str:
    """How macro F1 averaged, when some class had no image in the split, else ``""``.

    A class with no image and no prediction is left out of the mean; one with no image but
    predicted scores 0 (each of its predictions is wrong) and counts. Said in words because
    the figure alone cannot tell a reader which classes it covers.

    Example:
        >>> macro_f1_note(compute_metrics([0, 0], [[0.9, 0.1, 0], [0.8, 0.2, 0]], "abc"))
        'macro F1 averages 1 of 3 classes: those with an image here or predicted; 2 with no image and never predicted are left out'
    """  # noqa: E501
    cm = np.asarray(metrics.get("confusion_matrix") or [], dtype=np.int64)
    if cm.ndim != 2 or cm.size == 0:
        return ""
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    absent = int((support == 0).sum())
    if not absent:
        return ""
    left_out = int(((support == 0) & (predicted == 0)).sum())
    k = cm.shape[0]
    parts = [f"macro F1 averages {k - left_out} of {k} classes: those with an image here or "
             "predicted"]  # fmt: skip
    if left_out:
        are = "is" if left_out == 1 else "are"
        parts.append(f"{left_out} with no image and never predicted {are} left out")
    if absent - left_out:
        counts = "counts" if absent - left_out == 1 else "count"
        parts.append(f"{absent - left_out} with no image but predicted {counts} with F1 0")
    return "; ".join(parts)


def compute_metrics(
    y_true: Any, probs: Any, classes: Sequence[str], top_k: int = 5, ece_bins: int = 15
) -> dict[str, Any]:
    """All the numbers of an evaluation, from true labels and predicted probabilities.

    Args:
        y_true: integer labels ``(N,)`` in ``0..K-1``.
        probs: class probabilities ``(N, K)`` (rows summing to 1).
        classes: the ``K`` class names in label order.
        top_k: k of the top-k accuracy; capped by ``K``.
        ece_bins: equal-width bins of the expected calibration error.

    Returns:
        A JSON-serialisable dict: ``accuracy``, ``top_k_accuracy``, ``balanced_accuracy``,
        ``{macro,weighted,micro}_{precision,recall,f1}``, ``per_class``, ``confusion_matrix``,
        ``confusion_matrix_normalized``, ``log_loss``, ``ece``, ``calibration``,
        ``most_confused``, ``num_samples``, ``num_classes``, ``top_k``, ``classes``, and the
        95 % intervals ``accuracy_ci`` and ``macro_f1_ci`` (:mod:`cnnlab.evaluation.intervals`),
        and ``majority_accuracy`` (always answering the split's most frequent class).

    Example:
        >>> m = compute_metrics([0, 1], [[0.9, 0.1], [0.2, 0.8]], ["cat", "dog"])
        >>> m["accuracy"]
        1.0
    """
    y, p = _check_inputs(y_true, probs, classes)
    k = len(classes)
    labels = list(range(k))
    pred = p.argmax(axis=1)
    cm = confusion_counts(y, pred, k)
    support = cm.sum(axis=1)
    prec, rec, f1 = scores = _prf(np.diag(cm), cm.sum(axis=0), support)
    per_class = [
        {
            "class": classes[i],
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i in labels
    ]
    cm_norm = np.divide(cm, support[:, None], out=np.zeros((k, k)), where=support[:, None] > 0)
    k_used = max(1, min(top_k, k))
    return {
        "num_samples": int(y.size),
        "num_classes": k,
        "classes": list(classes),
        "accuracy": float(np.mean(pred == y)),
        # the no-skill baseline: always answering the split's most frequent class
        "majority_accuracy": float(support.max() / y.size) if y.size else 0.0,
        "top_k": k_used,
        "top_k_accuracy": top_k_accuracy(y, p, k_used),
        # Standard definition: mean recall over the classes that occur in y_true.
        "balanced_accuracy": float(rec[support > 0].mean()),
        **_averages(scores, cm),
        "per_class": per_class,
        "confusion_matrix": cm.astype(int).tolist(),
        "confusion_matrix_normalized": cm_norm.tolist(),
        "log_loss": _log_loss(y, p),
        "ece": expected_calibration_error(y, p, ece_bins),
        "calibration": calibration_bins(y, p, ece_bins),
        "most_confused": _confused_pairs(cm, classes),
        **metric_intervals(y, pred, k),  # accuracy_ci, macro_f1_ci: what the sample allows
    }


def monitored_score(y_true: Any, probs: Any, k: int, name: str) -> float:
    """One of ``accuracy``, ``macro_f1`` or ``loss`` (the log loss), as ``train.monitor``
    names them, without the rest of :func:`compute_metrics` (no intervals, no tables).

    Example:
        >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        >>> monitored_score(np.array([0, 1, 1]), p, 2, "accuracy")
        0.6666666666666666
    """
    y, p = np.asarray(y_true, dtype=np.int64), np.asarray(probs, dtype=np.float64)
    if name == "loss":
        return _log_loss(y, p)
    pred = p.argmax(axis=1)
    if name == "accuracy":
        return float(np.mean(pred == y)) if y.size else 0.0
    if name == "macro_f1":
        return float(macro_f1(y, pred, k))
    raise ValueError(f"unknown monitored metric {name!r}")


def metric_series(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    """A metrics.csv column as floats (NaN where empty), values may be strings."""
    out = []
    for row in rows:
        try:
            out.append(float(row.get(key, "")))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _best_epoch(rows: Sequence[dict[str, Any]]) -> tuple[int, str] | None:
    """Index and metric of the best epoch: macro F1, then accuracy, then lowest val loss."""
    for key, sign in (("val/macro_f1", 1.0), ("val/accuracy", 1.0), ("val/loss", -1.0)):
        values = [sign * v for v in metric_series(rows, key)]
        if any(not math.isnan(v) for v in values):
            return int(np.nanargmax(values)), key
    return None


def _given_best(
    rows: Sequence[dict[str, Any]], best_epoch: int | None, monitor: str | None
) -> tuple[int, str] | None:
    """Row index of the run's own best epoch (as training decided it), else the fallback."""
    epochs = metric_series(rows, "epoch")
    if best_epoch is not None and best_epoch in epochs:
        return epochs.index(best_epoch), monitor or "train.monitor"
    return _best_epoch(rows)


def _no_skill_note(unlearned: str) -> str:
    return (f"On {unlearned} the model is not above always answering the most frequent class "
            "(see Metrics): it did not learn beyond the majority class, so the train/validation "
            "gap is not read as over- or under-fitting (with no skill it shows how the classes "
            "are mixed in each split, not how the model fits). Try another learning rate "
            "(cnnlab lr-find), more epochs, and check the labels and the images (cnnlab data "
            "inspect).")  # fmt: skip


def _gap_notes(
    gaps: list[float], train_acc: list[float], best_i: int, unlearned: str = ""
) -> list[str]:
    """The train-minus-val accuracy gap at the best epoch (the weights kept), and the last
    epoch's too when training went on to overfit after it.

    Quoting only the last epoch's gap next to the best epoch's number (seed G, finding 7)
    described weights that were not the ones evaluated. ``unlearned`` names the splits where
    the report found no evidence the model beats the majority class: there the gap is not
    over- or under-fitting (a model answering one class has a "gap" set by the splits' class
    mix), and advice to regularise contradicted the report's own verdict (explore I, 8).
    """
    if unlearned:
        return [_no_skill_note(unlearned)]
    last, epoch = len(gaps) - 1, best_i + 1
    gap, gap_last = gaps[best_i], gaps[last]
    if math.isnan(gap):
        return ["Training accuracy was not recorded; the gap cannot be measured."]
    if gap > 0.10:
        trend = "widened since epoch 1" if gap - gaps[0] > 0.05 else "was there from epoch 1"
        notes = [f"Overfitting: at epoch {epoch} train accuracy is {gap:.1%} above validation, "
                 f"a gap that {trend}; try more augmentation, weight decay, dropout or fewer "
                 "epochs."]  # fmt: skip
    elif train_acc[best_i] < 0.6:
        notes = [f"Underfitting: at epoch {epoch} train accuracy is only {train_acc[best_i]:.1%}; "
                 "try more epochs, a higher learning rate, a bigger model or less "
                 "regularisation."]  # fmt: skip
    else:
        notes = [f"At epoch {epoch} train and validation accuracy are close (gap {gap:+.1%}): "
                 "no clear overfitting."]  # fmt: skip
    if best_i < last and not math.isnan(gap_last) and gap_last > 0.10 and gap_last - gap > 0.05:
        notes.append(f"After it the gap widened to {gap_last:+.1%} by the last epoch "
                     f"({last + 1}): training went on to overfit, which the kept weights "
                     "avoid.")  # fmt: skip
    return notes


def _loss_notes(val_loss: list[float], best_i: int, last: int) -> list[str]:
    """Whether val loss rose after the best epoch, or the last epoch was the best."""
    if best_i < last and not math.isnan(val_loss[last]) and not math.isnan(val_loss[best_i]):
        if val_loss[last] > val_loss[best_i] * 1.1 and last - best_i >= 2:
            return [f"Validation loss rose {val_loss[last] - val_loss[best_i]:.3f} after the "
                    "best epoch: later epochs memorised the training set; early stopping "
                    "would have saved time."]  # fmt: skip
    elif best_i == last and last > 0:
        return ["The last epoch was the best: more epochs may still help."]
    return []


def diagnose_fit(
    rows: Sequence[dict[str, Any]],
    best_epoch: int | None = None,
    monitor: str | None = None,
    unlearned: str = "",
) -> str:
    """Say in plain words whether training over- or under-fitted, from metrics.csv rows.

    Looks at the train-minus-validation accuracy gap (its size and whether it grew), where
    the best epoch lies relative to the last, and whether validation loss rose after the
    best epoch. Training accuracy is measured on augmented batches, so a small negative gap
    is normal and is not called a problem. ``best_epoch`` and ``monitor`` are the run's own
    (``summary.json``), so the report names the epoch whose weights were kept; without them
    the best epoch is guessed from the validation columns. ``unlearned`` names the splits
    where the model is not above the majority baseline (``"val"``, ``"val and test"``;
    empty: it is): then no over- or under-fitting is read from the gap or the val loss.
    """
    if not rows:
        return "No training history (metrics.csv is empty), so no fit diagnosis."
    train_acc, val_acc = metric_series(rows, "train/accuracy"), metric_series(rows, "val/accuracy")
    val_loss = metric_series(rows, "val/loss")
    best = _given_best(rows, best_epoch, monitor)
    if best is None or all(math.isnan(v) for v in val_acc):
        return "No validation metrics were recorded, so over- or under-fitting cannot be judged."
    best_i, key = best
    last = len(rows) - 1
    gaps = [t - v for t, v in zip(train_acc, val_acc, strict=True)]
    kept = best_epoch is not None and best_epoch in metric_series(rows, "epoch")
    whose = "; its weights are the ones evaluated" if kept else ""
    notes = [f"Best epoch {best_i + 1} of {last + 1} by {key}{whose}."]
    notes.extend(_gap_notes(gaps, train_acc, best_i, unlearned))
    if not unlearned:  # a rising val loss reads as memorising: not for a model without skill
        notes.extend(_loss_notes(val_loss, best_i, last))
    return " ".join(notes)
