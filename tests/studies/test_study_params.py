"""A frozen-backbone cell and a fine-tuned cell: the study says how many parameters each trained.

Both cells are the same network, so their total parameter counts are equal; only the trained
count (the head alone when frozen) tells the reader what each cell cost and could fit.
"""

from __future__ import annotations

import json

import pytest
from tests.conftest import folder_digest, write_folder
from tests.studies.conftest import read_csv

import cnnlab


@pytest.mark.slow
def test_frozen_and_finetuned_cells_report_their_trained_parameters(tmp_path):
    data = write_folder(tmp_path / "data ünï", classes=3, per_class=10)
    before = folder_digest(data)
    study = cnnlab.study(
        str(data), vary={"model.mode": ["frozen", "finetune"]}, seeds=1, out=str(tmp_path / "s"),
        model="efficientnet_lite0", img_size=32, epochs=1, eval__worst_mistakes=0,
        eval__explain=False,
    )  # fmt: skip
    assert folder_digest(data) == before
    columns, results = read_csv(study.path / "results.csv")
    assert columns.index("trainable_params") == columns.index("params") + 1
    cards = {}
    for row in results:
        assert row["status"] == "done", row
        summary = json.loads((study.path / row["run_dir"] / "summary.json").read_text())
        cards[row["model.mode"]] = summary["params"]
        assert int(row["params"]) == summary["params"]["total"]
        assert int(row["trainable_params"]) == summary["params"]["trainable"]

    table = {row["model.mode"]: row for row in study.table}
    frozen, tuned = table["frozen"], table["finetune"]
    assert frozen["params"] == tuned["params"]  # the same network
    assert int(frozen["trainable_params"]) == cards["frozen"]["trainable"]
    assert 0 < int(frozen["trainable_params"]) < int(tuned["trainable_params"])
    assert tuned["trainable_params"] == tuned["params"]

    html = study.report.read_text(encoding="utf-8")
    assert "<th>trained params</th>" in html
    assert f"{int(frozen['trainable_params']):,}" in html
    assert "test accuracy vs trained parameters" in html
    assert (study.path / "plots" / "accuracy_vs_trainable_params.png").is_file()


@pytest.mark.slow
def test_runs_that_train_everything_draw_no_second_parameter_plot(tmp_path):
    data = write_folder(tmp_path / "data", classes=3, per_class=8)
    study = cnnlab.study(
        str(data), vary={"train.lr": [0.05, 0.1]}, seeds=1, out=str(tmp_path / "s"),
        model="tiny_cnn", img_size=16, epochs=1, eval__worst_mistakes=0,
    )  # fmt: skip
    assert all(row["trainable_params"] == row["params"] != "" for row in study.table)
    assert "vs trained parameters" not in study.report.read_text(encoding="utf-8")
