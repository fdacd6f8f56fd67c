"""``eval.tta=auto`` keeps flip TTA only when it does not make the monitored metric worse on
val; the choice is recorded in the model card and followed by test, predict and export."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.engine import finalize
from cnnlab.evaluation.metrics import compute_metrics, monitored_score
from cnnlab.predict import Predictor


def write_sides(root: Path, per_class: int = 30, size: int = 32, seed: int = 0) -> Path:
    """Two classes told apart only by side: a bright bar on the left or on the right.

    Mirrored, each image is the other class: flip TTA averages every answer with its opposite.
    """
    rng = np.random.default_rng(seed)
    for label, name in enumerate(("left", "right")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
            x0 = int(rng.integers(1, size // 4))
            x0 = x0 if label == 0 else size - x0 - size // 6
            y0 = int(rng.integers(0, size // 2))
            arr[y0 : y0 + size // 2, x0 : x0 + size // 6] = (230, 230, 230)
            Image.fromarray(arr).save(root / name / f"{i:03d}.png")
    return root


@pytest.mark.parametrize("name", ["accuracy", "macro_f1", "loss"])
def test_monitored_score_is_compute_metrics_number(name: str) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    y = rng.integers(0, 3, 50)  # class 3 never occurs: macro F1 still averages over all 4
    full = compute_metrics(y, probs, ["a", "b", "c", "d"])
    key = "log_loss" if name == "loss" else name
    assert monitored_score(y, probs, 4, name) == pytest.approx(full[key], abs=1e-12)


@pytest.fixture(scope="module")
def sides_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run that learned left from right (trained without flips, so no TTA by default)."""
    tmp = tmp_path_factory.mktemp("sides")
    data = write_sides(tmp / "data")
    run = cnnlab.train(str(data), model="cnn", epochs=4, seed=0, runs_dir=str(tmp / "runs"),
                       data__hflip=False, data__augment="none")  # fmt: skip
    return data, run.path


def test_flips_that_hurt_on_val_are_dropped(sides_run: tuple[Path, Path]) -> None:
    data, run_dir = sides_run
    predictor = Predictor(run_dir)
    x = torch.stack([torch.from_numpy(np.array(predictor.load(p))).permute(2, 0, 1) for p in
                     sorted(data.rglob("*.png"))])  # fmt: skip
    y = torch.tensor([0 if p.parent.name == "left" else 1 for p in sorted(data.rglob("*.png"))])
    predictor.tta = True
    card = {"tta": "hflip"}
    probs, feats = finalize._choose_tta(predictor, x, y, ["left", "right"], "val/macro_f1", card)
    chosen = card["tta_val"]
    assert chosen["metric"] == "val/macro_f1" and chosen["with"] < chosen["without"]
    assert card["tta"] is None and predictor.tta is False
    assert torch.equal(probs, predictor.predict_arrays(x, tta=False))  # the plain pass
    assert feats is not None and feats.shape[0] == len(y)


def test_a_run_whose_flips_hurt_drops_tta_everywhere(
    sides_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same data trained as if with flips (`tta_mode` says hflip, as for a run trained
    with the default flips): the run's card, summary, test predictions, `cnnlab predict`
    without flags and the export all follow the choice made on val."""
    data, _ = sides_run
    monkeypatch.setattr(finalize, "tta_mode", lambda cfg: "hflip")
    run = cnnlab.train(str(data), model="cnn", epochs=4, seed=0, runs_dir=str(tmp_path),
                       data__hflip=False, data__augment="none")  # fmt: skip
    card = json.loads((run.path / "model.json").read_text(encoding="utf-8"))
    summary = json.loads((run.path / "summary.json").read_text(encoding="utf-8"))
    assert card["tta"] is None and summary["tta"] is None
    assert card["tta_val"]["with"] < card["tta_val"]["without"]
    assert summary["metrics"]["val"]["macro_f1"] == pytest.approx(card["tta_val"]["without"])
    with (run.path / "predictions" / "test.csv").open(encoding="utf-8") as fh:
        saved = list(csv.DictReader(fh))
    out = tmp_path / "predicted.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "predict", str(run.path),
         *[str(data / r["path"]) for r in saved], "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with out.open(encoding="utf-8") as fh:
        fresh = list(csv.DictReader(fh))
    assert [r["pred"] for r in saved] == [r["label"] for r in fresh]
    probs = [float(r["prob"]) for r in saved]
    assert [float(r["prob"]) for r in fresh] == pytest.approx(probs, abs=1e-5)
