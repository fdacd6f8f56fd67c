"""95 % intervals of a run's accuracy and macro F1 over its test images (issue: honest reports)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from cnnlab.evaluation.intervals import macro_f1, metric_intervals
from cnnlab.evaluation.metrics import compute_metrics
from cnnlab.evaluation.render import render_markdown
from cnnlab.evaluation.report import _metric_blocks


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The textbook Wilson score interval, written out to check the library call against."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _labels(n: int, error: float, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    wrong = rng.random(n) < error
    return y, np.where(wrong, (y + rng.integers(1, k, n)) % k, y)


@pytest.mark.parametrize("n", [10, 254, 5000])
def test_accuracy_interval_is_wilson_and_the_f1_interval_holds_the_estimate(n: int) -> None:
    y, pred = _labels(n, 0.1)
    ci = metric_intervals(y, pred, 5)
    assert ci["accuracy_ci"] == pytest.approx(_wilson(int((y == pred).sum()), n), abs=1e-9)
    low, high = ci["macro_f1_ci"]
    point = f1_score(y, pred, average="macro", labels=range(5), zero_division=np.nan)
    assert float(macro_f1(y, pred, 5)) == pytest.approx(point)
    assert low <= point <= high
    assert ci == metric_intervals(y, pred, 5)  # seeded: the same predictions, the same interval


def test_more_images_give_narrower_intervals() -> None:
    small, large = (metric_intervals(*_labels(n, 0.2), 5) for n in (100, 10_000))
    for key in ("accuracy_ci", "macro_f1_ci"):
        assert np.diff(large[key])[0] < np.diff(small[key])[0] / 5, key  # ~1/sqrt(100) = 1/10


def test_a_perfect_model_and_a_single_image() -> None:
    y = np.arange(20) % 4
    ci = metric_intervals(y, y, 4)
    assert ci["accuracy_ci"][1] == pytest.approx(1.0)
    assert ci["accuracy_ci"][0] < 1.0  # 20 of 20 right does not prove a perfect model
    # nor does the bootstrap, whose every resample is perfect too: no "1.000-1.000" interval
    assert ci["macro_f1_ci"] is None
    assert ci["macro_f1_ci_note"] == ("not estimable by bootstrap: 1000 of 1000 resamples of "
                                      "the 20 images give macro F1 1.0000, so the interval has "
                                      "no width")  # fmt: skip
    wrong = metric_intervals(y, (y + 1) % 4, 4)  # every answer wrong: macro F1 0 in every resample
    assert wrong["macro_f1_ci"] is None and "give macro F1 0.0000" in wrong["macro_f1_ci_note"]
    assert wrong["accuracy_ci"][1] > 0.0
    one = metric_intervals([1], [1], 2)
    assert one["accuracy_ci"] is None and one["macro_f1_ci"] is None
    assert one["macro_f1_ci_note"] is None  # too few images, not a collapsed bootstrap


def test_a_perfect_score_prints_no_zero_width_macro_f1_interval(tmp_path: Path, capsys) -> None:
    from cnnlab.runs import Run
    from cnnlab.summary import print_summary

    y = np.arange(15) % 3
    m = compute_metrics(y, np.eye(3)[y] * 0.9 + 0.05, ["cat", "dog", "owl"])
    assert m["macro_f1"] == 1.0 and m["macro_f1_ci"] is None
    text = " ".join(render_markdown("r", _sections({"val": m, "test": m}), Path(".")).split())
    low = m["accuracy_ci"][0]
    assert f"| accuracy 95% CI | {low:.4f} – 1.0000 |" in text
    assert "1.0000 – 1.0000" not in text
    assert text.count("| macro_f1 95% CI | not estimable by bootstrap (see below) |") == 2
    assert text.count("Macro F1 has no interval (val: not estimable by bootstrap: 1000 of") == 1
    assert "test: not estimable by bootstrap: 1000 of 1000 resamples of the 15 images" in text
    (tmp_path / "plots").mkdir()
    for split in ("val", "test"):
        (tmp_path / "plots" / f"{split}_metrics.json").write_text(json.dumps(m), encoding="utf-8")
    headline = {k: m[k] for k in ("accuracy", "macro_f1", "num_samples")}
    summary = {"model": "m", "mode": "scratch", "best_epoch": 1,
               "metrics": {"val": headline, "test": headline}}  # fmt: skip
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    print_summary(Run(tmp_path))
    out = " ".join(capsys.readouterr().out.split())
    assert "1.000-1.000" not in out and f"1.0000 ({low:.3f}-1.000)" in out
    assert "1.0000 (n/a)" in out and "(n/a: every bootstrap resample gives the same" in out


def test_metrics_and_report_carry_the_intervals_and_flag_tiny_classes() -> None:
    y, pred = _labels(120, 0.15, k=3)
    y[:3], pred[:3] = 3, 3  # a fourth class with 3 test images
    probs = np.full((y.size, 4), 0.02)
    probs[np.arange(y.size), pred] = 0.94
    m = compute_metrics(y, probs, ["cat", "dog", "owl", "rare"])
    json.dumps(m)  # plain JSON in <split>_metrics.json
    assert m["ci_level"] == 0.95
    assert m["accuracy_ci"][0] < m["accuracy"] < m["accuracy_ci"][1]
    assert m["macro_f1_ci"][0] <= m["macro_f1"] <= m["macro_f1_ci"][1]
    text = render_markdown("r", _metric_blocks_section(m), Path("."))
    low, high = m["accuracy_ci"]
    assert f"| accuracy 95% CI | {low:.4f} – {high:.4f} |" in text
    assert "macro_f1 95% CI" in text
    assert "Fewer than 10 images in this split: rare (3)" in text
    assert m["majority_accuracy"] == pytest.approx(np.bincount(y).max() / y.size)
    assert "No evidence that this model learned" not in text


def test_a_model_at_the_no_skill_baseline_is_flagged_in_the_report() -> None:
    y = np.array([0] * 60 + [1] * 30 + [2] * 30)
    probs = np.tile([0.5, 0.3, 0.2], (y.size, 1))  # always answers class 0: accuracy 0.5
    m = compute_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == m["majority_accuracy"] == 0.5
    text = " ".join(render_markdown("r", _metric_blocks_section(m), Path(".")).split())
    assert "No evidence that this model learned: its accuracy (0.5000) is not above always" in text


def _sections(metrics: dict) -> list:
    from cnnlab.evaluation.report import _metrics_section

    return [_metrics_section(metrics)]


def _metric_blocks_section(m: dict) -> list:
    from cnnlab.evaluation.render import Section

    section = Section("metrics", "Metrics")
    section.blocks.extend(_metric_blocks(m))
    return [section]
