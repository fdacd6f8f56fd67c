"""A run's reported numbers equal an independent computation on the same predictions.

The wrap-up of a run was rebuilt for speed (issue 11): metrics from its own confusion matrix
instead of scikit-learn, faster plots. Freezing the numbers of one run would break across
CPUs (bf16 kernels differ), so the test recomputes them instead: the test split is predicted
again through the public ``cnnlab.load`` API and scored by scikit-learn, and the epoch that
``metrics.csv`` calls best (scored by torchmetrics during training) must agree with the
summary's validation numbers (scored after training).
"""

from __future__ import annotations

import csv
import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from tests.conftest import write_folder

import cnnlab

pytestmark = pytest.mark.slow


def _split_arrays(predictor, run: Path, root: Path, split: str) -> tuple[torch.Tensor, list[int]]:
    """The run's own ``split`` images, decoded as the predictor does, with their labels."""
    classes = json.loads((run / "classes.json").read_text(encoding="utf-8"))
    with (run / "split.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split]
    arrays = np.stack([predictor.load(root / r["path"]) for r in rows])
    labels = [classes.index(r["label"]) for r in rows]
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous(), labels


def _ece(y: np.ndarray, probs: np.ndarray, bins: int) -> float:
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf >= lo) & ((conf < hi) | (hi == 1.0))
        if inside.any():
            total += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return total


def _check_split(reported: dict, y: np.ndarray, probs: np.ndarray) -> None:
    """Every headline number of one split against scikit-learn (or the ECE definition)."""
    pred, k = probs.argmax(axis=1), probs.shape[1]
    assert reported["num_samples"] == len(y)
    assert reported["accuracy"] == skm.accuracy_score(y, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class the small split never predicts
        assert reported["balanced_accuracy"] == skm.balanced_accuracy_score(y, pred)
    for avg in ("macro", "weighted"):
        # macro: a class with no image and never predicted is left out (training's rule)
        zero = np.nan if avg == "macro" else 0
        expected = skm.f1_score(y, pred, labels=range(k), average=avg, zero_division=zero)
        assert reported[f"{avg}_f1"] == expected
    assert reported["top_k_accuracy"] == skm.top_k_accuracy_score(y, probs, k=2, labels=range(k))
    rows = probs / probs.sum(axis=1, keepdims=True)  # float32 softmax sums to 1 within 1e-7
    assert reported["log_loss"] == pytest.approx(skm.log_loss(y, rows, labels=range(k)), rel=1e-6)
    assert reported["ece"] == pytest.approx(_ece(y, probs, 15), abs=1e-9)


def test_summary_and_metrics_csv_match_independent_scoring(tmp_path):
    root = write_folder(tmp_path / "data", classes=4, per_class=20, size=32, seed=3)
    run = cnnlab.train(
        str(root), epochs=2, img_size=32, seed=0, runs_dir=str(tmp_path / "runs"),
        train__precision="32", train__channels_last="false", eval__tta="true", eval__top_k=2,
    )  # fmt: skip
    summary = json.loads((run.path / "summary.json").read_text(encoding="utf-8"))
    predictor = cnnlab.load(str(run.path))
    for split in ("val", "test"):
        images, labels = _split_arrays(predictor, run.path, root, split)
        probs = predictor.predict_arrays(images, tta=True).double().numpy()
        _check_split(summary["metrics"][split], np.asarray(labels), probs)

    # metrics.csv is scored by torchmetrics during training, without flips: its best epoch
    # (whose weights the run keeps) must agree with scikit-learn on the same predictions.
    with (run.path / "metrics.csv").open(newline="", encoding="utf-8") as fh:
        best = {int(r["epoch"]): r for r in csv.DictReader(fh)}[summary["best_epoch"]]
    images, labels = _split_arrays(predictor, run.path, root, "val")
    pred = predictor.predict_arrays(images, tta=False).numpy().argmax(axis=1)
    assert float(best["val/accuracy"]) == pytest.approx(skm.accuracy_score(labels, pred))
    assert float(best["val/macro_f1"]) == pytest.approx(
        skm.f1_score(labels, pred, average="macro", zero_division=0), abs=1e-6
    )
