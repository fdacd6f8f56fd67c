"""The Compare page through AppTest: overlaid curves, spread and paired verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tests.app.conftest import open_page, page_text

from cnnlab.app.compare import (
    cells,
    finished_runs,
    paired_arrays,
    seed_pairs,
    spread_rows,
    verdict_rows,
)
from cnnlab.runs import Run, list_runs
from cnnlab.studies import stats

TINY = "tiny_cnn / scratch, split_seed=42, lr=default"
CNN = "cnn / scratch, split_seed=42, lr=default"
FAST = "cnn / scratch, split_seed=42, lr=0.05"
SPLIT7 = "cnn / scratch, split_seed=7, lr=default"


def names(groups: dict[str, list[Run]]) -> dict[str, list[str]]:
    return {k: [r.name for r in v] for k, v in groups.items()}


def test_cells_spread_and_verdicts_use_the_studies_statistics(app_runs: Path) -> None:
    groups = cells(list_runs(app_runs), "same settings")
    assert names(groups) == {
        "tiny_cnn / scratch": ["tiny-s0"],
        "cnn / scratch": ["cnn-s0", "cnn-s1"],
    }
    spread = spread_rows(groups)
    cnn = next(r for r in spread if r["cell"] == "cnn / scratch")
    accs = [r.summary["metrics"]["test"]["accuracy"] for r in groups["cnn / scratch"]]
    assert cnn["test accuracy"] == stats.spread(accs).mean
    assert cnn["runs"] == 2 and cnn["seeds"] == "0, 1"
    low, high = stats.spread(accs).ci_low, stats.spread(accs).ci_high
    assert cnn["test accuracy CI low"] == max(0.0, low)  # clipped to [0, 1], as in a study
    assert cnn["test accuracy CI high"] == min(1.0, high)
    rows = verdict_rows(groups, spread)
    assert len(rows) == 1 and rows[0]["pairs"] == 1  # seed 0 is the only seed both cells have
    y, a, b = paired_arrays(groups[rows[0]["cell"]], groups[rows[0]["reference"]])
    assert a.shape == b.shape == (1, y.size) and y.size > 0
    assert rows[0]["verdict"] in stats.VERDICTS
    assert np.isclose(rows[0]["diff_accuracy"], (a == y).mean() - (b == y).mean())
    assert rows[0]["diff_accuracy_ci_low"] <= rows[0]["diff_accuracy"] <= rows[0][
        "diff_accuracy_ci_high"]  # fmt: skip


def test_a_cell_is_the_runs_whose_config_differs_only_by_seed(compare_runs: Path) -> None:
    """Other lr, other split: other cells, labelled by what differs between cells."""
    groups = cells(list_runs(compare_runs), "same settings")
    assert names(groups) == {
        TINY: ["tiny-s0"],
        CNN: ["cnn-s0", "cnn-s1"],
        FAST: ["lr-s0", "lr-s1"],
        SPLIT7: ["split7"],
    }
    assert names(cells(list_runs(compare_runs), "each run")) == {
        r.name: [r.name] for r in list_runs(compare_runs)
    }


def test_seed_k_pairs_with_seed_k_and_each_run_once(compare_runs: Path) -> None:
    run = {r.name: r for r in list_runs(compare_runs)}
    # two runs with seed 0 against a single seed-0 run: one pair, the single run used once
    assert len(seed_pairs([run["cnn-s0"], run["lr-s0"]], [run["tiny-s0"]])) == 1
    assert len(seed_pairs([run["tiny-s0"]], [run["cnn-s0"], run["lr-s0"]])) == 1
    assert seed_pairs([run["cnn-s1"]], [run["cnn-s0"], run["lr-s0"]]) == []  # no seed 1 there
    assert seed_pairs([run["cnn-s1"]], [run["tiny-s0"]]) == [(run["cnn-s1"], run["tiny-s0"])]


def _verdict(groups: dict[str, list[Run]], a: str, b: str) -> dict:
    pair = {k: groups[k] for k in (a, b)}
    rows = verdict_rows(pair, spread_rows(pair))
    assert len(rows) == 1
    return rows[0]


def test_verdicts_rest_on_seed_pairs_of_one_test_set(compare_runs: Path) -> None:
    groups = cells(list_runs(compare_runs), "same settings")
    table = {r["cell"]: r for r in spread_rows(groups)}

    both = _verdict(groups, CNN, FAST)  # 2 seeds each: both pairs, every run once
    assert both["pairs"] == 2 and both["images"] > 0
    assert both["paired runs"] in ("cnn-s0 ~ lr-s0, cnn-s1 ~ lr-s1",
                                   "lr-s0 ~ cnn-s0, lr-s1 ~ cnn-s1")  # fmt: skip
    this, ref = (CNN, FAST) if both["cell"] == CNN else (FAST, CNN)
    want = table[this]["test accuracy"] - table[ref]["test accuracy"]
    assert math.isclose(both["diff_accuracy"], want, abs_tol=1e-9)  # the table's means

    single = _verdict(groups, TINY, CNN)  # one run against two: seed 0 only
    assert single["pairs"] == 1 and "tiny-s0" in single["paired runs"]
    assert "cnn-s0" in single["paired runs"] and "cnn-s1" not in single["paired runs"]

    other = _verdict(groups, CNN, SPLIT7)  # another split: other test images
    assert other["pairs"] == 0 and other["verdict"] == "not compared"
    assert "other images" in other["why"]


def test_compare_page(app_env: Path) -> None:
    at = open_page("compare")
    assert at.multiselect[0].value == ["tiny-s0", "cnn-s0", "cnn-s1"]
    overlay = at.get("plotly_chart")[0]
    assert overlay.proto.spec.count('"name"') >= 3
    axis = json.loads(overlay.proto.spec)["layout"]["xaxis"]
    assert (axis["tickmode"], axis["dtick"]) == ("linear", 1)  # whole epochs only
    assert len(at.dataframe) == 2  # spread table, verdicts
    assert "cnn / scratch** vs" in page_text(at) or "vs **cnn / scratch" in page_text(at)
    assert "(1 pair of runs, " in page_text(at)
    at.radio[0].set_value("each run").run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 3
    assert len(at.dataframe[1].value) == 2  # two runs against the best one
    at.multiselect[0].set_value([]).run()  # none picked: a hint, no empty chart or table
    assert not at.exception
    assert [i.value for i in at.info] == [
        "Pick the runs to compare above (two or more for a paired comparison)."
    ]
    assert not at.get("plotly_chart") and not at.dataframe


def test_compare_page_with_cells_of_several_settings(
    compare_runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNNLAB_APP_RUNS_DIR", str(compare_runs))
    at = open_page("compare")
    assert not at.exception and not at.error
    assert sorted(at.dataframe[0].value["cell"]) == sorted([TINY, CNN, FAST, SPLIT7])
    lines = [m.value for m in at.markdown if " vs **" in m.value]
    assert len(lines) == 3
    assert all("of runs, " in line or "(tested on other images" in line for line in lines)
    assert sum("tested on other images" in line for line in lines) in (1, 3)  # split7's cell


def test_a_run_with_a_damaged_file_is_left_out_and_named(
    app_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    runs = tmp_path / "runs"
    for name in ("tiny-s0", "cnn-s0", "cnn-s1"):
        shutil.copytree(app_runs / name, runs / name)
    shutil.copytree(app_runs / "cnn-s1", runs / "bad-config")
    summary = runs / "tiny-s0" / "summary.json"
    summary.write_bytes(summary.read_bytes()[:100])  # cut mid-write
    (runs / "bad-config" / "config.yaml").write_text("data: {root: [\n", encoding="utf-8")
    assert finished_runs(runs)[1] == {"tiny-s0": "summary.json", "bad-config": "config.yaml"}

    monkeypatch.setenv("CNNLAB_APP_RUNS_DIR", str(runs))
    at = open_page("compare")
    assert not at.exception and not at.error
    assert at.warning[0].value == (
        "2 finished runs left out, a file cannot be read: "
        "tiny-s0 (summary.json), bad-config (config.yaml)"
    )
    assert at.multiselect[0].options == ["cnn-s0", "cnn-s1"]
    assert list(at.dataframe[0].value["runs"]) == [2]  # the rest: one cell of two seeds


def test_finished_ensembles_are_compared_as_one_run_cells(
    app_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ensemble is finished as the leaderboard says, and pairs with a single run."""
    import shutil

    from cnnlab.app.rundata import leaderboard
    from cnnlab.ensemble.folder import build_ensemble

    runs = tmp_path / "runs"
    for name in ("tiny-s0", "cnn-s0"):
        shutil.copytree(app_runs / name, runs / name)
    build_ensemble([runs / "tiny-s0", runs / "cnn-s0"], method="soft", out=runs / "ens")
    found = finished_runs(runs)[0]
    assert [r.name for r in found] == ["tiny-s0", "cnn-s0", "ens"]
    assert {r["run"] for r in leaderboard(runs) if r["complete"]} == {r.name for r in found}

    groups = cells(found, "same settings")
    assert names(groups) == {
        "tiny_cnn / scratch": ["tiny-s0"],
        "cnn / scratch": ["cnn-s0"],
        "ensemble / soft: ens": ["ens"],
    }
    row = _verdict(groups, "ensemble / soft: ens", "tiny_cnn / scratch")
    assert row["pairs"] == 1 and row["images"] > 0 and row["verdict"] in stats.VERDICTS

    monkeypatch.setenv("CNNLAB_APP_RUNS_DIR", str(runs))
    at = open_page("compare")
    assert not at.exception and not at.error
    assert at.multiselect[0].options == ["tiny-s0", "cnn-s0", "ens"]
    assert len(at.dataframe[0].value) == 3 and len(at.dataframe[1].value) == 2
    assert "No learning curves (no metrics.csv; an ensemble has none): ens" in page_text(at)


