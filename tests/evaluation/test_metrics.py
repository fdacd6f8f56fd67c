"""compute_metrics against scikit-learn, ECE by hand, and the fit diagnosis.

compute_metrics derives precision, recall and F1 from its own confusion matrix (importing
sklearn.metrics cost every run ~1 s); scikit-learn stays the reference here, and the numbers
must be the same floats, not merely close.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from cnnlab.errors import DataError
from cnnlab.evaluation.metrics import compute_metrics, diagnose_fit

# Macro averages leave out a 0/0 score (a class never measured), the rule training's
# val/macro_f1 follows; the weighted and micro averages are sklearn's zero_division=0 ones.
_ZERO_DIVISION = {"macro": np.nan, "weighted": 0, "micro": 0}


def _random_case(seed: int, k: int = 6, n: int = 80):
    """Labels never use the last class; predictions never pick class 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k - 1, size=n)
    probs = rng.dirichlet(np.ones(k), size=n)
    probs[:, 0] = 0.0
    probs /= probs.sum(axis=1, keepdims=True)
    return y, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn_with_absent_classes(seed):
    y, probs = _random_case(seed)
    k = probs.shape[1]
    classes = [f"c{i}" for i in range(k)]
    pred = probs.argmax(axis=1)
    assert 0 not in pred and k - 1 not in y  # both kinds of absence are exercised
    m = compute_metrics(y, probs, classes, top_k=3)
    labels = list(range(k))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the predicted-only class
        assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    for avg in ("macro", "weighted", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, pred, labels=labels, average=avg, zero_division=_ZERO_DIVISION[avg]
        )
        assert m[f"{avg}_precision"] == pytest.approx(p)
        assert m[f"{avg}_recall"] == pytest.approx(r)
        assert m[f"{avg}_f1"] == pytest.approx(f)
    p, r, f, s = skm.precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    assert [row["f1"] for row in m["per_class"]] == pytest.approx(list(f))
    assert [row["support"] for row in m["per_class"]] == list(s)
    assert m["per_class"][0]["precision"] == 0.0  # never predicted: zero_division=0
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=labels).tolist()
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(probs, 1e-15, 1), labels=labels))
    assert m["top_k_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(y, probs, k=3, labels=labels)
    )
    json.dumps(m)  # JSON-serialisable as is


@st.composite
def _predictions(draw):
    """Labels and probabilities with 2-12 classes, some never true, some never predicted."""
    k = draw(st.integers(2, 12))
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, draw(st.integers(1, k)), size=n)  # the top classes may never occur
    probs = rng.dirichlet(np.full(k, draw(st.sampled_from([0.1, 1.0, 10.0]))), size=n)
    return y, probs


@settings(max_examples=150, deadline=None)
@given(_predictions())
def test_every_count_based_number_is_sklearns_exactly(case):
    y, probs = case
    k = probs.shape[1]
    labels = list(range(k))
    pred = probs.argmax(axis=1)
    m = compute_metrics(y, probs, [f"c{i}" for i in labels])
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=labels).tolist()
    assert m["accuracy"] == skm.accuracy_score(y, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about classes absent from y_true
        assert m["balanced_accuracy"] == skm.balanced_accuracy_score(y, pred)
    p, r, f, s = skm.precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    rows = m["per_class"]
    assert [row["precision"] for row in rows] == p.tolist()
    assert [row["recall"] for row in rows] == r.tolist()
    assert [row["f1"] for row in rows] == f.tolist()
    assert [row["support"] for row in rows] == s.tolist()
    for avg in ("macro", "weighted", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, pred, labels=labels, average=avg, zero_division=_ZERO_DIVISION[avg]
        )
        assert (m[f"{avg}_precision"], m[f"{avg}_recall"], m[f"{avg}_f1"]) == (p, r, f), avg


def test_normalized_confusion_rows_and_empty_row():
    y, probs = _random_case(3)
    m = compute_metrics(y, probs, [str(i) for i in range(6)])
    rows = np.asarray(m["confusion_matrix_normalized"])
    assert rows[:-1].sum(axis=1) == pytest.approx(np.ones(5))
    assert rows[-1].sum() == 0.0  # the class absent from y_true has an all-zero row


def test_ece_hand_example():
    probs = [[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]]
    y = [0, 1, 1, 0]
    m = compute_metrics(y, probs, ["a", "b"], ece_bins=10)
    # bin 0.9: accuracy 0.5, confidence 0.9 -> 0.4 x 2/4; bin 0.6: 1.0 vs 0.6 -> 0.4 x 2/4
    assert m["ece"] == pytest.approx(0.4)
    assert sum(b["count"] for b in m["calibration"]) == 4


def test_top_k_capped_and_confused_pairs():
    probs = np.array([[0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]])
    m = compute_metrics([0, 0, 1, 0], probs, ["a", "b", "c"], top_k=5)
    assert m["top_k"] == 3 and m["top_k_accuracy"] == 1.0
    assert m["most_confused"][0] == {
        "true": "a",
        "pred": "b",
        "count": 2,
        "share_of_true": pytest.approx(2 / 3),
    }
    assert m["most_confused"][1]["true"] == "b" and m["most_confused"][1]["pred"] == "c"
    assert len(m["most_confused"]) == 2  # zero-count pairs are not listed


def test_bad_shapes_raise_data_error():
    with pytest.raises(DataError, match="expected"):
        compute_metrics([0, 1], [[0.5, 0.5], [0.5, 0.5]], ["a", "b", "c"])
    with pytest.raises(DataError, match="labels must lie"):
        compute_metrics([0, 3], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"])
    with pytest.raises(DataError, match="no samples"):
        compute_metrics([], np.zeros((0, 2)), ["a", "b"])


def _rows(train_acc, val_acc, val_loss):
    return [
        {
            "epoch": str(i + 1),
            "train/accuracy": str(t),
            "val/accuracy": str(v),
            "val/macro_f1": str(v),
            "val/loss": str(vl),
            "train/loss": "0.5",
        }
        for i, (t, v, vl) in enumerate(zip(train_acc, val_acc, val_loss, strict=True))
    ]


def test_diagnose_overfitting_underfitting_and_fine():
    over = diagnose_fit(
        _rows([0.6, 0.8, 0.95, 0.99, 1.0], [0.6, 0.7, 0.72, 0.71, 0.7], [1.0, 0.8, 0.7, 0.9, 1.1])
    )
    assert "Overfitting" in over and "widened" in over and "Validation loss rose" in over
    assert "Best epoch 3 of 5" in over
    under = diagnose_fit(_rows([0.3, 0.35, 0.4], [0.3, 0.36, 0.41], [1.2, 1.1, 1.0]))
    assert "Underfitting" in under and "more epochs may still help" in under
    fine = diagnose_fit(_rows([0.8, 0.9], [0.82, 0.9], [0.5, 0.4]))
    assert "no clear overfitting" in fine
    assert "No training history" in diagnose_fit([])
    assert "No validation" in diagnose_fit([{"epoch": "1", "train/accuracy": "0.5"}])
