"""A study is one parent MLflow run with every cell's runs nested under it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests.conftest import write_folder
from tests.track.track_helpers import artifact_paths, history, runs_of

import cnnlab
from cnnlab.track import flush
from cnnlab.track.target import default_uri

pytestmark = pytest.mark.slow
TINY = {"data__img_size": 16, "train__epochs": 1, "eval__worst_mistakes": 0}


def test_a_study_with_workers_nests_its_runs_and_tags_the_best_cell(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=10)
    out = tmp_path / "study"
    vary = {"model.name": ["tiny_cnn", "basenet"]}
    # two worker processes: their runs nest through the parent they inherit
    cnnlab.study(str(data), vary=vary, seeds=2, out=str(out), workers=2, **TINY)
    assert flush(600)
    uri = default_uri(out / "runs")  # the cells' runs live in study/runs, so does their store
    runs = runs_of(uri)
    [top] = [r for r in runs if r.data.tags["cnnlab.kind"] == "study"]
    assert top.info.run_name == out.name and top.info.status == "FINISHED"
    assert top.data.params["seeds"] == "[42, 43]"
    children = {r.info.run_name: r for r in runs if r is not top}
    assert sorted(children) == ["c1-seed42", "c1-seed43", "c2-seed42", "c2-seed43"]
    for child in children.values():
        assert child.data.tags["mlflow.parentRunId"] == top.info.run_id
        assert child.info.status == "FINISHED"
        assert [s for s, _ in history(uri, child.info.run_id, "val/loss")] == [1]
    # the best cell (highest mean validation accuracy in table.csv) has its runs tagged
    with (out / "table.csv").open(encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    best = top.data.tags["cnnlab.best_cell"]
    best_acc = max(float(row["val_accuracy_mean"]) for row in table)
    assert float(next(r for r in table if r["cell"] == best)["val_accuracy_mean"]) == best_acc
    tagged = sorted(n for n, r in children.items() if r.data.tags.get("cnnlab.best") == "true")
    assert tagged == [f"{best}-seed42", f"{best}-seed43"]
    assert top.data.tags["cnnlab.best_run_id"] in {children[n].info.run_id for n in tagged}
    files = artifact_paths(uri, top.info.run_id)
    assert {"table.csv", "comparisons.csv", "results.csv", "study.html", "study.yaml"} <= files

    # resuming the finished study continues the same parent run: nothing is duplicated
    cnnlab.study(resume=str(out))
    assert flush(600)
    again = runs_of(uri)
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in runs)
