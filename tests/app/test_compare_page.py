"""The Compare page through AppTest: overlaid curves, spread and paired verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tests.app.conftest import open_page, page_text

from cnnlab.app.compare import cells, paired_arrays, spread_rows, verdict_rows
from cnnlab.runs import list_runs
from cnnlab.studies import stats


def test_cells_spread_and_verdicts_use_the_studies_statistics(app_runs: Path) -> None:
    groups = cells(list_runs(app_runs), "model and mode")
    assert {k: [r.name for r in v] for k, v in groups.items()} == {
        "tiny_cnn / scratch": ["tiny-s0"],
        "cnn / scratch": ["cnn-s0", "cnn-s1"],
    }
    spread = spread_rows(groups)
    cnn = next(r for r in spread if r["cell"] == "cnn / scratch")
    accs = [r.summary["metrics"]["test"]["accuracy"] for r in groups["cnn / scratch"]]
    assert cnn["test accuracy"] == stats.spread(accs).mean
    assert cnn["runs"] == 2
    rows = verdict_rows(groups, spread)
    assert len(rows) == 1 and rows[0]["seeds"] == 1  # seed 0 is the only seed both cells have
    y, a, b = paired_arrays(groups[rows[0]["cell"]], groups[rows[0]["reference"]])
    assert a.shape == b.shape == (1, y.size) and y.size > 0
    assert rows[0]["verdict"] in stats.VERDICTS
    assert np.isclose(rows[0]["diff_accuracy"], (a == y).mean() - (b == y).mean())
    assert rows[0]["diff_accuracy_ci_low"] <= rows[0]["diff_accuracy"] <= rows[0][
        "diff_accuracy_ci_high"]  # fmt: skip


def test_compare_page(app_env: Path) -> None:
    at = open_page("compare")
    assert at.multiselect[0].value == ["tiny-s0", "cnn-s0", "cnn-s1"]
    overlay = at.get("plotly_chart")[0]
    assert overlay.proto.spec.count('"name"') >= 3
    assert len(at.dataframe) == 2  # spread table, verdicts
    assert " vs " in page_text(at)
    at.radio[0].set_value("each run").run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 3
    assert len(at.dataframe[1].value) == 2  # two runs against the best one
