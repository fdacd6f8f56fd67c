"""The Studies and tuning page through AppTest, on a tiny study and a tiny tune."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.app.conftest import open_page, page_text

from cnnlab.app.settings import AppSettings
from cnnlab.app.studydata import result_folders

# 1-epoch tiny_cnn runs of 16 px without the report's galleries or tracking: the cheapest
# real runs (these tests read folders; training quality does not matter here).
# The module's fixture trains 9 tiny runs (~50 s on a busy 2-core machine).
pytestmark = pytest.mark.slow
TINY = {"data__img_size": 16, "eval__worst_mistakes": 0, "eval__explain": False,
        "track__backend": "none", "model__name": "tiny_cnn"}  # fmt: skip
LR = {"params": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}}


@pytest.fixture(scope="module")
def results_dir(app_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a study (3 cells x 2 seeds) and a tune (3 trials), 1 epoch each."""
    import cnnlab

    data = app_runs.parent / "data"
    base = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(base / "cache"))
        cnnlab.study(str(data), vary={"train.lr": [1e-3, 3e-3, 1e-2]}, seeds=2,
                     out=str(base / "sweep"), train__epochs=1, **TINY)  # fmt: skip
        cnnlab.tune(str(data), space=LR, trials=3, epochs=1, out=str(base / "lr"), **TINY)
    return base


