"""`cnnlab demo`, the job `make demo` runs, as a user runs it: a small study with a verdict."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.schedule.pool import cpu_cores


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_demo_study_trains_both_models_over_seeds_and_gives_a_verdict(tmp_path: Path) -> None:
    env = dict(os.environ, COLUMNS="120")
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "demo", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (study,) = tmp_path.glob("demo-*")
    table = {row["label"]: row for row in _rows(study / "table.csv")}
    scratch = table["cnn from scratch"]
    frozen = table["efficientnet_lite0 frozen (ImageNet)"]
    assert scratch["n"] == frozen["n"] == "3"
    assert float(scratch["test_accuracy_mean"]) >= 0.95
    assert float(frozen["test_accuracy_mean"]) >= 0.85
    assert frozen["init"] == "pretrained" and scratch["init"] == "random"
    (comparison,) = _rows(study / "comparisons.csv")
    assert comparison["verdict"] in ("better", "worse", "not distinguishable")
    # Every run saw the same images: the study's one split.
    split = (study / "split.csv").read_text()
    assert all((run / "split.csv").read_text() == split for run in (study / "runs").iterdir())
    assert "highest mean validation accuracy" in out.stdout or "best cell" in out.stdout
    assert (study / "study.html").stat().st_size > 10_000
    assert "report:" in out.stdout
    assert len(_workers(study)) == min(2, cpu_cores())  # two runs at a time, given two cores


def _workers(study: Path) -> set[str]:
    """The processes ("host:pid") that trained the study's runs, as its storage recorded."""
    import optuna

    from cnnlab.schedule.storage import open_storage, storage_url

    storage = open_storage(storage_url(None, study))
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    return {t.user_attrs["worker"] for t in trials}
