"""One macro-F1 rule everywhere (seed G, findings 2 and 3), and the fit gap quoted (7).

Training's val/macro_f1 (torchmetrics' rule) leaves out a class absent from both labels and
predictions; the evaluation counted it as 0, so a class with no test image cost 1/K of test
macro F1 and every bootstrap resample missing a rare class lost 1/K (intervals capped at
(K-1)/K, or zero-width). Every number here is recomputed independently: sklearn over the
classes present or predicted, and the training code's own function.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from cnnlab.engine.epoch_metrics import macro_f1 as training_macro_f1
from cnnlab.evaluation.intervals import macro_f1, metric_intervals
from cnnlab.evaluation.metrics import compute_metrics, diagnose_fit, monitored_score
from cnnlab.evaluation.render import Section, render_markdown
from cnnlab.evaluation.report import _metric_blocks
from cnnlab.studies.stats import paired_bootstrap


def _probs(pred: np.ndarray, k: int) -> np.ndarray:
    probs = np.full((pred.size, k), 0.01)
    probs[np.arange(pred.size), pred] = 1.0
    return probs / probs.sum(axis=1, keepdims=True)


def _independent(y: np.ndarray, pred: np.ndarray) -> float:
    present = sorted(set(y.tolist()) | set(pred.tolist()))
    return float(f1_score(y, pred, labels=present, average="macro"))


@pytest.mark.parametrize("seed", range(6))
def test_evaluation_macro_f1_is_trainings(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 7
    y = rng.integers(0, 4, 40)  # classes 4-6 have no image
    pred = np.where(rng.random(40) < 0.7, y, rng.integers(0, 6, 40))  # 4, 5 may be predicted
    expected = _independent(y, pred)
    confmat = torch.from_numpy(np.bincount(y * k + pred, minlength=k * k).reshape(k, k))
    assert float(training_macro_f1(confmat)) == pytest.approx(expected, abs=1e-6)
    m = compute_metrics(y, _probs(pred, k), [f"c{i}" for i in range(k)])
    assert m["macro_f1"] == pytest.approx(expected)
    assert float(macro_f1(y, pred, k)) == pytest.approx(expected)
    assert monitored_score(y, _probs(pred, k), k, "macro_f1") == pytest.approx(expected)


def test_a_class_with_no_image_is_left_out_but_a_predicted_one_scores_0() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    assert compute_metrics(y, _probs(y, 3), "abc")["macro_f1"] == 1.0  # was 2/3
    pred = np.array([0, 0, 2, 1, 1, 1])  # class c has no image but is predicted once
    m = compute_metrics(y, _probs(pred, 3), "abc")
    assert m["macro_f1"] == pytest.approx(_independent(y, pred))
    assert m["macro_f1"] == pytest.approx((0.8 + 1.0 + 0.0) / 3)


def test_bootstrap_interval_with_rare_classes_is_not_pulled_down() -> None:
    # 10 classes, three with a single image each (all right): most resamples miss one
    y = np.repeat(np.arange(10), [8] * 7 + [1, 1, 1])
    pred = y.copy()
    pred[[0, 8, 16]] = [1, 2, 3]  # three mistakes among the common classes
    ci = metric_intervals(y, pred, 10)
    point = float(macro_f1(y, pred, 10))
    assert point == pytest.approx(_independent(y, pred))
    low, high = ci["macro_f1_ci"]
    assert low <= point <= high
    # each missed class cost 1/10 before: [0.669, 0.990], never reaching a right model's 1.0
    assert low > 0.85 and high == 1.0


def test_two_present_classes_of_ten_do_not_give_a_zero_width_interval() -> None:
    # seed G's `eval --data sub2`: two classes of ten, 0.2000 - 0.2000 before
    y = np.array([0] * 9 + [1] * 8)
    pred = y.copy()
    pred[[0, 9]] = [1, 0]
    ci = metric_intervals(y, pred, 10)
    point = float(macro_f1(y, pred, 10))
    assert point == pytest.approx(_independent(y, pred)) and point > 0.8
    low, high = ci["macro_f1_ci"]
    assert low < point <= high and high > low


def test_paired_bootstrap_of_macro_f1_uses_the_rule() -> None:
    y = np.repeat(np.arange(4), [10, 10, 10, 1])  # and a fifth class with no image
    a = y.copy()
    b = y.copy()
    b[:3] = 1
    out = paired_bootstrap(y, a[None], b[None], "macro_f1", 5)
    point = _independent(y, a) - _independent(y, b)
    assert out.diff == pytest.approx(point)
    assert out.ci_low <= point <= out.ci_high


def test_report_says_no_image_and_how_macro_f1_averages() -> None:
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 3, 1, 1, 2])  # 'owl' has no image but is predicted once
    m = compute_metrics(y, _probs(pred, 5), ["cat", "dog", "fox", "owl", "yak"])
    text = render_markdown("r", [Section("metrics", "Metrics", _metric_blocks(m))], Path("."))
    assert "macro F1 averages 4 of 5 classes: those with an image here or predicted" in text
    assert "1 with no image and never predicted is left out" in text
    assert "1 with no image but predicted counts with F1 0" in text
    assert "| yak | no image | no image | no image | 0 |" in text
    assert "| owl | 0.0000 | no image | 0.0000 | 0 |" in text  # its one prediction was wrong


def _rows(train: list[float], val: list[float]) -> list[dict[str, str]]:
    return [
        {"epoch": str(i + 1), "train/accuracy": str(t), "val/accuracy": str(v),
         "val/macro_f1": str(v), "val/loss": "0.5"}
        for i, (t, v) in enumerate(zip(train, val, strict=True))
    ]  # fmt: skip


def test_fit_diagnosis_quotes_the_best_epochs_gap() -> None:
    # seed G: best epoch 12 of 15 (gap +0.05%), but the last epoch's +1.2% was quoted
    rows = _rows([0.90, 0.95, 0.9766], [0.90, 0.945, 0.9643])
    text = diagnose_fit(rows, best_epoch=2, monitor="val/macro_f1")
    assert "Best epoch 2 of 3 by val/macro_f1; its weights are the ones evaluated" in text
    assert "At epoch 2 train and validation accuracy are close (gap +0.5%)" in text
    assert "+1.2%" not in text
    late = diagnose_fit(_rows([0.8, 0.85, 0.99, 1.0], [0.8, 0.84, 0.8, 0.78]), best_epoch=2)
    assert "At epoch 2 train and validation accuracy are close (gap +1.0%)" in late
    assert "After it the gap widened to +22.0% by the last epoch (4)" in late


def test_training_results_table_says_how_macro_f1_averaged(tmp_path: Path, capsys) -> None:
    # seed G: a class with no test image; the table printed after training gave no hint
    from cnnlab.runs import Run
    from cnnlab.summary import print_summary

    y = np.array([0, 0, 1, 1, 2, 2])
    test = compute_metrics(y, _probs(y, 4), ["a", "b", "c", "neun_ü"])
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "test_metrics.json").write_text(json.dumps(test), encoding="utf-8")
    headline = {k: test[k] for k in ("accuracy", "macro_f1", "num_samples")}
    summary = {"model": "m", "mode": "scratch", "best_epoch": 2, "metrics": {"test": headline}}
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    print_summary(Run(tmp_path))
    out = " ".join(capsys.readouterr().out.split())
    assert test["macro_f1"] == 1.0  # was 0.75: the class with no image counted as 0
    assert "(test: macro F1 averages 3 of 4 classes: those with an image here or predicted; " in out