@pytest.fixture
def results_env(results_dir: Path, app_runs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings = AppSettings(runs_dir=app_runs, folders=(results_dir,))
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    return results_dir


def test_only_given_folders_are_listed(results_dir: Path, app_runs: Path) -> None:
    found = result_folders(AppSettings(runs_dir=app_runs, folders=(results_dir,)))
    assert {k: v[1].name for k, v in found.items()} == {"study: sweep": "sweep", "tune: lr": "lr"}
    assert result_folders(AppSettings(runs_dir=app_runs)) == {}  # not given: not shown


def test_study_table_plots_and_verdicts(results_env: Path) -> None:
    import csv

    at = open_page("studies")
    assert at.selectbox[0].options == ["tune: lr", "study: sweep"]  # by folder name
    at.selectbox[0].set_value("study: sweep").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    with (results_env / "sweep" / "table.csv").open(encoding="utf-8") as fh:
        written = {r["cell"]: r for r in csv.DictReader(fh)}
    for _, row in table.iterrows():  # the study's own numbers, with their spread over seeds
        mean = float(written[row["cell"]]["test_accuracy_mean"])
        assert row["test acc (mean ± std)"].startswith(f"{mean:.3f} ± ")
        assert row["seeds"] == 2
    comparisons = at.dataframe[1].value
    assert len(comparisons) == 2 and all(comparisons["verdict"])
    assert len(at.get("image")) >= 3  # accuracy bars, curves, trade-offs...
    assert "Download study.html" in [b.label for b in at.get("download_button")]


def test_tune_history_importances_and_best_trials(results_env: Path) -> None:
    import json

    at = open_page("studies")
    assert not at.exception and not at.error
    best = json.loads((results_env / "lr" / "best.json").read_text(encoding="utf-8"))
    assert f"Best: **trial {best['trial']}**" in page_text(at)
    top = at.dataframe[1].value
    assert int(top["number"][0]) == best["trial"] and len(top) == 3
    history = at.get("plotly_chart")[0]
    assert "Objective Value" in history.proto.spec or "val/macro_f1" in history.proto.spec
    assert len(at.get("plotly_chart")) == 2  # history, importances (three trials suffice)


def test_compare_finds_a_studys_cells_and_its_numbers(results_dir: Path, tmp_path: Path) -> None:
    """The Compare page over a study's runs: the study's cells and every number of its
    comparisons, macro-F1 CIs included, whatever order the run folders are listed in (the
    bootstrap was seeded by a row's place, which differs between the page and the study)."""
    import csv
    import math
    import os
    import shutil

    from cnnlab.app.compare import cells, spread_rows, verdict_rows
    from cnnlab.runs import list_runs

    runs = shutil.copytree(results_dir / "sweep" / "runs", tmp_path / "runs")
    for i, run in enumerate(sorted(runs.iterdir(), reverse=True)):  # c3 listed first
        if (run / "config.yaml").is_file():
            os.utime(run / "config.yaml", (1e9 + i, 1e9 + i))
    assert list_runs(runs)[0].name.startswith("c3")
    groups = cells(list_runs(runs), "same settings")
    assert {k: sorted(r.name for r in v) for k, v in groups.items()} == {
        "tiny_cnn / scratch, lr=0.01": ["c3-seed42", "c3-seed43"],
        "tiny_cnn / scratch, lr=0.003": ["c2-seed42", "c2-seed43"],
        "tiny_cnn / scratch, lr=0.001": ["c1-seed42", "c1-seed43"],
    }
    rows = {r["cell"]: r for r in verdict_rows(groups, spread_rows(groups))}
    with (results_dir / "sweep" / "comparisons.csv").open(encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert len(rows) == len(written) == 2
    keys = [
        f"diff_{m}{end}" for m in ("accuracy", "macro_f1") for end in ("", "_ci_low", "_ci_high")
    ]
    for study in written:
        row = rows[f"tiny_cnn / scratch, {study['label']}"]
        assert row["reference"] == f"tiny_cnn / scratch, {study['reference_label']}"
        assert row["pairs"] == int(study["seeds"]) == 2
        for key in [*keys, "p_mcnemar", "p_holm"]:
            assert math.isclose(row[key], float(study[key]), abs_tol=1e-12), key
        assert row["verdict"] == study["verdict"]


def test_study_report_leaves_out_runs_whose_test_predictions_are_damaged(
    results_dir: Path, tmp_path: Path
) -> None:
    """`cnnlab study report` died with a 72-line traceback (FileNotFoundError, KeyError
    'true'); now the run is left out of the paired tests, the report says so in one line."""
    import shutil

    from tests.studies.conftest import cli, read_csv

    study = shutil.copytree(results_dir / "sweep", tmp_path / "sweep")
    (study / "runs" / "c1-seed43" / "predictions" / "test.csv").unlink()
    garbled = study / "runs" / "c2-seed42" / "predictions" / "test.csv"
    garbled.write_text("path,true,pred\nx,no such class,y\n", encoding="utf-8")
    out = cli("study", "report", str(study))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stdout.splitlines()
    left = [ln for ln in lines if ln.startswith("Left out of the paired comparisons")]
    assert sorted(left) == [
        "Left out of the paired comparisons and per-class F1: c1-seed43 has no test "
        "predictions: predictions/test.csv is missing.",
        "Left out of the paired comparisons and per-class F1: c2-seed42's test predictions "
        "cannot be read: predictions/test.csv names classes not in classes.json: "
        "'no such class', 'y'.",
    ]
    _, comps = read_csv(study / "comparisons.csv")
    _, table = read_csv(study / "table.csv")
    assert [int(r["n"]) for r in table] == [2, 2, 2]  # their metrics still count
    assert sorted(int(r["seeds"]) for r in comps) in ([0, 1], [1, 1])  # the rest still paired
    assert "c1-seed43 has no test predictions" in (study / "study.html").read_text("utf-8")


def test_failure_reasons_show_no_server_paths(results_dir: Path, tmp_path: Path) -> None:
    """A run that failed on a file of the study (its saved split) names it by its server path;
    the page and the study.html download show it relative to the study's folder."""
    import shutil

    from cnnlab.app.studydata import study_view
    from cnnlab.schedule.runs import _fail

    study = shutil.copytree(results_dir / "sweep", tmp_path / "sweep")
    split = study / "split.csv"
    reason = f"{split}: 1 file(s) of the saved split are missing or unreadable now: a.png"
    _fail(study / "runs" / "c1-seed42", reason)  # what the runner writes for a failed run
    from tests.studies.conftest import cli

    assert cli("study", "report", str(study)).returncode == 0
    assert str(split) in (study / "study.html").read_text("utf-8")  # the command's own file
    view = study_view(study)
    shown = "\n".join([*view["sentences"], *(r["reason"] for r in view["runs"])])
    assert "sweep/split.csv: 1 file(s)" in shown and str(tmp_path) not in shown
    assert str(tmp_path).encode() not in view["html"] and b"sweep/split.csv" in view["html"]


def test_study_and_tune_downloads_name_the_dataset_without_its_path(
    results_dir: Path, app_runs: Path
) -> None:
    from cnnlab.app.studydata import study_view, tune_view

    data = str(app_runs.parent / "data")
    study = results_dir / "sweep" / "study.html"
    assert f"Data: {data}" in study.read_text(encoding="utf-8")  # the command's own file
    for html in (study_view(study.parent)["html"], tune_view(results_dir / "lr")["html"]):
        assert data.encode() not in html and b"Data: data" in html


def test_trial_tables_hold_numbers(results_env: Path) -> None:
    from cnnlab.app.studydata import tune_view

    trials = tune_view(results_env / "lr")["trials"]
    assert len(trials) == 3
    for row in trials:
        assert isinstance(row["number"], int) and isinstance(row["train.lr"], float)
        assert isinstance(row["state"], str)
        assert row["val/macro_f1"] is None or isinstance(row["val/macro_f1"], float)
    at = open_page("studies")
    every = at.dataframe[2].value  # best trials, then every trial
    assert every["train.lr"].dtype.kind == "f" and every["number"].dtype.kind == "i"


def test_importances_need_two_complete_trials(
    app_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One complete trial: Optuna would give every parameter the same share; say why not."""
    import cnnlab
    from cnnlab.app.studydata import tune_view

    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    space = {"params": {**LR["params"], "train.momentum": {"type": "float", "low": 0.8,
                                                            "high": 0.95}}}  # fmt: skip
    cnnlab.tune(str(app_runs.parent / "data"), space=space, trials=1, epochs=1,
                out=str(tmp_path / "one"), **TINY)  # fmt: skip
    figures = tune_view(tmp_path / "one")["figures"]
    assert "history" in figures and not isinstance(figures["history"], str)
    assert figures["importances"] == (
        "Parameter importances need at least 2 complete trials; this tune has 1."
    )
