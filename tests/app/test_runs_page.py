"""The Runs page through AppTest: leaderboard, filters, one run's curves, matrix, report."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from tests.app.conftest import UNICODE_CLASS, open_page, page_text

from cnnlab.app.rundata import filter_rows, leaderboard


def test_leaderboard_rows_and_filters(app_runs: Path) -> None:
    rows = leaderboard(app_runs)
    assert [r["run"] for r in rows] == ["tiny-s0", "cnn-s0", "cnn-s1"]
    summary = json.loads((app_runs / "cnn-s0" / "summary.json").read_text())
    assert rows[1]["test acc"] == summary["metrics"]["test"]["accuracy"]
    assert rows[1]["dataset"] == "data" and rows[1]["model"] == "cnn"
    assert filter_rows(rows, model=["cnn"], mode=[]) == rows[1:]
    assert filter_rows(rows, mode=["frozen"]) == []


def test_runs_page_shows_a_run(app_env: Path) -> None:
    at = open_page("runs")
    table = at.dataframe[0].value
    assert list(table["run"]) == ["tiny-s0", "cnn-s0", "cnn-s1"]
    assert at.dataframe[0].proto.HasField("placeholder")  # a missing value shows blank
    assert at.dataframe[0].proto.placeholder == ""
    assert at.selectbox[0].value == "cnn-s1"
    assert at.radio[0].options == ["test", "val"]
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # loss curves, accuracy curves, confusion matrix
    for curves in charts[:2]:  # 2 epochs: ticks at whole epochs, not 1.5
        axis = json.loads(curves.proto.spec)["layout"]["xaxis"]
        assert (axis["tickmode"], axis["tick0"], axis["dtick"]) == ("linear", 0, 1)
    matrix = json.loads(charts[2].proto.spec)
    assert UNICODE_CLASS in matrix["data"][0]["x"]
    per_class = at.dataframe[1].value
    assert set(per_class["class"]) == {"class_0", "class_1", UNICODE_CLASS}
    assert len(at.get("download_button")) == 1
    assert str(app_env.parent) not in page_text(at)
    assert [m.label for m in at.metric] == ["accuracy", "macro F1"]
    test = json.loads((app_env / "cnn-s1" / "plots" / "test_metrics.json").read_text())
    low, high = test["accuracy_ci"]
    assert f"95% interval over {test['num_samples']} images: {low:.3f} – {high:.3f}" in [
        c.value for c in at.caption
    ]


def test_runs_page_filter_and_normalise(app_env: Path) -> None:
    at = open_page("runs")
    assert at.multiselect[0].options == ["cnn", "tiny_cnn"]  # the models present
    at.multiselect[0].set_value(["tiny_cnn"]).run()
    assert list(at.dataframe[0].value["run"]) == ["tiny-s0"]
    assert at.selectbox[0].value == "tiny-s0"
    at.toggle[0].set_value(True).run()
    assert not at.exception
    z = json.loads(at.get("plotly_chart")[2].proto.spec)["data"][0]["z"]  # plotly's typed array
    matrix = np.frombuffer(base64.b64decode(z["bdata"]), z["dtype"]).reshape(3, 3)
    sums = matrix.sum(axis=1)
    assert np.all((np.abs(sums - 1) < 1e-6) | (sums == 0))


def test_a_killed_run_shows_the_model_and_mode_of_its_config(
    app_runs: Path, tmp_path: Path
) -> None:
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(app_runs / "tiny-s0", runs / "killed")
    for name in ("summary.json", "model.safetensors", "model.json", "report.html"):
        (runs / "killed" / name).unlink()  # what a kill -9 during training leaves
    (row,) = leaderboard(runs)
    assert (row["run"], row["model"], row["mode"], row["complete"]) == (
        "killed", "tiny_cnn", "scratch", False)  # fmt: skip
    assert row["test acc"] is None


def test_a_pruned_tune_trial_is_marked_on_the_runs_page(
    app_runs: Path, tmp_path: Path, monkeypatch
) -> None:
    """A trial the tune's pruner stopped reads as a short run, as `cnnlab runs` says it."""
    import shutil

    from cnnlab.app.settings import AppSettings

    runs = tmp_path / "runs"
    shutil.copytree(app_runs / "tiny-s0", runs / "trial-0001")
    shutil.copytree(app_runs / "cnn-s0", runs / "trial-0000")
    summary = runs / "trial-0001" / "summary.json"
    record = json.loads(summary.read_text(encoding="utf-8"))
    record["pruned"] = {"by": "median", "after_epoch": 1, "of_epochs": 2}
    summary.write_text(json.dumps(record), encoding="utf-8")
    assert {r["run"]: r["pruned"] for r in leaderboard(runs)} == {
        "trial-0000": False, "trial-0001": True}  # fmt: skip
    for key, value in AppSettings(runs_dir=runs, folders=()).to_env().items():
        monkeypatch.setenv(key, value)
    at = open_page("runs")
    assert not at.exception
    assert "pruner stopped the trial early" in page_text(at)
    table = at.dataframe[0].value
    assert dict(zip(table["run"], table["pruned"], strict=True))["trial-0001"]
