"""The model behind the label flags is scored and graded (`cnnlab.cleaning.skill`), and a run
whose model cannot judge the labels says so instead of recommending clean.csv."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from sklearn.metrics import f1_score
from tests.conftest import folder_digest
from typer.testing import CliRunner

from cnnlab.cleaning.skill import measure_skill
from cnnlab.cli import app

CLASSES = ["gato", "perro ñ", "鳥 bird"]


def _probs(pred: np.ndarray, k: int) -> np.ndarray:
    """Out-of-fold-like probabilities whose argmax is ``pred``."""
    probs = np.full((pred.size, k), 0.1)
    probs[np.arange(pred.size), pred] = 0.8
    return probs


def test_scores_equal_sklearn_and_scipy_next_to_the_majority_baseline() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(3, size=200, p=[0.5, 0.3, 0.2])
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    skill = measure_skill(y, _probs(pred, 3), CLASSES)
    assert skill.accuracy == pytest.approx((pred == y).mean())
    assert skill.macro_f1 == pytest.approx(f1_score(y, pred, average="macro"))
    ci = stats.binomtest(int((pred == y).sum()), 200).proportion_ci(method="wilson")
    assert (skill.accuracy_low, skill.accuracy_high) == pytest.approx((ci.low, ci.high))
    assert skill.majority_class == "gato"
    assert skill.majority_accuracy == pytest.approx((y == 0).mean())
    assert skill.majority_macro_f1 == pytest.approx(
        f1_score(y, np.zeros_like(y), average="macro", zero_division=0)
    )


@pytest.mark.parametrize(
    ("right", "priors", "level"),
    [
        (0.0, [0.9, 0.05, 0.05], "none"),  # always the majority class: accuracy 0.9, no skill
        (0.45, [1 / 3] * 3, "none"),  # above the 0.33 baseline, but wrong on most images
        (0.75, [1 / 3] * 3, "moderate"),
        (0.97, [1 / 3] * 3, "good"),
    ],
)
def test_grades(right: float, priors: list[float], level: str) -> None:
    rng = np.random.default_rng(1)
    y = rng.choice(3, size=600, p=priors)
    wrong = (y + rng.integers(1, 3, y.size)) % 3  # never the given label
    pred = np.where(rng.random(y.size) < right, y, wrong)
    if right == 0.0:
        pred = np.zeros_like(y)
    skill = measure_skill(y, _probs(pred, 3), CLASSES)
    assert skill.level == level, skill
    verdict = skill.verdict(7)
    if level == "none":
        assert verdict and verdict.startswith("label issues cannot be judged")
    elif level == "moderate":
        assert verdict and "only as reliable as" in verdict and "7 flagged" in verdict
    else:
        assert verdict is None


def _noise_folder(root: Path) -> None:
    """Two classes of pure noise (16 px): nothing tells them apart, every label is right."""
    rng = np.random.default_rng(3)
    for name in ("cat", "dog ñ"):
        (root / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"img {i:02d}.png")


def test_a_model_at_chance_says_labels_cannot_be_judged(tmp_path: Path, monkeypatch) -> None:
    """The explore report: 292 of 480 correct labels flagged and clean.csv recommended while
    the cross-validated model was at chance, never shown."""
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    root, out = tmp_path / "ds", tmp_path / "out"
    _noise_folder(root)
    before = folder_digest(root)
    args = ["data", "issues", str(root), "--folds", "2", "--out", str(out), "data.img_size=32"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "data.img_size=32: the pretrained backbone sees 32-px images" in text
    assert "warning: label issues cannot be judged with this model" in text
    assert "out-of-sample model: accuracy" in text and "always answering" in text
    assert "train on the cleaned list" not in text and "clean.csv written, not recommended" in text
    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    model = doc["model"]
    assert model["level"] == "none" and model["majority_accuracy"] == 0.5
    assert model["accuracy_low"] <= 0.5 or min(model["accuracy"], model["macro_f1"]) < 0.5
    assert doc["clean_csv"]["recommended"] is False and doc["counts"]["label"] >= 0
    assert f"accuracy {model['accuracy']:.3f}" in text
    page = (out / "issues.html").read_text(encoding="utf-8")
    assert "Warning: label issues cannot be judged" in page and "always answering" in page
    assert f"{model['accuracy']:.4f}" in page and "(not recommended" in page
    assert (out / "clean.csv").is_file()  # still written, marked above
    inspect = CliRunner().invoke(app, ["data", "inspect", str(root), "--out", str(tmp_path / "a")])
    assert "not evidence of wrong labels" in " ".join(inspect.output.split())
    audit = (tmp_path / "a" / "audit.html").read_text(encoding="utf-8")
    assert "not evidence of wrong labels" in audit
    assert folder_digest(root) == before