def _damaged_copy(compare_runs: Path, out: Path) -> Path:
    """``compare_runs`` copied without split7 (another split), with tiny-s0's test predictions
    garbled (another table's header, a row longer than it) and cnn-s1's predictions folder
    deleted."""
    import shutil

    shutil.copytree(compare_runs, out, ignore=shutil.ignore_patterns("split7"))
    (out / "tiny-s0" / "predictions" / "test.csv").write_text("path,label\nx,y,z\n")
    probs = out / "tiny-s0" / "predictions" / "test_probs.npy"
    probs.write_bytes(probs.read_bytes()[:40])
    shutil.rmtree(out / "cnn-s1" / "predictions")
    return out


def test_runs_without_readable_test_predictions_are_left_out_with_the_reason(
    compare_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A garbled or missing predictions/test.csv: that run is not paired and its row says
    why in the run's own terms; the other runs are still compared (the page used to stop
    with KeyError 'true', and to call a missing file "no seed in common")."""
    runs = _damaged_copy(compare_runs, tmp_path / "runs")
    groups = cells(list_runs(runs), "same settings")
    tiny, cnn, fast = (x.replace(" split_seed=42,", "") for x in (TINY, CNN, FAST))
    garbled = "tiny-s0's test predictions cannot be read: predictions/test.csv has no true, pred"
    missing = "cnn-s1 has no test predictions: predictions/test.csv is missing"

    rest = _verdict(groups, cnn, fast)  # seed 1's pair is left out, seed 0's compared
    assert rest["pairs"] == 1 and rest["verdict"] in stats.VERDICTS
    assert "cnn-s0" in rest["paired runs"] and "cnn-s1" not in rest["paired runs"]
    assert rest["left out"] == missing
    lone = _verdict(groups, tiny, cnn)
    assert (lone["pairs"], lone["verdict"]) == (0, "not compared")
    assert lone["why"].startswith(garbled)
    alone = cells(list_runs(runs), "each run")
    both_seed_1 = _verdict(alone, "cnn-s1", "lr-s1")  # same seed, same split: not "no seed"
    assert (both_seed_1["pairs"], both_seed_1["why"]) == (0, missing)

    monkeypatch.setenv("CNNLAB_APP_RUNS_DIR", str(runs))
    at = open_page("compare")
    assert not at.exception and not at.error
    assert len(at.dataframe) == 2  # spread table and verdicts, for every run
    lines = [m.value for m in at.markdown if " vs **" in m.value]
    assert len(lines) == 2  # the cnn cells, one the reference, and tiny_cnn's cell
    assert any(line.startswith(f"**{tiny}** vs") and garbled in line for line in lines)
    assert str(runs) not in page_text(at)  # reasons name runs and files, not server paths
    at.radio[0].set_value("each run").run()
    assert not at.exception and not at.error
    lines = [m.value for m in at.markdown if " vs **" in m.value]
    assert len(lines) == 4 and "no seed in common" not in "".join(lines)
    # the reference is a run that can be paired, so the healthy runs are compared with it
    assert not any(line.endswith(" vs **tiny-s0**") or "vs **cnn-s1**" in line for line in lines)
    assert sum("of runs, " in line for line in lines) == 2  # cnn-s0, lr-s0, lr-s1 less the ref
    assert any(line.startswith("**tiny-s0** vs") and garbled in line for line in lines)
