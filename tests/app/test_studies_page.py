"""The Studies and tuning page through AppTest, on a tiny study and a tiny tune."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.app.conftest import open_page, page_text

from cnnlab.app.settings import AppSettings
from cnnlab.app.studydata import result_folders

# 1-epoch tiny_cnn runs of 16 px without the report's galleries or tracking: the cheapest
# real runs (these tests read folders; training quality does not matter here).
# The module's fixture trains 7 tiny runs (~40 s on a busy 2-core machine).
pytestmark = pytest.mark.slow
TINY = {"data__img_size": 16, "eval__worst_mistakes": 0, "eval__explain": False,
        "track__backend": "none", "model__name": "tiny_cnn"}  # fmt: skip
LR = {"params": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}}


@pytest.fixture(scope="module")
def results_dir(app_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a study (2 cells x 2 seeds) and a tune (3 trials), 1 epoch each."""
    import cnnlab

    data = app_runs.parent / "data"
    base = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(base / "cache"))
        cnnlab.study(str(data), vary={"train.lr": [1e-3, 3e-3]}, seeds=2,
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
    assert len(comparisons) == 1 and comparisons["verdict"][0]
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


def test_compare_finds_a_studys_cells_and_its_verdict(results_dir: Path) -> None:
    """The Compare page over a study's runs: the study's cells, its comparison's numbers."""
    import csv
    import math

    from cnnlab.app.compare import cells, spread_rows, verdict_rows
    from cnnlab.runs import list_runs

    groups = cells(list_runs(results_dir / "sweep" / "runs"), "same settings")
    assert {k: sorted(r.name for r in v) for k, v in groups.items()} == {
        "tiny_cnn / scratch, lr=0.001": ["c1-seed42", "c1-seed43"],
        "tiny_cnn / scratch, lr=0.003": ["c2-seed42", "c2-seed43"],
    }
    (row,) = verdict_rows(groups, spread_rows(groups))
    with (results_dir / "sweep" / "comparisons.csv").open(encoding="utf-8") as fh:
        (written,) = csv.DictReader(fh)
    assert row["reference"] == f"tiny_cnn / scratch, {written['reference_label']}"
    assert row["pairs"] == int(written["seeds"]) == 2
    for key in ("diff_accuracy", "diff_accuracy_ci_low", "diff_accuracy_ci_high", "p_mcnemar"):
        assert math.isclose(row[key], float(written[key]), abs_tol=1e-12), key
    assert row["verdict"] == written["verdict"]


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
