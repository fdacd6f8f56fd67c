"""Every recipe runs through the Python API on a generated dataset at tiny size."""

from __future__ import annotations

import pytest
from tests.conftest import write_folder

import cnnlab
from cnnlab.paths import cache_dir
from cnnlab.studies.recipes import RECIPES

# Enough cells to exercise each recipe (its full default list is validated in test_plan.py).
ARGS = {
    "lr": {"vary": {"train.lr": [0.05]}},  # x scheduler on/off: 2 cells
    "optimizers": {"vary": {"train.optimizer": ["adam", "adadelta"]}},
    "models": {"vary": {"model.name": ["tiny_cnn", "efficientnet_lite0"]}, "img_size": 32},
    "transfer": {"img_size": 32},  # all 8 cells
    "ladder": {"img_size": 16},  # all 7 steps
}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_recipe_runs_at_tiny_size(recipe, tmp_path):
    data = write_folder(tmp_path / "data", classes=3, per_class=10)
    args = {"img_size": 16, "model": "tiny_cnn", **ARGS[recipe]}
    if recipe in ("models", "transfer", "ladder"):
        args.pop("model")  # these recipes choose the models themselves
    study = cnnlab.study(
        str(data), recipe=recipe, seeds=1, out=str(tmp_path / "s"), epochs=1,
        eval__worst_mistakes=0, eval__explain=False, **args,
    )  # fmt: skip
    statuses = {r["cell"]: (r["status"], r["reason"]) for r in study.results}
    assert all(s == "done" for s, _ in statuses.values()), statuses
    assert all(row["n"] == "1" for row in study.table)
    html = study.report.read_text(encoding="utf-8")
    assert "spread over seeds is unknown" in html
    if recipe == "models":
        init = {row["label"]: row["init"] for row in study.table}
        assert init == {"tiny_cnn": "random", "efficientnet_lite0": "pretrained"}
    if recipe == "transfer":
        assert len(study.table) == 8
        # The three frozen cells (linear, logistic regression, SVM) share one feature pass:
        # one cached entry per split (train, val, and test, which each head scores).
        features = list(cache_dir("features").glob("*.safetensors"))
        assert len(features) == 3
    assert all(p.is_dir() for p in study.run_dirs)
    if recipe == "ladder":
        pairs = [(c["cell"], c["reference_cell"]) for c in study.comparisons]
        assert pairs == [(f"c{i}", f"c{i - 1}") for i in range(2, 8)]
        # 2 epochs with patience 5: early stopping cannot fire, and the report says so
        assert study.table[-1]["stopped_early"] == "0"
        assert "up to 2x epochs (2) (c7), so its difference from" in html
        assert "comes from the longer training (up to 2 epochs, not 1)" in html
