"""Issue 10 item 10: the best epoch is decided once, by train.monitor, and used everywhere.

summary.json, the learning-curve marker (the PNG records the epoch it marks), report.html and
the restored weights must all name the same epoch: the one the best checkpoint holds.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

import cnnlab


@pytest.mark.slow
@pytest.mark.parametrize(
    "monitor, extra",
    [
        ("val/loss", {}),  # lower is better
        ("val/accuracy", {}),  # 3 validation images: equal accuracies are common
        ("val/macro_f1", {"lr": 1e-9}),  # weights barely move: every epoch ties
    ],
)
def test_one_best_epoch_in_summary_plot_report_and_weights(
    monitor: str, extra: dict, tiny_folder: Path, tmp_path: Path
) -> None:
    run = cnnlab.train(
        str(tiny_folder), model="cnn", model__cnn__filters=[8, 16], epochs=4, precision="32",
        train__channels_last="false", augment="none", train__monitor=monitor,
        runs_dir=str(tmp_path / "runs"), **extra,
    )  # fmt: skip
    assert run is not None
    summary = json.loads((run.path / "summary.json").read_text(encoding="utf-8"))
    with (run.path / "metrics.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    values = [float(r[monitor]) for r in rows]
    target = min(values) if monitor.endswith("loss") else max(values)
    best = summary["best_epoch"]
    if extra:
        assert len(set(values)) < len(values), "this case must contain a tie"
    assert best == values.index(target) + 1  # the first epoch that reached the best value
    assert summary["monitor"] == monitor
    plot = Image.open(run.path / "plots" / "learning_curves.png")
    assert plot.text["best_epoch"] == str(best)  # the dashed line marks this epoch
    html = (run.path / "report.html").read_text(encoding="utf-8")
    assert (
        f"Best epoch {best} of {len(rows)} by {monitor}; its weights are the ones evaluated."
        in html
    )
    text = " ".join(html.lower().split())
    if "did not learn beyond the majority class" in text:  # lr 1e-9: no gap is read then
        assert f"at epoch {best} train" not in text
    else:
        assert f"at epoch {best} train" in text  # the gap quoted is the evaluated epoch's
    # The evaluated weights are the best epoch's: their val accuracy is that epoch's row.
    assert summary["tta"] is None  # no flips trained, so evaluation is the plain forward pass
    assert summary["metrics"]["val"]["accuracy"] == pytest.approx(
        float(rows[best - 1]["val/accuracy"]), abs=1e-6
    )
